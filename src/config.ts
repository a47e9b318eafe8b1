/**
 * A run's configuration from the option schema (src/options.ts): the defaults, the validation and the resume rules,
 * all derived from it. Errors are OptionErrors naming the option.
 */
import { OptionError, UsageError } from './errors';
import { CONFIG_OPTIONS, defaultOf, OptionSpec, optionNamed, rangeProblem, TrainConfig, valueAt } from './options';

/** Sets the value at an option's path ("schedule.kind") of a config under construction. */
function setAt(c: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop() as string;
  const parent = keys.reduce((o, k) => (o[k] ??= {}) as Record<string, unknown>, c);
  parent[last] = value;
}

/** `overrides` as a flat map of option paths ("schedule.kind") to values, for the options it sets. */
function given(overrides: object): Map<string, unknown> {
  return new Map(
    CONFIG_OPTIONS.map((o) => [o.name, valueAt(overrides, o.name)] as const).filter(([, v]) => v !== undefined),
  );
}

/** Refuses a value outside its option's range, naming the option. */
function check(spec: OptionSpec, value: unknown): void {
  const problem = rangeProblem(spec, value);
  if (problem) throw new OptionError(spec.name, value, problem);
}

/**
 * The configuration of a run of `model`: the schema's defaults (the seed's recipe: 2 epochs, batch 64, SGD lr 0.01
 * momentum 0.5, shuffled, loss logged every 300 batches), then `overrides`; every value checked.
 */
export function trainConfig(model: string, overrides: Partial<Omit<TrainConfig, 'model'>> = {}): TrainConfig {
  const values = given(overrides);
  const optimizer = (values.get('optimizer') ?? 'sgd') as TrainConfig['optimizer'];
  const c: Record<string, unknown> = {};
  for (const spec of CONFIG_OPTIONS) {
    const value =
      spec.name === 'model' ? model : values.has(spec.name) ? values.get(spec.name) : defaultOf(spec, optimizer);
    check(spec, value);
    setAt(c, spec.name, value);
  }
  return c as unknown as TrainConfig;
}

/**
 * The config of a resumed run: the checkpoint's `saved` config with `overrides` of the options a resume may change
 * (epochs, max steps, log interval). Any other option given with another value is refused: the run's config is in
 * its checkpoint.
 */
export function resumeConfig(saved: TrainConfig, overrides: Partial<TrainConfig>): TrainConfig {
  for (const [name, value] of given(overrides)) {
    const spec = optionNamed(name) as OptionSpec;
    if (spec.resumable || JSON.stringify(value) === JSON.stringify(valueAt(saved, name))) continue;
    if (name === 'model')
      throw new OptionError('model', value, `that run trains the ${saved.model} net, not ${String(value)}`);
    throw new UsageError(`${name} cannot change on resume (the run's config is in its checkpoint)`).about(name);
  }
  const { model, ...rest } = { ...saved, ...overrides };
  return trainConfig(model, rest);
}
