/**
 * `ingraph train`: the step loop around the training model, per-epoch test accuracy, checkpoints, the exported
 * inference model and the manifest. Output follows the seed: `[epoch, batch] loss: x.xxx` every 300 batches.
 */
import { existsSync, readFileSync } from 'fs';
import { constants as osConstants, cpus, hostname } from 'os';
import { join } from 'path';
import { buildEvalModel, buildInferenceModel, buildTrainingModel, TrainingGraph } from '../artifacts/graphs';
import { acquireLock } from '../artifacts/lock';
import { encodeCheckpoint, paramsFromModel, readOnnxFile } from '../artifacts/params-io';
import { makeDir, sha256, writeFileAtomic } from '../artifacts/files';
import { epochOrder, fillBatch, IMAGE_SIZE, MnistSplit, readSplit } from '../data/mnist';
import { DivergedError, InterruptedError, UsageError } from '../errors';
import { createNet, NetworkName } from '../models';
import { initParams, Params } from '../models/module';
import { ParsedModel } from '../onnx/model';
import { ADAMW_DEFAULTS, adamw } from '../optim/adamw';
import { Optimizer } from '../optim/optimizer';
import { sgd } from '../optim/sgd';
import { PACKAGE_VERSION } from '../version';
import { EvalReport, evaluate } from './evaluate';
import { ACCURACY_KEY, PromotionPlan, PromotionResult, TEST_IMAGES_KEY, promote } from './promote';
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
  /** The verified checkpoint of the run in `out`, when resuming it. */
  resume: ParsedModel | null;
  ep: EpChoice;
  threads: number | null;
  /** Also checkpoint every N steps (always: at the start, after each epoch and at the end). */
  checkpointEvery: number | null;
  promote: PromotionPlan | null;
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

/** An epoch's results; deterministic for a given seed, so checkpoints stay byte-identical across runs. */
export interface EpochResult {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
}

export interface TrainResult {
  out: string;
  files: Record<string, string>;
  epochs: EpochResult[];
  final: EvalReport;
  steps: number;
  ep: 'cpu' | 'cuda';
  promotion: PromotionResult | null;
}

