/**
 * `ingraph train`: the step loop around the training model, per-epoch test accuracy, checkpoints, the exported
 * inference model and the manifest. Output follows the seed: `[epoch, batch] loss: x.xxx` every 300 batches.
 */
import { existsSync, readFileSync } from 'fs';
import { cpus, hostname } from 'os';
import { join } from 'path';
import { buildEvalModel, buildInferenceModel, buildTrainingModel, TrainingGraph } from '../artifacts/graphs';
import { acquireLock, Lock } from '../artifacts/lock';
import { encodeCheckpoint, paramsFromModel, readOnnxFile } from '../artifacts/params-io';
import { makeDir, removeCreatedDirs, writeFileAtomic, writeFileIfChanged } from '../artifacts/files';
import { epochOrder, fillBatch, IMAGE_SIZE, MnistSplit, readSplit } from '../data/mnist';
import { DivergedError, InterruptedError, IoError, PromotionRefusedError, UsageError } from '../errors';
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
  /**
   * Aborting (with the signal's name as reason, e.g. 'SIGTERM') stops the run at its next safe point: after the
   * current step or within an evaluation, with a checkpoint to resume from. The CLI aborts on SIGINT and SIGTERM.
   */
  signal?: AbortSignal;
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

/** Where a run starts: fresh (initial or --init weights) or at its checkpoint. */
interface Start {
  params: Params;
  states: Params;
  pos: Position;
  epochs: EpochResult[];
}

function startingPoint(o: RunOptions, graph: TrainingGraph): Start {
  if (o.resume) {
    return {
      params: paramsFromModel(o.resume, graph.params, `--resume ${o.out}`),
      states: paramsFromModel(o.resume, graph.states, `--resume ${o.out}`),
      pos: JSON.parse(o.resume.metadata['ingraph.position']),
      epochs: JSON.parse(o.resume.metadata['ingraph.epochs']),
    };
  }
  const earlier = existingRun(o.out);
  if (earlier) throw new UsageError(`--out ${o.out}: holds an earlier run (${earlier}); resume it with --resume ${o.out}, or choose another --out`);
  const params = o.init ? paramsFromModel(readOnnxFile(o.init, '--init'), graph.params, `--init ${o.init}`) : initParams(graph.params, o.config.seed);
  return { params, states: new Map(), pos: startOfEpoch(0, 0), epochs: [] };
}

/**
 * Trains as `o` says and writes the run's artifacts. Everything is read and checked, and the session opened, before
 * the output directory is created or touched: a run that cannot start writes nothing.
 */
export async function train(o: RunOptions): Promise<TrainResult> {
  const c = o.config;
  const trainData = readSplit(o.data, 'train', c.trainLimit ?? undefined);
  const testData = readSplit(o.data, 'test', c.testLimit ?? undefined);
  const names = createNet(c.model).parameters().map((p) => p.name);
  const graph = buildTrainingModel(c.model, makeOptimizer(c), { isFrozen: frozenMatcher(c.freeze, names) });
  const begin = startingPoint(o, graph);
  const step = await TrainingStep.open(graph, begin.params, begin.states, { ep: o.ep, threads: o.threads ?? undefined });
  let created: string[] = [];
  let lock: Lock;
  try {
    created = makeDir('--out', o.out);
    lock = acquireLock(o.out, (text) => o.report.line(text));
  } catch (e) {
    await step.release();
    removeCreatedDirs(created);
    throw e;
  }
  try {
    return await new Run(o, graph, step, begin, trainData, testData).run();
  } finally {
    await step.release();
    lock.release();
  }
}

/** One run's state and its stages: train the epochs, finish (evaluate, export, manifest), promote. */
class Run {
  private readonly c: TrainConfig;
  private pos: Position;
  private readonly epochs: EpochResult[];
  /** SHA-256 of each artifact as read back from the disk. */
  private readonly files: Record<string, string> = {};
  /** The step of the checkpoint on disk, when there is one. */
  private checkpointStep: number | null;
  private checkpointWritten = '';
  private readonly batchesPerEpoch: number;
  private readonly totalSteps: number;
  /** Step-loop time of this process (not of earlier, resumed-from processes). */
  private readonly throughput = { steps: 0, images: 0, seconds: 0 };

