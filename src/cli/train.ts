import { join, resolve } from 'path';
import { checkUnlocked } from '../io/lock';
import { DataOptions, defaultMnistDir } from '../data/mnist';
import { IngraphError, UsageError } from '../errors';
import { cliMessage, exitCodeOf } from './errors';
import { Network, networkByName } from '../models';
import { importModel } from '../api';
import { CONFIG_OPTIONS, defaultValue, EpChoice, OptionSpec, TRAIN_OPTIONS, TrainConfig } from '../options';
import { deployedModel, PromotionPlan } from '../run/promote';
import { trainConfig } from '../config';
import { Reporter } from '../train/observers';
import { RunOptions, train } from '../train/run';
import { onlyWith, parse } from './args';
import { givenOptions, nested, normalisationFlags, optionsHelp, parseArgsOptions } from './options';
import { checkWritableDir, checkWritableFile } from './output';

export const TRAIN_HELP = `usage: ingraph train [flags]

Trains a network with the training step as an ONNX graph, logs like the seed, evaluates on the test set after
each epoch, and writes the training artifacts. Defaults reproduce the seed's recipe.
${optionsHelp(TRAIN_OPTIONS)}
Exit codes: 0 done, 1 internal error, 2 bad usage or input (nothing written), 3 diverged (last good checkpoint
kept), 4 promotion refused (deployed model kept), 5 output directory locked by another run, 6 I/O fault (disk
full, read-only, removed or forbidden; nothing torn, last complete checkpoint kept), 130/143 stopped by
SIGINT/SIGTERM at the next safe point, with a checkpoint.`;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The config options given on the command line, nested as TrainConfig holds them. */
function configOverrides(given: Map<string, unknown>): Partial<TrainConfig> {
  return nested(given, CONFIG_OPTIONS);
}

/** A new run's config: the schema's defaults and the flags given; the model a built-in net or the imported one. */
function newConfig(given: Map<string, unknown>, imported: Network | undefined): TrainConfig {
  const { model = defaultValue('model') as string, ...rest } = configOverrides(given);
  return trainConfig(imported?.name ?? networkByName(model).name, rest);
}

/** `--model FILE.onnx`: the network imported from that file (a built-in name gives none). */
function importedNetwork(given: Map<string, unknown>): Network | undefined {
  const model = given.get('model') as string | undefined;
  return model !== undefined && /\.onnx$/i.test(model) ? importModel(model) : undefined;
}

/** Refuses the run options (e.g. --out, --init) that mean nothing for a resumed run. */
function checkResumable(given: Map<string, unknown>): void {
  const fixed = TRAIN_OPTIONS.find((s: OptionSpec) => s.scope === 'run' && !s.resumable && given.has(s.name));
  if (fixed) throw new UsageError(`--${fixed.flag} cannot change on resume (the run's config is in its checkpoint)`);
}

function promotionPlan(given: Map<string, unknown>): PromotionPlan | null {
  const target = given.get('promoteTo') as string | undefined;
  if (target === undefined) {
    if (given.has('promoteTolerance')) throw new UsageError('--promote-tolerance: needs --promote-to');
    return null;
  }
  const abs = checkWritableFile('--promote-to', target);
  deployedModel(abs);
  return { target: abs, tolerance: valueOf<number>(given, 'promoteTolerance') };
}

/** `--quantize int8 [--calibrate N]`: how many training images to calibrate on, or null without --quantize. */
function quantizePlan(values: Values, given: Map<string, unknown>): { calibrationImages: number } | null {
  if (!given.has('quantize')) return (onlyWith(values, ['calibrate'], '--quantize int8'), null);
  return { calibrationImages: valueOf<number>(given, 'calibrate') };
}