/** Where a run stands: enough, with the config, to continue it exactly. */
interface Position {
  step: number;
  epoch: number;
  /** Next batch within the epoch. */
  batch: number;
  running: { loss: number; count: number };
  epochSums: { loss: number; correct: number; seen: number };
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

function startOfEpoch(step: number, epoch: number): Position {
  return { step, epoch, batch: 0, running: { loss: 0, count: 0 }, epochSums: { loss: 0, correct: 0, seen: 0 } };
}

/** The files of an earlier run; `train` without --resume refuses a directory holding them. */
export function existingRun(out: string): string | null {
  const found = [ARTIFACTS.checkpoint, ARTIFACTS.manifest].find((f) => existsSync(join(out, f)));
  return found ? join(out, found) : null;
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
  let pos = startOfEpoch(0, 0);
  let epochs: EpochResult[] = [];
  if (o.resume) {
    params = paramsFromModel(o.resume, graph.params, `--resume ${o.out}`);
    states = paramsFromModel(o.resume, graph.states, `--resume ${o.out}`);
    pos = JSON.parse(o.resume.metadata['ingraph.position']);
    epochs = JSON.parse(o.resume.metadata['ingraph.epochs']);
  } else {
    const earlier = existingRun(o.out);
    if (earlier) throw new UsageError(`--out ${o.out}: holds an earlier run (${earlier}); resume it with --resume ${o.out}, or choose another --out`);
    params = o.init ? paramsFromModel(readOnnxFile(o.init, '--init'), graph.params, `--init ${o.init}`) : initParams(graph.params, c.seed);
  }

  // Everything above only read and checked; from here on the output directory is written, under its lock.
  makeDir('--out', o.out);
  const release = acquireLock(o.out, (text) => o.report.line(text));
  // SIGINT/SIGTERM (Ctrl-C, a scheduler's timeout) stop the run after its current step, with a checkpoint.
  const stop: { signal: NodeJS.Signals | null } = { signal: null };
  const onSignal = (signal: NodeJS.Signals) => {
    stop.signal = signal;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(o, graph, params, states, pos, epochs, trainData, testData, stop);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    release();
  }
}

async function run(
  o: RunOptions, graph: TrainingGraph, params: Params, states: Params, pos: Position, epochs: EpochResult[],
  trainData: MnistSplit, testData: MnistSplit, stop: { signal: NodeJS.Signals | null },
): Promise<TrainResult> {
  const c = o.config;
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
  let checkpointStep = pos.step;
  let written = '';
  const writeCheckpoint = () => {
    const metadata = checkpointMeta();
    if (metadata['ingraph.position'] + metadata['ingraph.epochs'] === written) return; // this very state is on disk
    save(ARTIFACTS.checkpoint, encodeCheckpoint(graph.params, graph.states, { params: step.params(), states: step.states(), metadata }));
    written = metadata['ingraph.position'] + metadata['ingraph.epochs'];
    checkpointStep = pos.step;
  };
  if (!o.resume) writeCheckpoint();

  // Batches of 250 keep the inception net's activations (and so the run's peak memory) well below what 1000 takes.
  const evalOptions = { ep: o.ep, threads: o.threads ?? undefined, batchSize: 250 };
  // Step-loop time of this process (not of earlier, resumed-from processes).
  const throughput = { steps: 0, images: 0, seconds: 0 };
  while (pos.epoch < c.epochs && pos.step < totalSteps) {
    const order = epochOrder(trainData.count, c.seed, pos.epoch, c.shuffle);
    const lrNow = () => learningRate(c.lr, c.schedule, pos.epoch, pos.step, totalSteps);
    const t0 = process.hrtime.bigint();
    const seenBefore = throughput.images;
    while (pos.batch < batchesPerEpoch && pos.step < totalSteps) {
      const n = fillBatch(trainData, order, pos.batch * c.batchSize, c.batchSize, images, labels);
      const r = await step.run(images, labels, n, lrNow());
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.paramsSqSum)) {
        await step.release();
        const what = !Number.isFinite(r.loss) ? `the loss is ${r.loss}` : 'a parameter is not finite';
        throw new DivergedError(`training diverged at step ${pos.step + 1} (epoch ${pos.epoch + 1}, batch ${pos.batch + 1}): ${what}; the last good checkpoint (step ${checkpointStep}) is kept in ${o.out}`);
      }
      pos.step++;
      pos.batch++;
      pos.running.loss += r.loss;
      pos.running.count++;
      pos.epochSums.loss += r.loss * n;
      pos.epochSums.correct += r.correct;
      pos.epochSums.seen += n;
      throughput.images += n;
      throughput.steps++;
      o.report.progress(pos.epoch, pos.batch, batchesPerEpoch, r.loss);
      if (pos.batch % c.logEvery === 0) {
        const mean = pos.running.loss / pos.running.count;
        o.report.line(`[${pos.epoch + 1}, ${String(pos.batch).padStart(5)}] loss: ${mean.toFixed(3)}`);
        o.report.event({ type: 'log', epoch: pos.epoch + 1, batch: pos.batch, step: pos.step, loss: mean, lr: lrNow() });
        pos.running = { loss: 0, count: 0 };
      }
      if (o.checkpointEvery && pos.step % o.checkpointEvery === 0) writeCheckpoint();
      if (stop.signal) {
        writeCheckpoint();
        await step.release();
        throw new InterruptedError(`${stop.signal}: stopped after step ${pos.step}, checkpoint written; continue with --resume ${o.out}`, 128 + osConstants.signals[stop.signal]);
      }
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    throughput.seconds += seconds;
    if (pos.batch < batchesPerEpoch) break; // stopped by --max-steps inside the epoch
    const s = pos.epochSums;
    const test = await evaluate(inferenceBytes(c, step.params(), null), 'epoch model', testData, evalOptions);
    const result: EpochResult = { epoch: pos.epoch + 1, trainLoss: s.loss / s.seen, trainAccuracy: s.correct / s.seen, testAccuracy: test.accuracy };
    epochs.push(result);
    const imagesPerSecond = (throughput.images - seenBefore) / seconds;
    o.report.line(`accuracy on test set: ${(100 * test.accuracy).toFixed(2)} % (epoch ${result.epoch}, ${Math.round(imagesPerSecond)} images/s)`);
    o.report.event({ type: 'epoch', ...result, seconds, imagesPerSecond });
    pos = startOfEpoch(pos.step, pos.epoch + 1);
    writeCheckpoint();
  }

