/** Writing artifacts safely: a temporary name in the same directory, fsync, rename; and checksums. */
import { createHash } from 'crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'fs';
import { basename, dirname, join, resolve } from 'path';
import { UsageError } from '../errors';

/** Writes `path` through a temporary name, fsync and rename; with `flag`, a refusal is a usage error naming it. */
export function writeFileAtomic(path: string, data: Uint8Array | string, flag?: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    throw flag && code ? new UsageError(`${flag} ${path}: cannot write (${code})`) : e;
  }
  // Make the rename itself durable.
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Creates `dir` and its missing parents one level at a time (Node's recursive mkdir can spin forever on a
 * filesystem such as /proc that refuses it); a refusal is a usage error naming the flag.
 */
export function makeDir(flag: string, dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      throw new UsageError(`${flag} ${dir}: cannot create ${d} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
}