  constructor(
    private readonly o: RunOptions, private readonly graph: TrainingGraph, private readonly step: TrainingStep,
    begin: Start, private readonly trainData: MnistSplit, private readonly testData: MnistSplit,
  ) {
    this.c = o.config;
    this.pos = begin.pos;
    this.epochs = begin.epochs;
    this.checkpointStep = o.resume ? begin.pos.step : null;
    this.batchesPerEpoch = Math.ceil(trainData.count / this.c.batchSize);
    this.totalSteps = Math.min(this.c.epochs * this.batchesPerEpoch, this.c.maxSteps ?? Infinity);
  }

  async run(): Promise<TrainResult> {
    const ep = this.step.opened.ep;
    this.o.report.line(`execution provider: ${ep}${this.step.opened.note ? ` (${this.step.opened.note})` : ''}`);
    this.o.report.event({ type: 'start', model: this.c.model, ep, out: this.o.out, trainImages: this.trainData.count, testImages: this.testData.count, resumedAtStep: this.pos.step });
    const { final, inference } = await this.guarded(async () => {
      this.save(ARTIFACTS.training, this.graph.bytes);
      this.save(ARTIFACTS.eval, buildEvalModel(this.c.model));
      if (!this.o.resume) this.writeCheckpoint();
      await this.trainEpochs();
      this.writeCheckpoint();
      return this.finish();
    });
    const speed = this.speed();
    this.o.report.line(`training speed: ${speed.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(speed.imagesPerSecond)} images/s (${ep})`);
    this.o.report.line(`final test accuracy: ${(100 * final.accuracy).toFixed(2)}% (${final.correct}/${final.total}); artifacts in ${this.o.out}`);
    const promotion = await this.promote(inference, final);
    return { out: this.o.out, files: this.files, epochs: this.epochs, final, steps: this.pos.step, ep, promotion };
  }

  /** Runs a stage; a failed write is reported with what it left: the last complete checkpoint to resume from. */
  private async guarded<T>(stage: () => Promise<T>): Promise<T> {
    try {
      return await stage();
    } catch (e) {
      if (!(e instanceof IoError)) throw e;
      const kept = this.checkpointStep !== null && existsSync(join(this.o.out, ARTIFACTS.checkpoint));
      const next = kept
        ? `the last complete checkpoint (step ${this.checkpointStep}) is kept: once fixed, continue with --resume ${this.o.out}`
        : 'no checkpoint of this run remains: once fixed, run it again';
      throw new IoError(`${e.message}; ${next}`, e.path, e.errno);
    }
  }

  private save(name: string, bytes: Uint8Array | string): void {
    this.files[name] = writeFileIfChanged(join(this.o.out, name), bytes);
  }

  private writeCheckpoint(): void {
    const metadata: Record<string, string> = {
      'ingraph.kind': 'checkpoint',
      'ingraph.version': PACKAGE_VERSION,
      'ingraph.model': this.c.model,
      'ingraph.config': JSON.stringify(this.c),
      'ingraph.position': JSON.stringify(this.pos),
      // Batch order is a pure function of (seed, epoch): this is the whole generator state a resume needs.
      'ingraph.rng': JSON.stringify({ seed: this.c.seed, shuffle: this.c.shuffle, epoch: this.pos.epoch }),
      'ingraph.epochs': JSON.stringify(this.epochs),
    };
    const state = metadata['ingraph.position'] + metadata['ingraph.epochs'];
    if (state === this.checkpointWritten) return; // this very state is on disk
    this.save(ARTIFACTS.checkpoint, encodeCheckpoint(this.graph.params, this.graph.states, { params: this.step.params(), states: this.step.states(), metadata }));
    this.checkpointWritten = state;
    this.checkpointStep = this.pos.step;
  }

