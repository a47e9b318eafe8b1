/** Checks on output paths, made before any work so a bad path fails fast and touches nothing. */
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, rmdirSync, rmSync, statSync } from 'fs';
import { dirname, join, resolve } from 'path';
import { UsageError } from '../errors';

/**
 * `path` names a file that can be written: its directory exists and a file can be created there (tried with an empty
 * probe file, removed at once: permission bits do not stop root, but a read-only or pseudo filesystem does).
 */
export function checkWritableFile(flag: string, path: string): string {
  const abs = resolve(path);
  if (existsSync(abs) && statSync(abs).isDirectory()) throw new UsageError(`${flag} ${path}: is a directory`);
  if (!existsSync(dirname(abs)))
    throw new UsageError(`${flag} ${path}: no directory ${dirname(abs)} (create it first)`);
  if (!statSync(dirname(abs)).isDirectory())
    throw new UsageError(`${flag} ${path}: ${dirname(abs)} is not a directory`);
  const probe = join(dirname(abs), `.ingraph-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx'));
    rmSync(probe);
  } catch (e) {
    throw new UsageError(
      `${flag} ${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return abs;
}

/**
 * The nearest existing ancestor of `dir` must be a directory where a directory can be made (missing levels are
 * created later): tried with an empty probe directory, removed at once, as for files.
 */
export function checkWritableDir(flag: string, dir: string, shown = dir): void {
  let d = resolve(dir);
  let firstMissing: string | null = null;
  while (!existsSync(d)) [firstMissing, d] = [d, dirname(d)];
  if (!statSync(d).isDirectory()) throw new UsageError(`${flag} ${shown}: ${d} is not a directory`);
  try {
    accessSync(d, constants.W_OK);
    const probe = join(d, `.ingraph-probe-${process.pid}`);
    mkdirSync(probe);
    rmdirSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UsageError(
      firstMissing
        ? `${flag} ${shown}: cannot create ${firstMissing} (${code})`
        : `${flag} ${shown}: ${d} is not writable (${code})`,
    );
  }
}
