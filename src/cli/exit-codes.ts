/** The CLI's exit codes, by the typed errors' codes (documented in the README and `ingraph train --help`). */
import { constants as osConstants } from 'os';
import { IngraphError, InterruptedError } from '../errors';

const EXIT_CODES: Record<string, number> = { usage: 2, diverged: 3, 'not-promoted': 4, locked: 5, io: 6 };

/** 1 for an internal error; 128 + the signal's number for an interruption. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof InterruptedError) return 128 + (osConstants.signals[e.signal] ?? 0);
  return e instanceof IngraphError ? EXIT_CODES[e.code] ?? 1 : 1;
}
