/**
 * The CLI side of the option schema (src/options.ts): node's parseArgs options, flag values turned into typed
 * values (a bad one is a one-line UsageError naming the flag), and the `--help` lines, all from the schema.
 */
import { ParseArgsConfig } from 'util';
import { UsageError } from '../errors';
import { defaultOf, OptionSpec, rangeProblem, RUN_OPTION } from '../options';
import { parse, Parsed } from './args';

/** parseArgs' options for `specs`: a string per valued flag (several where repeatable), a boolean per switch. */
export function parseArgsOptions(specs: readonly OptionSpec[]): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(
    specs.map((s) => [
      s.flag,
      s.kind === 'switch' ? { type: 'boolean' } : { type: 'string', multiple: s.kind === 'text' && !!s.repeatable },
    ]),
  );
}

/** A flag's string as the option's type; `--flag value: problem` where it is not one. */
function typed(spec: OptionSpec, raw: string | boolean | (string | boolean)[]): unknown {
  const refuse = (problem: string) => new UsageError(`--${spec.flag} ${String(raw)}: ${problem}`);
  switch (spec.kind) {
    case 'switch':
      return spec.value;
    case 'int':
      if (!/^-?\d+$/.test(String(raw).trim())) throw refuse('not an integer');
      return Number(raw);
    case 'number': {
      const n = Number(raw);
      if (String(raw).trim() === '' || !Number.isFinite(n)) throw refuse('not a finite number');
      return n;
    }
    default:
      return raw;
  }
}

/** The values of the flags given, by option name, typed and range-checked. */
export function givenOptions(values: Parsed['values'], specs: readonly OptionSpec[]): Map<string, unknown> {
  const given = new Map<string, unknown>();
  for (const spec of specs) {
    const raw = values[spec.flag];
    if (raw === undefined) continue;
    const value = typed(spec, raw);
    const problem = spec.kind === 'text' ? null : rangeProblem(spec, value);
    if (problem) throw new UsageError(`--${spec.flag} ${String(raw)}: ${problem}`);
    given.set(spec.name, value);
  }
  return given;
}

/** Nested config values ("schedule.kind" → { schedule: { kind } }) from the given options of config scope. */
export function nested(given: Map<string, unknown>, specs: readonly OptionSpec[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    if (!given.has(spec.name)) continue;
    const keys = spec.name.split('.');
    const last = keys.pop() as string;
    const parent = keys.reduce((o, k) => (o[k] ??= {}) as Record<string, unknown>, out);
    parent[last] = given.get(spec.name);
  }
  return out;
}

/** " (default X)" for an option with a default worth saying; the optimizer's defaults for each optimizer. */
function defaultText(s: OptionSpec): string {
  const d = s.default;
  if (typeof d === 'function')
    return ` (default ${d({ optimizer: 'sgd' })} for sgd, ${d({ optimizer: 'adamw' })} for adamw)`;
  if (d === null || s.kind === 'switch' || (Array.isArray(d) && d.length === 0)) return '';
  return ` (default ${String(d)})`;
}

/** The `--help` lines of `specs`: the flag and its placeholder, then the documentation and default, aligned. */
export function optionsHelp(specs: readonly OptionSpec[]): string {
  const width = 31;
  return specs
    .map((s) => {
      const head = `  --${s.flag}${s.arg ? ` ${s.arg}` : ''}`;
      const [first, ...more] = `${s.doc}${defaultText(s)}`.split('\n');
      const pad = ' '.repeat(width);
      return [
        head.length < width ? head.padEnd(width) + first : `${head}   ${first}`,
        ...more.map((l) => pad + l),
      ].join('\n');
    })
    .join('\n');
}

/** A command's flags, parsed and checked against its option specs. */
export interface ParsedCommand {
  values: Parsed['values'];
  positionals: string[];
  /** The typed values of the flags given, by option name. */
  given: Map<string, unknown>;
  /** The value of option `name`: the flag's, else its default. */
  value<T>(name: string): T;
  /** The value of option `name`, which must be given. */
  required(name: string): string;
  /** Whether `--help` was asked for. */
  help: boolean;
}

/** Parses `argv` for `command` by its option `specs`: unknown flags, bad values and missing ones are UsageErrors. */
export function parseCommand(
  command: string,
  argv: string[],
  specs: readonly OptionSpec[],
  positionals = 0,
): ParsedCommand {
  const parsed = parse(command, argv, parseArgsOptions(specs), positionals);
  const help = !!parsed.values.help;
  const given = help ? new Map<string, unknown>() : givenOptions(parsed.values, specs);
  const spec = (name: string) => specs.find((s) => s.name === name) as OptionSpec;
  const value = <T>(name: string) => (given.has(name) ? given.get(name) : defaultOf(spec(name), 'sgd')) as T;
  const required = (name: string) => {
    const v = given.get(name) as string | undefined;
    if (v === undefined || v === '') throw new UsageError(`ingraph ${command}: --${spec(name).flag} is required`);
    return v;
  };
  return { values: parsed.values, positionals: parsed.positionals, given, value, required, help };
}

/** `--mean M[,M,M]` and `--std S[,S,S]`, given together; undefined without them. */
export function normalisationFlags(given: Map<string, unknown>): { mean: number[]; std: number[] } | undefined {
  const [mean, std] = (['mean', 'std'] as const).map((name) => {
    const text = given.get(name) as string | undefined;
    if (text === undefined) return undefined;
    const values = text.split(',').map(Number);
    if (text.trim() === '' || !values.every(Number.isFinite))
      throw new UsageError(`--${name} ${text}: not numbers, e.g. 0.5 or 0.49,0.48,0.45`);
    return values;
  });
  if ((mean === undefined) !== (std === undefined))
    throw new UsageError(`--${mean ? 'mean' : 'std'}: needs --${mean ? 'std' : 'mean'} too`);
  return mean && std ? { mean, std } : undefined;
}

/** `--model-file FILE`: the model file a command reads (eval, serve); each command gives it its own doc. */
export const MODEL_FILE_OPTION: OptionSpec = {
  ...RUN_OPTION,
  name: 'model-file',
  flag: 'model-file',
  kind: 'text',
  default: null,
  arg: 'FILE',
  doc: 'a model file',
};
