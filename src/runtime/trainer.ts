/**
 * `ingraph train`: the step loop around the training model, per-epoch test accuracy, checkpoints, the exported
 * inference model and the manifest. Output follows the seed: `[epoch, batch] loss: x.xxx` every 300 batches.
 */
import { existsSync, mkdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { buildEvalModel, buildInferenceModel, buildTrainingModel } from '../artifacts/graphs';
import { encodeCheckpoint, paramsFromModel, readOnnxFile } from '../artifacts/params-io';
import { sha256, writeFileAtomic } from '../artifacts/files';
import { epochOrder, fillBatch, IMAGE_SIZE, MnistSplit, readSplit } from '../data/mnist';
import { UsageError } from '../errors';
import { createNet, NetworkName } from '../models';
import { initParams, Params } from '../models/module';
import { ADAMW_DEFAULTS, adamw } from '../optim/adamw';
import { Optimizer } from '../optim/optimizer';
import { sgd } from '../optim/sgd';
import { PACKAGE_VERSION } from '../version';
import { EvalReport, evaluate } from './evaluate';
import { learningRate, Schedule } from './schedule';
import { EpChoice } from './session';
import { TrainingStep } from './step';

export interface TrainConfig {
  model: NetworkName;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: 'sgd' | 'adamw';
  momentum: number;
  weightDecay: number;
  schedule: Schedule;
  seed: number;
  shuffle: boolean;
  /** Stop after this many steps in all (then export as at the end of a run). */
  maxSteps: number | null;
  freeze: string[];
  /** Use only the first N training / test images (quick tries and tests). */
  trainLimit: number | null;
  testLimit: number | null;
  logEvery: number;
}

export interface RunOptions {
  config: TrainConfig;
  data: string;
  out: string;
  init: string | null;
  resume: boolean;
  ep: EpChoice;
  threads: number | null;
  json: boolean;
  /** Where progress goes; the CLI passes a TTY-aware reporter. */
  report: Reporter;
}

export interface Reporter {
  /** A human line (stdout, or stderr under --json). */
  line(text: string): void;
  /** A machine-readable event (stdout under --json). */
  event(e: Record<string, unknown>): void;
  /** Progress within an epoch, for a TTY progress bar. */
  progress(epoch: number, batch: number, batches: number, loss: number): void;
}

export interface EpochResult {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface TrainResult {
  out: string;
  files: Record<string, string>;
  epochs: EpochResult[];
  final: EvalReport;
  steps: number;
  ep: 'cpu' | 'cuda';
}

/** Where a run stands: enough, with the config, to continue it exactly. */
interface Position {
  step: number;
  epoch: number;
  /** Next batch within the epoch. */
  batch: number;
  running: { loss: number; count: number };
  epochSums: { loss: number; correct: number; seen: number; seconds: number };
}

export const ARTIFACTS = {
  training: 'training_model.onnx',
  eval: 'eval_model.onnx',
  checkpoint: 'checkpoint.onnx',
  inference: 'inference.onnx',
  manifest: 'manifest.json',
} as const;

export function makeOptimizer(c: TrainConfig): Optimizer {
  return c.optimizer === 'sgd' ? sgd({ momentum: c.momentum, weightDecay: c.weightDecay }) : adamw({ ...ADAMW_DEFAULTS, weightDecay: c.weightDecay });
}

/** A frozen-prefix matcher; each prefix must name at least one parameter. */
export function frozenMatcher(prefixes: readonly string[], names: readonly string[]): (name: string) => boolean {
  const matches = (p: string, n: string) => n === p || n.startsWith(p.endsWith('.') ? p : `${p}.`);
  for (const p of prefixes) {
    if (!names.some((n) => matches(p, n))) throw new UsageError(`--freeze ${p}: matches no parameter (names look like ${names[0]})`);
  }
  return (n) => prefixes.some((p) => matches(p, n));
}

function ortVersion(): string {
  return JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')).version;
}

export async function train(o: RunOptions): Promise<TrainResult> {
  const c = o.config;
  const trainData = readSplit(o.data, 'train', c.trainLimit ?? undefined);
  const testData = readSplit(o.data, 'test', c.testLimit ?? undefined);
  const optimizer = makeOptimizer(c);
  const names = createNet(c.model).parameters().map((p) => p.name);
  const graph = buildTrainingModel(c.model, optimizer, { isFrozen: frozenMatcher(c.freeze, names) });

  let params: Params;
  let states: Params = new Map();
  let pos: Position = { step: 0, epoch: 0, batch: 0, running: { loss: 0, count: 0 }, epochSums: { loss: 0, correct: 0, seen: 0, seconds: 0 } };
  let epochs: EpochResult[] = [];
  if (o.resume) {
    const ck = readOnnxFile(join(o.out, ARTIFACTS.checkpoint), '--resume');
    params = paramsFromModel(ck, graph.params, `--resume ${o.out}`);
    states = paramsFromModel(ck, graph.states, `--resume ${o.out}`);
    pos = JSON.parse(ck.metadata['ingraph.position']);
    epochs = JSON.parse(ck.metadata['ingraph.epochs']);
  } else if (o.init) {
    params = paramsFromModel(readOnnxFile(o.init, '--init'), graph.params, `--init ${o.init}`);
  } else {
    params = initParams(graph.params, c.seed);
  }

  mkdirSync(o.out, { recursive: true });
  const files: Record<string, string> = {};
  const save = (name: string, bytes: Uint8Array) => {
    writeFileAtomic(join(o.out, name), bytes);
    files[name] = sha256(bytes);
  };
  save(ARTIFACTS.training, graph.bytes);
  save(ARTIFACTS.eval, buildEvalModel(c.model));

  const step = await TrainingStep.open(graph, params, states, { ep: o.ep, threads: o.threads ?? undefined });
  const ep = step.opened.ep;
  o.report.line(`execution provider: ${ep}${step.opened.note ? ` (${step.opened.note})` : ''}`);
  o.report.event({ type: 'start', model: c.model, ep, out: o.out, trainImages: trainData.count, testImages: testData.count, resumedAtStep: pos.step });

  const batchesPerEpoch = Math.ceil(trainData.count / c.batchSize);
  const totalSteps = Math.min(c.epochs * batchesPerEpoch, c.maxSteps ?? Infinity);
  const images = new Uint8Array(c.batchSize * IMAGE_SIZE);
  const labels = new BigInt64Array(c.batchSize);

  const checkpointMeta = (): Record<string, string> => ({
    'ingraph.kind': 'checkpoint',
    'ingraph.version': PACKAGE_VERSION,
    'ingraph.model': c.model,
    'ingraph.config': JSON.stringify(c),
    'ingraph.position': JSON.stringify(pos),
    // Batch order is a pure function of (seed, epoch): this is the whole generator state a resume needs.
    'ingraph.rng': JSON.stringify({ seed: c.seed, shuffle: c.shuffle, epoch: pos.epoch }),
    'ingraph.epochs': JSON.stringify(epochs),
  });
  const writeCheckpoint = () => save(ARTIFACTS.checkpoint, encodeCheckpoint(graph.params, graph.states, { params: step.params(), states: step.states(), metadata: checkpointMeta() }));

  // Step-loop time of this process (not of earlier, resumed-from processes).
  const throughput = { steps: 0, images: 0, seconds: 0 };
  while (pos.epoch < c.epochs && pos.step < totalSteps) {
    const order = epochOrder(trainData.count, c.seed, pos.epoch, c.shuffle);
    const lrNow = () => learningRate(c.lr, c.schedule, pos.epoch, pos.step, totalSteps);
    const t0 = process.hrtime.bigint();
    const stepsBefore = pos.step;
    while (pos.batch < batchesPerEpoch && pos.step < totalSteps) {
      const n = fillBatch(trainData, order, pos.batch * c.batchSize, c.batchSize, images, labels);
      const r = await step.run(images, labels, n, lrNow());
      pos.step++;
      pos.batch++;
      pos.running.loss += r.loss;
      pos.running.count++;
      pos.epochSums.loss += r.loss * n;
      pos.epochSums.correct += r.correct;
      pos.epochSums.seen += n;
      throughput.images += n;
      o.report.progress(pos.epoch, pos.batch, batchesPerEpoch, r.loss);
      if (pos.batch % c.logEvery === 0) {
        const mean = pos.running.loss / pos.running.count;
        o.report.line(`[${pos.epoch + 1}, ${String(pos.batch).padStart(5)}] loss: ${mean.toFixed(3)}`);
        o.report.event({ type: 'log', epoch: pos.epoch + 1, batch: pos.batch, step: pos.step, loss: mean, lr: lrNow() });
        pos.running = { loss: 0, count: 0 };
      }
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    pos.epochSums.seconds += seconds;
    throughput.seconds += seconds;
    throughput.steps += pos.step - stepsBefore;
    if (pos.batch < batchesPerEpoch) break; // stopped by --max-steps inside the epoch
    const s = pos.epochSums;
    const test = await evaluate(inferenceBytes(c, step.params(), null), 'epoch model', testData, { ep: o.ep, threads: o.threads ?? undefined });
    const result: EpochResult = {
      epoch: pos.epoch + 1,
      trainLoss: s.loss / s.seen,
      trainAccuracy: s.correct / s.seen,
      testAccuracy: test.accuracy,
      seconds: s.seconds,
      imagesPerSecond: s.seen / s.seconds,
    };
    epochs.push(result);
    o.report.line(`accuracy on test set: ${(100 * test.accuracy).toFixed(2)} % (epoch ${result.epoch}, ${Math.round(result.imagesPerSecond)} images/s)`);
    o.report.event({ type: 'epoch', ...result });
    pos = { step: pos.step, epoch: pos.epoch + 1, batch: 0, running: { loss: 0, count: 0 }, epochSums: { loss: 0, correct: 0, seen: 0, seconds: 0 } };
    writeCheckpoint();
  }

  writeCheckpoint();
  const finalParams = step.params();
  await step.release();
  const inference = inferenceBytes(c, finalParams, null);
  const final = await evaluate(inference, join(o.out, ARTIFACTS.inference), testData, { ep: o.ep, threads: o.threads ?? undefined });
  // The recorded accuracy goes into the model's metadata, so deployment tooling can compare models by it.
  save(ARTIFACTS.inference, inferenceBytes(c, finalParams, final));
  const manifest = {
    ingraph: PACKAGE_VERSION,
    onnxruntime: ortVersion(),
    model: c.model,
    config: c,
    steps: pos.step,
    ep,
    epochs,
    final: { accuracy: final.accuracy, correct: final.correct, total: final.total },
    files: Object.fromEntries(Object.entries(files).map(([name, hash]) => [name, { sha256: hash }])),
  };
  writeFileAtomic(join(o.out, ARTIFACTS.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  const speed = { stepsPerSecond: throughput.steps / throughput.seconds, imagesPerSecond: throughput.images / throughput.seconds, peakRssMB: process.resourceUsage().maxRSS / 1024 };
  o.report.line(`training speed: ${speed.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(speed.imagesPerSecond)} images/s (${ep})`);
  o.report.line(`final test accuracy: ${(100 * final.accuracy).toFixed(2)}% (${final.correct}/${final.total}); artifacts in ${o.out}`);
  o.report.event({ type: 'done', out: o.out, steps: pos.step, ep, ...speed, accuracy: final.accuracy, correct: final.correct, total: final.total, files: manifest.files });
  return { out: o.out, files, epochs, final, steps: pos.step, ep };
}

function inferenceBytes(c: TrainConfig, params: Params, final: EvalReport | null): Uint8Array {
  const meta: Record<string, string> = {
    'ingraph.version': PACKAGE_VERSION,
    'ingraph.training': JSON.stringify({ optimizer: c.optimizer, lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay, epochs: c.epochs, batchSize: c.batchSize, seed: c.seed, schedule: c.schedule }),
  };
  if (final) meta['ingraph.test_accuracy'] = String(final.accuracy);
  return buildInferenceModel(c.model, params, meta);
}

export function checkResumable(out: string): void {
  if (!existsSync(join(out, ARTIFACTS.checkpoint))) throw new UsageError(`--resume ${out}: no ${ARTIFACTS.checkpoint} there`);
}
