/** Flag parsing: node's parseArgs with one-line UsageErrors, and flags that need another. */
import { parseArgs, ParseArgsConfig } from 'util';
import { UsageError } from '../errors';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export function parse(command: string, argv: string[], options: Options, positionals = 0): Parsed {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: positionals > 0,
      strict: true,
    });
  } catch (e) {
    // One line, keeping node's hints (e.g. how to give a value that starts with a dash).
    throw new UsageError(`ingraph ${command}: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
  if (parsed.positionals.length > positionals)
    throw new UsageError(`ingraph ${command}: unexpected argument "${parsed.positionals[positionals]}"`);
  return parsed;
}

/** Refuses the first of `flags` that is given without `requirement`: flags that mean something only with another. */
export function onlyWith(values: Parsed['values'], flags: readonly string[], requirement: string): void {
  const given = flags.find((f) => values[f] !== undefined);
  if (given !== undefined) throw new UsageError(`--${given}: only with ${requirement}`);
}
