/** Checks on output paths, made before any work so a bad path fails fast and touches nothing. */
import { accessSync, constants, existsSync, statSync } from 'fs';
import { dirname, resolve } from 'path';
import { UsageError } from '../errors';

export function checkWritableFile(flag: string, path: string): string {
  const abs = resolve(path);
  if (existsSync(abs) && statSync(abs).isDirectory()) throw new UsageError(`${flag} ${path}: is a directory`);
  checkWritableDir(flag, dirname(abs), path);
  return abs;
}

/** The nearest existing ancestor of `dir` must be a writable directory (missing levels are created later). */
export function checkWritableDir(flag: string, dir: string, shown = dir): void {
  let d = resolve(dir);
  while (!existsSync(d)) d = dirname(d);
  if (!statSync(d).isDirectory()) throw new UsageError(`${flag} ${shown}: ${d} is not a directory`);
  try {
    accessSync(d, constants.W_OK);
  } catch {
    throw new UsageError(`${flag} ${shown}: ${d} is not writable`);
  }
}
