/**
 * Errors the CLI reports as one line without a stack trace, each with its documented exit code. Anything else is an
 * internal failure (exit 1).
 */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** Bad flags or bad input; nothing was written (exit 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** The loss or a parameter became non-finite; the last good checkpoint is kept (exit 3). */
export class DivergedError extends CliError {
  constructor(message: string) {
    super(message, 3);
  }
}

/** `--promote-to` kept the deployed model, which scored better (exit 4). */
export class PromotionRefusedError extends CliError {
  constructor(message: string) {
    super(message, 4);
  }
}

/** Another live run holds the output directory (exit 5). */
export class LockedError extends CliError {
  constructor(message: string) {
    super(message, 5);
  }
}

/** SIGINT or SIGTERM: the run stopped after its current step and checkpointed (exit 128 + the signal's number). */
export class InterruptedError extends CliError {}
