import { UsageError } from '../errors';

/** A data file or array that is missing or malformed; a usage error naming it (exit 2). */
export class DataError extends UsageError {}
