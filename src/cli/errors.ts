/**
 * How the CLI reports the API's typed errors: exit codes by error code (documented in the README and `ingraph train
 * --help`), and messages in the CLI's words: an option named at the start becomes its flag, a resumable run gets the
 * command that resumes it, a missing CUDA provider gets the install line.
 */
import { constants as osConstants } from 'os';
import { IngraphError, InterruptedError } from '../errors';

const EXIT_CODES: Record<string, number> = { usage: 2, diverged: 3, 'not-promoted': 4, locked: 5, io: 6 };

/** 1 for an internal error; 128 + the signal's number for an interruption. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof InterruptedError) return 128 + (osConstants.signals[e.signal] ?? 0);
  return e instanceof IngraphError ? (EXIT_CODES[e.code] ?? 1) : 1;
}

/** API options whose CLI flag is `--` and the same name. */
const OPTIONS = ['out', 'resume', 'init', 'freeze', 'model', 'ep', 'promote-to', 'compare', 'tensorboard'];

export const GPU_HELP =
  'see README section "GPU": in node_modules/onnxruntime-node run `ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install` (needs CUDA 12 and cuDNN 9)';

/** The one line the CLI prints for a typed error (after "ingraph: "). */
export function cliMessage(e: IngraphError): string {
  let m = e.message.replace(/^ingraph:? /, '').replace(new RegExp(`^(${OPTIONS.join('|')}) `), '--$1 ');
  if (m.startsWith('--ep cuda: ')) m += `; ${GPU_HELP}`;
  if (e.resumeDir) m += `; continue with --resume ${e.resumeDir}`;
  return m;
}
