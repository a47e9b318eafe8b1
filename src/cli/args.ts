/** Flag parsing and validation: every bad value becomes a one-line UsageError naming the flag. */
import { parseArgs, ParseArgsConfig } from 'util';
import { UsageError } from '../errors';
import { IntOption, optionNamed } from '../options';

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

export function intFlag(
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`${flag} ${value}: not an integer`);
  const n = Number(value);
  if (n < min || n > max)
    throw new UsageError(
      `${flag} ${value}: must be ${max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`}`,
    );
  return n;
}

export function optionalIntFlag(flag: string, value: string | undefined, min: number): number | null {
  return value === undefined ? null : intFlag(flag, value, 0, min);
}

/** A finite number, optionally required positive or non-negative. */
export function numberFlag(
  flag: string,
  value: string | undefined,
  fallback: number,
  rule: 'positive' | 'non-negative' | 'fraction',
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} ${value}: not a finite number`);
  if (rule === 'positive' && n <= 0) throw new UsageError(`${flag} ${value}: must be a positive number`);
  if (rule === 'non-negative' && n < 0) throw new UsageError(`${flag} ${value}: must not be negative`);
  if (rule === 'fraction' && (n < 0 || n >= 1)) throw new UsageError(`${flag} ${value}: must be in [0, 1)`);
  return n;
}

export function choiceFlag<T extends string>(
  flag: string,
  value: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`${flag} ${value}: must be one of ${choices.join(', ')}`);
  return value as T;
}

export function requireFlag(command: string, flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`ingraph ${command}: ${flag} is required`);
  return value;
}

/** Refuses the first of `flags` that is given without `requirement`: flags that mean something only with another. */
export function onlyWith(values: Parsed['values'], flags: readonly string[], requirement: string): void {
  const given = flags.find((f) => values[f] !== undefined);
  if (given !== undefined) throw new UsageError(`--${given}: only with ${requirement}`);
}

/**
 * `--quantize int8 [--calibrate N]`: how many training images to calibrate on (default 1000), or null without
 * --quantize, when --calibrate and the `dependents` flags are refused.
 */
export function quantizeFlags(values: Parsed['values'], dependents: readonly string[] = []): number | null {
  const quantize = values.quantize as string | undefined;
  if (quantize === undefined) return (onlyWith(values, ['calibrate', ...dependents], '--quantize int8'), null);
  choiceFlag('--quantize', quantize, ['int8'] as const, 'int8');
  const calibrate = optionNamed('calibrate') as IntOption;
  const n = intFlag(
    '--calibrate',
    values.calibrate as string | undefined,
    calibrate.default as number,
    calibrate.min,
    calibrate.max,
  );
  return n;
}