function reporter(json: boolean): Reporter {
  const human = json ? process.stderr : process.stdout;
  const bar = !json && process.stderr.isTTY;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\r\x1b[K');
    drawn = false;
  };
  return {
    line(text) {
      clear();
      human.write(`${text}\n`);
    },
    event(e) {
      if (json) process.stdout.write(`${JSON.stringify(e)}\n`);
    },
    progress(epoch, batch, batches, loss) {
      if (!bar || (batch % 10 !== 0 && batch !== batches)) return;
      draw(`epoch ${epoch + 1}`, batch, batches, ` loss ${loss.toFixed(3)}`);
    },
    loading(split, done, total) {
      if (bar && (done === total || done % Math.ceil(total / 100) === 0)) draw(`decoding ${split} images`, done, total);
    },
  };

  function draw(what: string, done: number, total: number, after = ''): void {
    const width = 30;
    const filled = Math.round((width * done) / total);
    process.stderr.write(
      `\r\x1b[K${what} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${after}`,
    );
    drawn = true;
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parse('train', argv, parseArgsOptions(TRAIN_OPTIONS));
  if (values.help) return (void console.log(TRAIN_HELP), 0);
  const json = !!values.json;
  const report = reporter(json);
  const stop = stopOnSignals();
  try {
    await train({ ...runOptions(values), report, signal: stop.signal });
    return 0;
  } catch (e) {
    // Under --json the last line on stdout says how the run ended, whatever the exit code.
    if (json)
      report.event({
        type: 'error',
        code: e instanceof IngraphError ? e.code : 'internal',
        exitCode: exitCodeOf(e),
        message: e instanceof IngraphError ? cliMessage(e) : e instanceof Error ? e.message : String(e),
      });
    throw e;
  } finally {
    stop.dispose();
  }
}

/** An image folder's `--channels` and `--resize HxW`, a CSV file's `--image-shape C,H,W`. */
function folderOptions(given: Map<string, unknown>): DataOptions {
  const channels = given.get('channels') as string | undefined;
  const resize = given.get('resize') as string | undefined;
  const size = resize === undefined ? null : /^(\d+)x(\d+)$/.exec(resize);
  if (size === null && resize !== undefined) throw new UsageError(`--resize ${resize}: not HxW, e.g. 32x32`);
  const [height, width] = size ? [Number(size[1]), Number(size[2])] : [0, 0];
  if (size && !(height > 0 && width > 0 && height <= 4096 && width <= 4096))
    throw new UsageError(`--resize ${resize}: each side must be 1 to 4096`);
  const shapeText = given.get('imageShape') as string | undefined;
  const shape = shapeText === undefined ? undefined : shapeText.split(',').map(Number);
  if (shape && !(shape.length === 3 && shape.every((d) => Number.isInteger(d) && d > 0 && d <= 4096)))
    throw new UsageError(`--image-shape ${shapeText}: not C,H,W, e.g. 3,32,32`);
  return {
    ...(channels === undefined ? {} : { channels: Number(channels) as 1 | 3 }),
    ...(size ? { resize: [height, width] as const } : {}),
    ...(shape ? { csvShape: shape as [number, number, number] } : {}),
  };
}

/** The value of the run option `name`: the flag's, else the schema's default. */
function valueOf<T>(given: Map<string, unknown>, name: string): T {
  return (given.has(name) ? given.get(name) : defaultValue(name)) as T;
}

/** Every flag checked and turned into the run's options (the rest is checked in train() before it writes anything). */
function runOptions(values: Values): Omit<RunOptions, 'report'> {
  const given = givenOptions(values, TRAIN_OPTIONS);
  const resumeDir = given.get('resume') as string | undefined;
  const outFlag = given.get('out') as string | undefined;
  if (resumeDir !== undefined) checkResumable(given);
  const target = resumeDir ?? outFlag;
  if (target !== undefined) checkUnlocked(resolve(target));
  const network = importedNetwork(given);
  const config = resumeDir === undefined ? newConfig(given, network) : undefined;
  const { model, ...overrides } = configOverrides(given);
  const out = resolve(target ?? join('artifacts', `${config?.model}-${timestamp()}`));
  checkWritableDir('--out', out);
  const tensorboard = valueOf<string | null>(given, 'tensorboard');
  if (tensorboard !== null) checkWritableDir('--tensorboard', tensorboard);
  return {
    config,
    data: valueOf<string | null>(given, 'data') ?? defaultMnistDir(),
    folder: folderOptions(given),
    normalise: normalisationFlags(given),
    out,
    init: valueOf<string | null>(given, 'init'),
    resume:
      resumeDir === undefined
        ? null
        : { overrides: network ? overrides : { ...overrides, ...(model ? { model } : {}) } },
    network,
    ep: valueOf<EpChoice>(given, 'ep'),
    threads: valueOf<number | null>(given, 'threads'),
    checkpointEvery: valueOf<number | null>(given, 'checkpointEvery'),
    promote: promotionPlan(given),
    quantize: quantizePlan(values, given),
    tensorboard,
  };
}

/**
 * SIGINT/SIGTERM (Ctrl-C, a scheduler's timeout) abort the run, which stops at its next safe point with a
 * checkpoint. A second signal ends the process at once: every file is written atomically, so that is safe too.
 */
function stopOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) return controller.abort(signal);
    dispose();
    process.kill(process.pid, signal);
  };
  const dispose = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: controller.signal, dispose };
}
