/** The project's version and root, found the same way from src/ (tests) and dist/src/ (the built CLI). */
import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`ingraph: no package.json above ${start}`);
  }
}

export const PROJECT_ROOT = findRoot(__dirname);
export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
