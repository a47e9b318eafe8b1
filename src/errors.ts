/**
 * ingraph's typed errors. Each has a stable `code` that scripts can branch on; the CLI maps codes to its exit codes
 * (src/cli/errors.ts). Any other error is an internal failure.
 */

/** The base class: `code` is one of 'usage', 'diverged', 'not-promoted', 'locked', 'io', 'interrupted'. */
export class IngraphError extends Error {
  /** A run directory that can be resumed to continue the work this error stopped, where there is one. */
  resumeDir?: string;
  /**
   * The option (an API name from src/options.ts, e.g. "batchSize", or a run option such as "out") whose value the
   * error is about; the message then starts with that name, which the CLI replaces by the option's flag.
   */
  option?: string;

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

  /** Marks the error as about `option`, whose name starts the message; returns it. */
  about(option: string): this {
    this.option = option;
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

/** A UsageError about one option's value: "<option> <value>: <problem>". */
export class OptionError extends UsageError {
  constructor(option: string, value: unknown, problem: string) {
    super(`${option} ${Array.isArray(value) ? value.join(',') : String(value)}: ${problem}`);
    this.about(option);
  }
}

/**
 * Runs `work`, marking the typed errors it throws whose message starts with `option` as about that option (readers
 * of files that an option names say "<option> <path>: ...").
 */
export function aboutOption<T>(option: string, work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof IngraphError && e.option === undefined && e.message.startsWith(`${option} `)) e.about(option);
    throw e;
  }
}
