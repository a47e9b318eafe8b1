/**
 * Filesystems that fail on purpose: a tmpfs of an exact size (full at a chosen byte), remounted read-only or larger,
 * mounted by the test itself. Needs root (CI runs as root); `tmpfsProbe` says why it cannot run elsewhere.
 */
import { spawnSync } from 'child_process';
import { readdirSync, statSync } from 'fs';
import { join } from 'path';
import { tempDir } from './cli';

export const PAGE = 4096;

/** tmpfs charges whole pages: the space a file of `bytes` takes. */
export const pages = (bytes: number): number => Math.ceil(bytes / PAGE);

function mount(args: string[]): string | null {
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || r.error?.message || `mount exited ${r.status}`).trim();
}

const mounted: string[] = [];

/** A fresh tmpfs of `bytes` (whole pages), unmounted by `unmountAll`. */
export function tmpfs(bytes: number): string {
  const dir = tempDir('ingraph-tmpfs-');
  const err = mount(['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  if (err) throw new Error(`mount tmpfs on ${dir}: ${err}`);
  mounted.push(dir);
  return dir;
}

export function remount(dir: string, option: string): void {
  const err = mount(['-o', `remount,${option}`, dir]);
  if (err) throw new Error(`remount ${option} ${dir}: ${err}`);
}

export function unmountAll(): void {
  for (const dir of mounted.splice(0)) spawnSync('umount', ['-l', dir]);
}

/** Why tmpfs tests cannot run here, or null when they can. */
export function tmpfsProbe(): string | null {
  if (process.getuid?.() !== 0) return 'not root (mounting a tmpfs needs root; CI runs as root)';
  try {
    tmpfs(PAGE);
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    unmountAll();
  }
}

/** Every file under `dir`, recursively, relative to it. */
export function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? listFiles(p, `${prefix}${f}/`) : [`${prefix}${f}`];
  });
}