  writeCheckpoint();
  const finalParams = step.params();
  await step.release();
  const final = await evaluate(inferenceBytes(c, finalParams, null), join(o.out, ARTIFACTS.inference), testData, evalOptions);
  // The recorded accuracy goes into the model's metadata, so deployment tooling can compare models by it.
  const inference = inferenceBytes(c, finalParams, final);
  save(ARTIFACTS.inference, inference);
  const speed = { stepsPerSecond: throughput.steps / throughput.seconds, imagesPerSecond: throughput.images / throughput.seconds, peakRssMB: process.resourceUsage().maxRSS / 1024 };
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
    reproducibility: REPRODUCIBILITY,
    // Outside the hashed files: when, where and how fast this process ran.
    host: { finishedAt: new Date().toISOString(), hostname: hostname(), cpus: cpus().length, node: process.version, threads: o.threads, ...speed },
  };
  writeFileAtomic(join(o.out, ARTIFACTS.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  o.report.line(`training speed: ${speed.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(speed.imagesPerSecond)} images/s (${ep})`);
  o.report.line(`final test accuracy: ${(100 * final.accuracy).toFixed(2)}% (${final.correct}/${final.total}); artifacts in ${o.out}`);
  const paths = Object.fromEntries(Object.entries(files).map(([name, hash]) => [name, { path: join(o.out, name), sha256: hash }]));
  let promotion: PromotionResult | null = null;
  try {
    if (o.promote) {
      promotion = promote(o.promote, join(o.out, ARTIFACTS.inference), inference, final.accuracy, final.total);
      o.report.line(`promoted to ${o.promote.target} (test accuracy ${(100 * final.accuracy).toFixed(2)}%${promotion.previousAccuracy === null ? '' : `, was ${(100 * promotion.previousAccuracy).toFixed(2)}%`})`);
    }
  } finally {
    o.report.event({ type: 'done', out: o.out, steps: pos.step, ep, ...speed, accuracy: final.accuracy, correct: final.correct, total: final.total, files: paths, promotion: promotion ?? (o.promote ? 'refused' : null) });
  }
  return { out: o.out, files, epochs, final, steps: pos.step, ep, promotion };
}

/** What two runs with the same inputs share, bit for bit; written into every manifest. */
export const REPRODUCIBILITY = {
  identical: ['training_model.onnx', 'eval_model.onnx', 'checkpoint.onnx', 'inference.onnx'],
  given: 'the same ingraph and onnxruntime versions, seed, data, flags and --threads, on the CPU execution provider',
  notCovered: 'runs with different --threads (reduction order changes), on CUDA (non-deterministic kernels), or with onnxruntime choosing the thread count (--threads unset) on machines with different core counts; manifest.json itself (host, times, speeds)',
};

function inferenceBytes(c: TrainConfig, params: Params, final: EvalReport | null): Uint8Array {
  const meta: Record<string, string> = {
    'ingraph.version': PACKAGE_VERSION,
    'ingraph.training': JSON.stringify({ optimizer: c.optimizer, lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay, epochs: c.epochs, batchSize: c.batchSize, seed: c.seed, schedule: c.schedule }),
  };
  if (final) {
    meta[ACCURACY_KEY] = String(final.accuracy);
    meta[TEST_IMAGES_KEY] = String(final.total);
  }
  return buildInferenceModel(c.model, params, meta);
}
