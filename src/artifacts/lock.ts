/**
 * One run per output directory: `DIR/.ingraph.lock` holds the owner's pid, created exclusively. A lock whose
 * process is gone (a run killed with SIGKILL) is stale and is taken over, with a warning.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'fs';
import { join } from 'path';
import { LockedError } from '../errors';

export const LOCK_FILE = '.ingraph.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live process holding the lock at `path`, or null when there is none or it is stale. */
function liveOwner(path: string): number | null {
  if (!existsSync(path)) return null;
  const owner = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner) ? owner : null;
}

function locked(dir: string, owner: number): LockedError {
  return new LockedError(`${dir}: another ingraph run (pid ${owner}) is using this directory (lock ${join(dir, LOCK_FILE)})`);
}

/** Refuses early, before validation that might fail for another reason, if a live run holds `dir`. */
export function checkUnlocked(dir: string): void {
  const owner = liveOwner(join(dir, LOCK_FILE));
  if (owner !== null) throw locked(dir, owner);
}

/** Takes the lock of `dir` (which must exist); returns its release. */
export function acquireLock(dir: string, warn: (text: string) => void): () => void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = liveOwner(path);
    if (owner !== null) throw locked(dir, owner);
    warn(`warning: taking over the stale lock of ${dir} (its process is gone)`);
    rmSync(path, { force: true });
  }
  throw new LockedError(`${dir}: could not take the lock ${path}`);
}
