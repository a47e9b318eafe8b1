/**
 * Errors the CLI reports as one line without a stack trace. UsageError: bad flags or bad input (exit 2).
 * Everything else is an internal failure (exit 1).
 */
export class UsageError extends Error {
  readonly exitCode: number = 2;
}
