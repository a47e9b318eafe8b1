/**
 * ingraph's typed errors. Each has a stable `code` that scripts can branch on; the CLI maps codes to its exit codes
 * (src/cli/errors.ts). Any other error is an internal failure.
 */

/** The base class: `code` is one of 'usage', 'diverged', 'not-promoted', 'locked', 'io', 'interrupted'. */
export class IngraphError extends Error {
  /** A run directory that can be resumed to continue the work this error stopped, where there is one. */
  resumeDir?: string;

  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** Marks the error as leaving `dir` resumable; returns it. */
  resumable(dir: string): this {
    this.resumeDir = dir;
    return this;
  }
}

/** Bad options or bad input (a file, a flag, data); nothing was written. */
export class UsageError extends IngraphError {
  constructor(message: string) {
    super(message, 'usage');
  }
}

/** The loss or a parameter became non-finite; the last good checkpoint is kept. */
export class DivergedError extends IngraphError {
  constructor(message: string) {
    super(message, 'diverged');
  }
}

/** Promotion kept the deployed model, which scored better. */
export class PromotionRefusedError extends IngraphError {
  constructor(message: string) {
    super(message, 'not-promoted');
  }
}

/** Another live run holds the output directory, or another promotion the deployed model. */
export class LockedError extends IngraphError {
  constructor(message: string) {
    super(message, 'locked');
  }
}

/**
 * The filesystem failed a write or read while working (disk full, read-only or removed directory, lost
 * permission): nothing incomplete was left under a final name. `errno` is the system's code (ENOSPC, ...).
 */
export class IoError extends IngraphError {
  constructor(
    message: string,
    readonly path: string,
    readonly errno: string,
  ) {
    super(message, 'io');
  }
}

/** An aborted AbortSignal (reason: the signal's name, e.g. 'SIGTERM') stopped the work at a safe point. */
export class InterruptedError extends IngraphError {
  constructor(
    readonly signal: NodeJS.Signals,
    message: string,
  ) {
    super(`${signal}: ${message}`, 'interrupted');
  }
}
