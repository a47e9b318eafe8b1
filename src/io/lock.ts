/**
 * Lock files: one run per output directory (`DIR/.ingraph.lock`) and one promotion at a time per deployed model
 * (`MODEL.lock`). A lock names its owner by pid, the process's start time and the boot it runs in, so a lock whose
 * process is gone, or whose pid now belongs to an unrelated process, is stale and is taken over with a warning.
 * A lock file is written complete under a temporary name and linked into place, which fails if a lock exists.
 */
import { closeSync, linkSync, openSync, readFileSync, rmSync, statSync } from 'fs';
import { basename, dirname, join } from 'path';
import { InterruptedError, LockedError } from '../errors';
import { ioError, removeQuietly, writeFully } from './files';

export const LOCK_FILE = '.ingraph.lock';

interface Owner {
  pid: number;
  /** Start time of the process in clock ticks since boot (Linux /proc), null where unknown. */
  start: string | null;
  boot: string | null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Field 22 of /proc/PID/stat; the name in field 2 may hold spaces and parentheses, so count from its end. */
function processStart(pid: number): string | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  return stat === null ? null : (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null);
}

function bootId(): string | null {
  return readOrNull('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
}

function self(): Owner {
  return { pid: process.pid, start: processStart(process.pid), boot: bootId() };
}

/** A lock's owner: JSON, or the bare pid that ingraph 0.1 wrote. */
function parseOwner(text: string): Owner | null {
  try {
    const o = JSON.parse(text) as unknown;
    if (typeof o === 'number') return { pid: o, start: null, boot: null };
    if (typeof o !== 'object' || o === null) return null;
    const { pid, start, boot } = o as Partial<Owner>;
    if (Number.isInteger(pid) && (pid as number) > 0)
      return { pid: pid as number, start: start ?? null, boot: boot ?? null };
  } catch {
    // not a lock ingraph wrote; judged stale below
  }
  return null;
}

/** Whether the process that wrote `o` still runs ('alive'), or its pid is free or taken by another process. */
function ownerState(o: Owner): 'alive' | 'gone' | 'reused' {
  try {
    process.kill(o.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return 'gone';
  }
  const boot = bootId();
  const start = processStart(o.pid);
  const sameProcess = !(o.boot && boot && o.boot !== boot) && !(o.start && start && o.start !== start);
  return sameProcess ? 'alive' : 'reused';
}

function isSelf(o: Owner): boolean {
  const me = self();
  return o.pid === me.pid && o.start === me.start;
}

/** The live owner of the lock at `path` other than this process, or null when there is none or it is stale. */
function liveOwner(path: string): Owner | null {
  const text = readOrNull(path);
  if (text === null) return null;
  const o = parseOwner(text);
  return o && !isSelf(o) && ownerState(o) === 'alive' ? o : null;
}

/** Creates the lock file `path` naming this process, complete, unless it exists (then false). */
function create(path: string): boolean {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeFully(fd, Buffer.from(`${JSON.stringify(self())}\n`));
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioError('write the lock', path, e);
  } finally {
    removeQuietly(tmp);
  }
}

/**
 * Removes the stale lock at `path` if it still holds `staleText`. A guard file makes this exclusive, so two processes
 * that judged the same lock stale cannot both take it; a guard older than a few seconds was left by a crash.
 */
function removeStale(path: string, staleText: string): void {
  const guard = `${path}.takeover`;
  if (!create(guard)) {
    const age = Date.now() - (statOrNull(guard)?.mtimeMs ?? Date.now());
    if (age > 5000) rmSync(guard, { force: true });
    return;
  }
  try {
    if (readOrNull(path) === staleText) rmSync(path, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
}

function statOrNull(path: string) {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

export interface Lock {
  path: string;
  release(): void;
}

/** One attempt: the lock, or the live process holding it. A stale lock is taken over with a warning. */
function tryAcquire(path: string, warn: (text: string) => void): Lock | Owner {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(path)) return { path, release: () => removeQuietly(path) };
    const text = readOrNull(path);
    if (text === null) continue;
    const owner = parseOwner(text);
    const state = owner && (isSelf(owner) ? 'alive' : ownerState(owner));
    if (owner && state === 'alive') return owner;
    const why = !owner
      ? 'it is not a lock ingraph wrote'
      : state === 'reused'
        ? `pid ${owner.pid} now belongs to another process`
        : `process ${owner.pid} is gone`;
    warn(`warning: taking over the stale lock ${path} (${why})`);
    removeStale(path, text);
  }
  const owner = parseOwner(readOrNull(path) ?? '');
  if (owner) return owner;
  throw new LockedError(`could not take the lock ${path}`);
}

const isLock = (l: Lock | Owner): l is Lock => 'release' in l;

function lockedRun(dir: string, owner: Owner): LockedError {
  return new LockedError(
    `${dir}: another ingraph run (pid ${owner.pid}) is using this directory (lock ${join(dir, LOCK_FILE)})`,
  );
}

/** Refuses early, before validation that might fail for another reason, if a live run holds `dir`. */
export function checkUnlocked(dir: string): void {
  const owner = liveOwner(join(dir, LOCK_FILE));
  if (owner !== null) throw lockedRun(dir, owner);
}

/** Takes the run lock of `dir` (which must exist); a live holder is a LockedError. */
export function acquireLock(dir: string, warn: (text: string) => void): Lock {
  const got = tryAcquire(join(dir, LOCK_FILE), warn);
  if (!isLock(got)) throw lockedRun(dir, got);
  return got;
}

/**
 * Takes the lock `path`, waiting while a live process holds it, up to `timeoutMs`; then a LockedError. An aborted
 * `signal` stops the wait with an InterruptedError.
 */
export async function acquireLockWaiting(
  path: string,
  timeoutMs: number,
  warn: (text: string) => void,
  signal?: AbortSignal,
): Promise<Lock> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = tryAcquire(path, warn);
    if (isLock(got)) return got;
    if (signal?.aborted)
      throw new InterruptedError(signal.reason as NodeJS.Signals, `stopped while waiting for the lock ${path}`);
    if (Date.now() > deadline)
      throw new LockedError(`${path}: held by process ${got.pid} for more than ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
  }
}