  /** A signal ends training at a safe point, with a checkpoint of exactly where it stands. */
  private stopIfAsked(during = ''): void {
    const signal = this.o.signal;
    if (!signal?.aborted) return;
    this.writeCheckpoint();
    throw new InterruptedError(signal.reason as NodeJS.Signals, `stopped ${during}after step ${this.pos.step}, checkpoint written; continue with --resume ${this.o.out}`);
  }

  private async trainEpochs(): Promise<void> {
    while (this.pos.epoch < this.c.epochs && this.pos.step < this.totalSteps) {
      const t0 = process.hrtime.bigint();
      const seenBefore = this.throughput.images;
      await this.trainEpoch();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.throughput.seconds += seconds;
      if (this.pos.batch < this.batchesPerEpoch) break; // stopped by --max-steps inside the epoch
      // A run resumed between an epoch's last step and its evaluation trains nothing in it: no speed to report.
      const seen = this.throughput.images - seenBefore;
      await this.endEpoch(seen > 0 ? seen / seconds : null, seconds);
    }
  }

  private lr(): number {
    return learningRate(this.c.lr, this.c.schedule, this.pos.epoch, this.pos.step, this.totalSteps);
  }

  private async trainEpoch(): Promise<void> {
    const { c, pos } = this;
    const order = epochOrder(this.trainData.count, c.seed, pos.epoch, c.shuffle);
    const images = new Uint8Array(c.batchSize * IMAGE_SIZE);
    const labels = new BigInt64Array(c.batchSize);
    while (pos.batch < this.batchesPerEpoch && pos.step < this.totalSteps) {
      const n = fillBatch(this.trainData, order, pos.batch * c.batchSize, c.batchSize, images, labels);
      const r = await this.step.run(images, labels, n, this.lr());
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.paramsSqSum)) {
        const what = !Number.isFinite(r.loss) ? `the loss is ${r.loss}` : 'a parameter is not finite';
        throw new DivergedError(`training diverged at step ${pos.step + 1} (epoch ${pos.epoch + 1}, batch ${pos.batch + 1}): ${what}; the last good checkpoint (step ${this.checkpointStep ?? 0}) is kept in ${this.o.out}`);
      }
      this.advance(r.loss, r.correct, n);
      if (this.o.checkpointEvery && pos.step % this.o.checkpointEvery === 0) this.writeCheckpoint();
      this.stopIfAsked();
    }
  }

  private advance(loss: number, correct: number, n: number): void {
    const { pos } = this;
    pos.step++;
    pos.batch++;
    pos.running.loss += loss;
    pos.running.count++;
    pos.epochSums.loss += loss * n;
    pos.epochSums.correct += correct;
    pos.epochSums.seen += n;
    this.throughput.images += n;
    this.throughput.steps++;
    this.o.report.progress(pos.epoch, pos.batch, this.batchesPerEpoch, loss);
    if (pos.batch % this.c.logEvery === 0) {
      const mean = pos.running.loss / pos.running.count;
      this.o.report.line(`[${pos.epoch + 1}, ${String(pos.batch).padStart(5)}] loss: ${mean.toFixed(3)}`);
      this.o.report.event({ type: 'log', epoch: pos.epoch + 1, batch: pos.batch, step: pos.step, loss: mean, lr: this.lr() });
      pos.running = { loss: 0, count: 0 };
    }
  }

  private async endEpoch(imagesPerSecond: number | null, seconds: number): Promise<void> {
    const s = this.pos.epochSums;
    let test: EvalReport;
    try {
      test = await evaluate(inferenceBytes(this.c, this.step.params(), null), 'epoch model', this.testData, { ...evalOptions(this.o), signal: this.o.signal });
    } catch (e) {
      if (e instanceof InterruptedError) this.stopIfAsked('in the test evaluation ');
      throw e;
    }
    const result: EpochResult = { epoch: this.pos.epoch + 1, trainLoss: s.loss / s.seen, trainAccuracy: s.correct / s.seen, testAccuracy: test.accuracy };
    this.epochs.push(result);
    this.o.report.line(`accuracy on test set: ${(100 * test.accuracy).toFixed(2)} % (epoch ${result.epoch}${imagesPerSecond === null ? '' : `, ${Math.round(imagesPerSecond)} images/s`})`);
    this.o.report.event({ type: 'epoch', ...result, seconds, imagesPerSecond });
    this.pos = startOfEpoch(this.pos.step, this.pos.epoch + 1);
    this.writeCheckpoint();
  }

  /**
   * The final evaluation, the exported model and the manifest. The final checkpoint is on disk before this starts,
   * so a signal here stops the run and `--resume` does this stage again.
   */
  private async finish(): Promise<{ final: EvalReport; inference: Uint8Array }> {
    const finalParams = this.step.params();
    await this.step.release();
    const unfinished = (e: unknown) => e instanceof InterruptedError
      ? new InterruptedError(e.signal, `stopped after training (step ${this.pos.step}), before the export; the final checkpoint is written: --resume ${this.o.out} finishes the run`)
      : e;
    try {
      const final = await evaluate(inferenceBytes(this.c, finalParams, null), join(this.o.out, ARTIFACTS.inference), this.testData, { ...evalOptions(this.o), signal: this.o.signal });
      // The recorded accuracy goes into the model's metadata, so deployment tooling can compare models by it.
      const inference = inferenceBytes(this.c, finalParams, final);
      this.save(ARTIFACTS.inference, inference);
      writeFileAtomic(join(this.o.out, ARTIFACTS.manifest), `${JSON.stringify(this.manifest(final), null, 2)}\n`);
      return { final, inference };
    } catch (e) {
      throw unfinished(e);
    }
  }

  private speed() {
    const t = this.throughput;
    return { stepsPerSecond: t.steps / t.seconds, imagesPerSecond: t.images / t.seconds, peakRssMB: process.resourceUsage().maxRSS / 1024 };
  }

  private manifest(final: EvalReport): Record<string, unknown> {
    return {
      ingraph: PACKAGE_VERSION,
      onnxruntime: ortVersion(),
      model: this.c.model,
      config: this.c,
      steps: this.pos.step,
      ep: this.step.opened.ep,
      epochs: this.epochs,
      final: { accuracy: final.accuracy, correct: final.correct, total: final.total },
      files: Object.fromEntries(Object.entries(this.files).map(([name, hash]) => [name, { sha256: hash }])),
      reproducibility: REPRODUCIBILITY,
      // Outside the hashed files: when, where and how fast this process ran.
      host: { finishedAt: new Date().toISOString(), hostname: hostname(), cpus: cpus().length, node: process.version, threads: this.o.threads, ...this.speed() },
    };
  }

  /** `--promote-to`, then the `done` event (also when promotion is refused: the run itself is complete). */
  private async promote(inference: Uint8Array, final: EvalReport): Promise<PromotionResult | null> {
    const paths = Object.fromEntries(Object.entries(this.files).map(([name, hash]) => [name, { path: join(this.o.out, name), sha256: hash }]));
    const done = (promotion: PromotionResult | 'refused' | null) => this.o.report.event({
      type: 'done', out: this.o.out, steps: this.pos.step, ep: this.step.opened.ep, ...this.speed(),
      accuracy: final.accuracy, correct: final.correct, total: final.total, files: paths, promotion,
    });
    const plan = this.o.promote;
    if (!plan) return void done(null), null;
    let promotion: PromotionResult;
    try {
      promotion = await promote(plan, join(this.o.out, ARTIFACTS.inference), inference, final.accuracy, final.total, { warn: (t) => this.o.report.line(t), signal: this.o.signal });
    } catch (e) {
      if (e instanceof PromotionRefusedError) done('refused');
      throw e;
    }
    this.o.report.line(`promoted to ${plan.target} (test accuracy ${(100 * final.accuracy).toFixed(2)}%${promotion.previousAccuracy === null ? '' : `, was ${(100 * promotion.previousAccuracy).toFixed(2)}%`})`);
    done(promotion);
    return promotion;
  }
}

/** Batches of 250 keep the inception net's activations (and so the run's peak memory) well below what 1000 takes. */
function evalOptions(o: RunOptions) {
  return { ep: o.ep, threads: o.threads ?? undefined, batchSize: 250 };
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
