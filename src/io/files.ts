/**
 * Files that are complete or absent. Every file ingraph writes goes through here: a temporary name in the same
 * directory, every byte written (a short write is a failure), fsync, a read-back compared with what was meant, rename,
 * and fsync of the directory. Any failure removes the temporary file and is an IoError naming the file and the system's
 * error; nothing incomplete is ever renamed into place.
 */
import { createHash } from 'crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeSync,
} from 'fs';
import { basename, dirname, join, resolve } from 'path';
import { getSystemErrorMap } from 'util';
import { IoError, UsageError } from '../errors';

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Errors of the machine rather than of a path the user named: an I/O fault wherever they happen. */
const RESOURCE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EFBIG', 'EROFS']);

/** "ENOSPC (no space left on device)" for a failed system call; null for anything else. */
export function describeErrno(e: unknown): { errno: string; text: string } | null {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code !== 'string' || !/^E[A-Z0-9]+$/.test(err.code)) return null;
  const words = typeof err.errno === 'number' ? getSystemErrorMap().get(err.errno)?.[1] : undefined;
  return { errno: err.code, text: words ? `${err.code} (${words})` : err.code };
}

/** A failed system call on `path` as an IoError ("cannot write PATH: ENOSPC (...)"); other errors pass through. */
export function ioError(verb: string, path: string, e: unknown): unknown {
  if (e instanceof IoError) return e;
  const d = describeErrno(e);
  return d ? new IoError(`cannot ${verb} ${path}: ${d.text}`, path, d.errno) : e;
}

/** Writes every byte of `bytes` at the descriptor's position; a write that makes no progress is a failure. */
export function writeFully(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) {
    const n = writeSync(fd, bytes, done, bytes.length - done);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: the write made no progress'), { code: 'ENOSPC', errno: -28 });
    done += n;
  }
}

/** Reads up to `size` bytes from the start of the file (positioned reads, whatever the descriptor's offset). */
function readFully(fd: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = readSync(fd, buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/**
 * Removes `path` if it can: a file left where removal failed (its directory gone or no longer writable) is a
 * temporary file never renamed into place, or a lock that the next run finds stale.
 */
export function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // see above
  }
}

/** Makes the last rename in `dir` durable. Filesystems that cannot sync a directory say so with EINVAL. */
function syncDir(dir: string, path: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP') throw ioError('make durable the rename of', path, e);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Writes `path` complete or not at all, and returns the SHA-256 of the bytes read back from the disk (equal, by
 * check, to the SHA-256 of `data`). Throws IoError naming `path` on any failure; an existing file is then untouched.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w+');
    let onDisk: Buffer;
    try {
      writeFully(fd, bytes);
      fsyncSync(fd);
      onDisk = readFully(fd, bytes.length + 1);
    } finally {
      closeSync(fd);
    }
    if (!onDisk.equals(bytes)) {
      throw new IoError(
        `cannot write ${path}: the bytes read back (${onDisk.length}) differ from those written (${bytes.length})`,
        path,
        'EIO',
      );
    }
    renameSync(tmp, path);
    syncDir(dirname(path), path);
    return sha256(onDisk);
  } catch (e) {
    removeQuietly(tmp);
    throw ioError('write', path, e);
  }
}

/**
 * Like writeFileAtomic, but leaves a file that already holds exactly `data` as it is (a resumed run rewrites nothing it
 * already wrote). Returns the SHA-256 of the bytes on disk either way.
 */
export function writeFileIfChanged(path: string, data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    const onDisk = statSync(path).size === bytes.length ? readFileChecked(path, path, bytes.length) : null;
    if (onDisk?.equals(bytes)) return sha256(onDisk);
  } catch {
    // absent or unreadable: write it
  }
  return writeFileAtomic(path, bytes);
}

/**
 * Appends `line` and a newline to `path` as one whole line or not at all: a failed write is cut back off. The caller
 * must hold a lock that keeps other writers out. A torn last line left by an earlier crash is ended first.
 */
export function appendLine(path: string, line: string): void {
  let fd: number | null = null;
  let size = 0;
  try {
    fd = openSync(path, 'a+');
    size = fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const ended = size === 0 || (readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a);
    try {
      writeFully(fd, Buffer.from(`${ended ? '' : '\n'}${line}\n`));
      fsyncSync(fd);
    } catch (e) {
      ftruncateSync(fd, size);
      throw e;
    }
  } catch (e) {
    throw ioError('append to', path, e);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Reads a file the user named, in bounded memory: a regular file (not a directory, device or FIFO) of at most
 * `maxBytes`. Refusals are usage errors naming `where`; a fault of the machine (EIO) is an IoError.
 */
export function readFileChecked(path: string, where: string, maxBytes: number): Buffer {
  if (!existsSync(path)) throw new UsageError(`${where}: no such file`);
  let fd: number | null = null;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UsageError(`${where}: not a regular file`);
    if (st.size > maxBytes)
      throw new UsageError(`${where}: ${st.size} bytes, more than the ${maxBytes} bytes ingraph reads from one file`);
    return readFully(fd, st.size);
  } catch (e) {
    const d = describeErrno(e);
    if (d && !RESOURCE_ERRNOS.has(d.errno)) throw new UsageError(`${where}: cannot read (${d.text})`);
    throw ioError('read', path, e);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Creates `dir` and its missing parents one level at a time (Node's recursive mkdir can spin forever on a
 * filesystem such as /proc that refuses it) and returns the directories it created, outermost first. A path the
 * filesystem refuses is a usage error about `option` (the option that named it); a full or failing disk is an IoError.
 */
export function makeDir(option: string, dir: string): string[] {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      const errno = describeErrno(e);
      if (errno && RESOURCE_ERRNOS.has(errno.errno)) throw ioError('create', d, e);
      throw new UsageError(`${option} ${dir}: cannot create ${d} (${errno?.errno ?? (e as Error).message})`).about(
        option,
      );
    }
  }
  return missing;
}

/** Removes the directories that `makeDir` created, innermost first, as long as they are empty. */
export function removeCreatedDirs(created: readonly string[]): void {
  for (const d of [...created].reverse()) {
    try {
      if (statSync(d).isDirectory()) rmdirSync(d);
    } catch {
      return; // not empty, or already gone: leave the rest
    }
  }
}
