/** Runs the built `ingraph` CLI as a child process and hands each of its `--json` lines to the caller, as they come. */
import { spawn } from 'child_process';
import { join } from 'path';
import { PROJECT_ROOT } from '../src/version';

const CLI = join(PROJECT_ROOT, 'dist', 'src', 'cli.js');

/** A JSON line of `ingraph train --json` (start, log, epoch, done, error). */
export type CliEvent = { type: string } & Record<string, unknown>;

/** Runs `ingraph <args>` (stderr passed through when `showStderr`), calling `onEvent` per stdout line; resolves with its exit code. */
export function runCliEvents(
  args: string[],
  onEvent: (e: CliEvent) => void,
  showStderr = false,
): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', showStderr ? 'inherit' : 'ignore'],
    });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onEvent(JSON.parse(buf.slice(0, nl)) as CliEvent);
        buf = buf.slice(nl + 1);
      }
    });
    child.on('error', reject);
    child.on('close', resolve);
  });
}
