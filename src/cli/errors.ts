/**
 * How the CLI reports the API's typed errors: exit codes by error code (documented in the README and `ingraph train
 * --help`), and messages in the CLI's words: the option an error is about becomes its flag, a resumable run gets the
 * command that resumes it, a missing CUDA provider gets the install line.
 */
import { constants as osConstants } from 'os';
import { IngraphError, InterruptedError } from '../errors';
import { flagOf } from '../options';

const EXIT_CODES: Record<string, number> = { usage: 2, diverged: 3, 'not-promoted': 4, locked: 5, io: 6 };

/** 1 for an internal error; 128 + the signal's number for an interruption. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof InterruptedError) return 128 + (osConstants.signals[e.signal] ?? 0);
  return e instanceof IngraphError ? (EXIT_CODES[e.code] ?? 1) : 1;
}

export const GPU_HELP =
  'see docs/gpu.md: in node_modules/onnxruntime-node run `ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install` (needs CUDA 12 and cuDNN 9)';

/** The one line the CLI prints for a typed error (after "ingraph: "). */
export function cliMessage(e: IngraphError): string {
  const text = e.message.replace(/^ingraph:? /, '');
  // An error about an option starts with the option's API name: the CLI says its flag instead.
  let m = e.option && text.startsWith(e.option) ? flagOf(e.option) + text.slice(e.option.length) : text;
  if (m.startsWith('--ep cuda: ')) m += `; ${GPU_HELP}`;
  if (e.resumeDir) m += `; continue with --resume ${e.resumeDir}`;
  return m;
}
