/**
 * Errors the CLI reports as one line without a stack trace, each with its documented exit code and a stable `code`
 * that scripts (and `--json`) can branch on. Anything else is an internal failure (exit 1).
 */
import { constants as osConstants } from 'os';

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number, readonly code: string) {
    super(message);
  }
}

/** Bad flags or bad input; nothing was written (exit 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2, 'usage');
  }
}

/** The loss or a parameter became non-finite; the last good checkpoint is kept (exit 3). */
export class DivergedError extends CliError {
  constructor(message: string) {
    super(message, 3, 'diverged');
  }
}

/** `--promote-to` kept the deployed model, which scored better (exit 4). */
export class PromotionRefusedError extends CliError {
  constructor(message: string) {
    super(message, 4, 'not-promoted');
  }
}

/** Another live run holds the output directory, or another promotion the deployed model (exit 5). */
export class LockedError extends CliError {
  constructor(message: string) {
    super(message, 5, 'locked');
  }
}

/**
 * The filesystem failed a write or read while working (disk full, read-only or removed directory, lost
 * permission): nothing incomplete was left under a final name (exit 6). `errno` is the system's code (ENOSPC, ...).
 */
export class IoError extends CliError {
  constructor(message: string, readonly path: string, readonly errno: string) {
    super(message, 6, 'io');
  }
}

/** SIGINT or SIGTERM: the run stopped at its next safe point (exit 128 + the signal's number). */
export class InterruptedError extends CliError {
  constructor(readonly signal: NodeJS.Signals, message: string) {
    super(`${signal}: ${message}`, 128 + (osConstants.signals[signal] ?? 0), 'interrupted');
  }
}
