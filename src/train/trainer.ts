/**
 * The Trainer: a network's training step as one onnxruntime session, fed batches of in-memory data. Its loop is
 * short (step, guard, advance, notify); what happens around it (logging, checkpoints, export, promotion) belongs to
 * observers and to the caller.
 */
import { CheckpointState, checkpointMetadata, decodeCheckpoint, encodeCheckpoint } from '../run/checkpoint';
import { paramsFromModel } from '../io/params-io';
import { augmentBatch } from '../data/augment';
import { epochOrder, fillBatch, Dataset } from '../data/mnist';
import { DataFingerprint, fingerprintOf, signatureOf } from '../data/signature';
import { describeSignature, ImageSignature, imageShape, pixelsPerImage, signatureFromMetadata } from '../signature';
import { METADATA } from '../metadata';
import { aboutOption, DivergedError, InterruptedError, OptionError, UsageError } from '../errors';
import { Network, NetworkRef, resolveNetwork } from '../models';
import { countParams, Params } from '../models/module';
import { numel } from '../onnx/tensor';
import { averagedParams, emaStart } from '../optim/ema';
import { ParsedModel } from '../onnx/model';
import { planOf, TrainingPlan } from '../plan';
import { TrainingGraph } from '../plan/graphs';
import { EvalReport, evaluate } from '../runtime/evaluate';
import { learningRate } from '../runtime/schedule';
import { EpChoice } from '../runtime/session';
import { StepRunner } from '../runtime/step';
import { gradientsFor, openTrainingSteps } from '../runtime/steps';
import { Ep, EpochResult, LogEntry, Position, startOfEpoch, TrainConfig } from '../options';

/** What a Trainer trains, on what, where; and where it starts from. */
export interface TrainerOptions {
  network: NetworkRef;
  /** `config.model` must be the network's name. */
  config: TrainConfig;
  train: Dataset;
  /** Scored after every epoch. */
  test: Dataset;
  /** The images and classes the network takes; default: the training set's (`signatureOf`). */
  signature?: ImageSignature;
  /** The normalisation of the images (each one value, or one per channel); default: the signature's. */
  normalise?: { mean: readonly number[]; std: readonly number[] };
  ep?: EpChoice;
  /**
   * Cores to use (default: all). On the CPU, N > 1 splits every batch over N worker threads with one session each
   * (data parallelism; results are exactly reproducible for a given N); on CUDA, onnxruntime's intra-op threads.
   */
  threads?: number;
  /**
   * Run a one-session step (1 thread, or CUDA) over the flat graph (buildFlatTrainingModel): fewer inputs, outputs
   * and kernels, results equal up to float rounding; default false.
   */
  flatStep?: boolean;
  /**
   * Initial weights by state_dict name, or the ONNX file holding them (named `where` in errors); default: PyTorch's
   * init from `config.seed`.
   */
  init?: Params | { model: ParsedModel; where: string };
  /**
   * Continue a run from its verified checkpoint (`readCheckpoint`), or from one whose state is decoded already (so a
   * run decodes its checkpoint once); its recorded state replaces `init`.
   */
  resume?: ParsedModel | { checkpoint: ParsedModel; state: CheckpointState };
  /** How errors name the checkpoint (default "checkpoint"). */
  resumeWhere?: string;
}

/** One training step as it happened. */
export interface StepEvent {
  epoch: number;
  /** Batches done in this epoch. */
  batch: number;
  batchesPerEpoch: number;
  step: number;
  loss: number;
  lr: number;
  /** The mean loss since the last log, every `config.logEvery` batches. */
  logged: number | null;
}

/** An epoch, evaluated: its results and speed. */
export interface EpochEvent extends EpochResult {
  /** Step time of the epoch in this process; null when a resumed run trained nothing in it. */
  seconds: number;
  imagesPerSecond: number | null;
}

/** Called by `fit`; every method is optional and may be async. */
export interface TrainObserver {
  onStep?(t: Trainer, e: StepEvent): void | Promise<void>;
  onEpoch?(t: Trainer, e: EpochEvent): void | Promise<void>;
  /** A signal stopped `fit` at a safe point; the trainer stands exactly there. */
  onStop?(t: Trainer): void | Promise<void>;
}

/** Batches per epoch, steps in the run and warm-up steps. */
interface RunLength {
  batchesPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
}

/** The run length of `c` on `trainImages` images. */
function runLength(c: TrainConfig, trainImages: number): RunLength {
  const batchesPerEpoch = Math.ceil(trainImages / c.batchSize);
  const totalSteps = Math.min(c.epochs * batchesPerEpoch, c.maxSteps ?? Infinity);
  return { batchesPerEpoch, totalSteps, warmupSteps: Math.round(c.warmupEpochs * batchesPerEpoch) };
}

/** `s` with the normalisation `n`, each list one value or one per channel, every std positive. */
function normalised(s: ImageSignature, n: { mean: readonly number[]; std: readonly number[] }): ImageSignature {
  for (const [name, values] of Object.entries<readonly number[]>(n)) {
    if (values.length !== 1 && values.length !== s.channels)
      throw new OptionError(
        name,
        values,
        s.channels === 1
          ? 'needs 1 value (the images have 1 channel)'
          : `needs 1 or ${s.channels} values (one per channel)`,
      );
    if (!values.every((v) => Number.isFinite(v) && (name === 'mean' || v > 0)))
      throw new OptionError(name, values, name === 'mean' ? 'not finite numbers' : 'must be positive numbers');
  }
  return { ...s, mean: [...n.mean], std: [...n.std] };
}

/** Refuses a data set whose images or classes are not those the model takes. */
function checkData(data: Dataset, which: string, s: ImageSignature): void {
  const [c, h, w] = data.shape;
  if (c !== s.channels || h !== s.height || w !== s.width || data.classes > s.classes) {
    const what = `${data.shape.join('x')} images in ${data.classes} classes`;
    throw new UsageError(`data: the ${which} set has ${what}; the model takes ${describeSignature(s)}`).about('data');
  }
}

/** The weights a training starts from: `init` (values, or a file's initializers), else PyTorch's init from `seed`. */
function initialParams(plan: TrainingPlan, init: TrainerOptions['init'], seed: number): Params {
  if (init === undefined) return plan.initialParams(seed);
  if (init instanceof Map) return init;
  return aboutOption('init', () => {
    checkInitSignature(init.model, init.where, plan.signature);
    return paramsFromModel(init.model, plan.params, init.where);
  });
}

/**
 * Refuses an ingraph file (checkpoint or export) made for other images or classes than the data's, in those words
 * rather than as the first parameter whose shape differs. Files from elsewhere record no signature: their
 * parameters' shapes are checked as they are.
 */
function checkInitSignature(model: ParsedModel, where: string, data: ImageSignature): void {
  if (model.metadata[METADATA.version] === undefined) return;
  const theirs = signatureFromMetadata(model.metadata, where);
  const [a, b] = [imageShape(theirs).join('x'), imageShape(data).join('x')];
  if (a === b && theirs.classes === data.classes) return;
  const says = `a model of ${describeSignature(theirs)}; the data has ${describeSignature(data)}`;
  throw new UsageError(`${where}: ${says}`);
}

/** Batches of 250 keep the inception net's activations (and so the run's peak memory) well below what 1000 takes. */
const EVAL_BATCH = 250;

/**
 * Trains a network on in-memory data: `create`, then `step`/`fit` (with observers), `checkpoint`, `exportModel`,
 * `release`. Deterministic for a given config, data and thread count on the CPU provider.
 */
export class Trainer {
  private pos: Position;
  private readonly history: EpochResult[];
  private readonly logged: LogEntry[];
  private readonly batchesPerEpoch: number;
  /** Steps of the whole run: the learning-rate schedule's horizon. */
  readonly totalSteps: number;
  /** Steps of linear learning-rate warm-up at the start of the run. */
  readonly warmupSteps: number;
  /** Step time and images of the current epoch, and of the whole life of this trainer. */
  private readonly clock = { epochSeconds: 0, epochImages: 0, seconds: 0, images: 0, steps: 0 };
  private readonly images: Uint8Array;
  private readonly labels: BigInt64Array;
  private order: { epoch: number; order: Uint32Array } | null = null;
  private released: { params: Params; states: Params } | null = null;

  /** The network being trained. */
  readonly network: Network;
  /** The per-tensor training step: training_model.onnx, and the layout of checkpoints. */
  readonly graph: TrainingGraph;

  private constructor(
    /** The training's plan: network, optimizer, layout and every graph form. */
    readonly plan: TrainingPlan,
    readonly config: TrainConfig,
    private readonly session: StepRunner,
    private readonly data: { train: Dataset; test: Dataset; ep?: EpChoice; threads?: number },
    /** The checkpoint state this trainer continues, when it resumed one. */
    readonly resumedFrom: CheckpointState | null,
    length: RunLength,
    /** The training set's fingerprint, recorded in every checkpoint. */
    private readonly fingerprint: DataFingerprint,
  ) {
    this.network = plan.network;
    this.graph = plan.step();
    this.pos = resumedFrom ? resumedFrom.position : startOfEpoch(0, 0);
    this.history = resumedFrom ? [...resumedFrom.epochs] : [];
    this.logged = resumedFrom ? [...resumedFrom.log] : [];
    ({ batchesPerEpoch: this.batchesPerEpoch, totalSteps: this.totalSteps, warmupSteps: this.warmupSteps } = length);
    this.images = new Uint8Array(config.batchSize * pixelsPerImage(plan.signature));
    this.labels = new BigInt64Array(config.batchSize);
  }

  /** Plans the training, opens its session (which fails, e.g., for `ep: 'cuda'` without the provider). */
  static async create(options: TrainerOptions): Promise<Trainer> {
    const network = resolveNetwork(options.network);
    const config = options.config;
    if (config.model !== network.name)
      throw new RangeError(`trainer: config.model "${config.model}" is not the network's name "${network.name}"`);
    if (options.train.count === 0) throw new RangeError('trainer: the training set is empty');
    const resume = options.resume && 'state' in options.resume ? options.resume : null;
    const checkpoint = resume ? resume.checkpoint : (options.resume as ParsedModel | undefined);
    const where = options.resumeWhere ?? 'checkpoint';
    const state = resume ? resume.state : checkpoint ? decodeCheckpoint(checkpoint, where) : null;
    // A resumed run keeps the signature it started with (its normalisation above all); its data must fit it.
    const derived = options.signature ?? state?.signature ?? signatureOf(options.train);
    const signature = options.normalise ? normalised(derived, options.normalise) : derived;
    checkData(options.train, 'training', signature);
    checkData(options.test, 'test', signature);
    const fingerprint = fingerprintOf(options.train);
    if (state?.data && (state.data.count !== fingerprint.count || state.data.sha256 !== fingerprint.sha256)) {
      const theirs = `${state.data.count} images, sha256 ${state.data.sha256.slice(0, 12)}`;
      const ours = `${fingerprint.count} images, sha256 ${fingerprint.sha256.slice(0, 12)}`;
      throw new UsageError(`data: not the training set the run started with (${theirs}; this is ${ours})`).about(
        'data',
      );
    }
    const length = runLength(config, options.train.count);
    if (length.warmupSteps >= length.totalSteps) {
      const steps = `${length.warmupSteps} steps, not fewer than the run's ${length.totalSteps}`;
      throw new OptionError('warmupEpochs', config.warmupEpochs, `must be shorter than the run: ${steps}`);
    }
    const plan = planOf(network, signature, config, gradientsFor(options.ep ?? 'auto'));
    const params = checkpoint
      ? paramsFromModel(checkpoint, plan.params, where)
      : initialParams(plan, options.init, config.seed);
    const states = checkpoint
      ? paramsFromModel(checkpoint, plan.states, where)
      : new Map([
          ...(config.ema === null ? [] : emaStart(params, plan.trainable)),
          ...plan.initialBuffers(config.seed),
        ]);
    const steps = { ep: options.ep, threads: options.threads, maxBatch: config.batchSize, flat: options.flatStep };
    const session = await openTrainingSteps(plan, params, states, steps);
    const data = { train: options.train, test: options.test, ep: options.ep, threads: options.threads };
    return new Trainer(plan, config, session, data, state, length, fingerprint);
  }

  /** Images in the training and test sets. */
  get trainImages(): number {
    return this.data.train.count;
  }

  get testImages(): number {
    return this.data.test.count;
  }

  /** The test set every epoch is scored on. */
  get testData(): Dataset {
    return this.data.test;
  }

  /** The training set. */
  get trainData(): Dataset {
    return this.data.train;
  }

  /** The execution provider the step runs on, and why `auto` chose the CPU where it did. */
  get ep(): Ep {
    return this.session.ep;
  }

  get epNote(): string | undefined {
    return this.session.note;
  }

  /** Worker threads that share each batch (1: one session runs the whole step). */
  get parallelism(): number {
    return this.session.parallelism;
  }

  get position(): Readonly<Position> {
    return this.pos;
  }

  get epochs(): readonly EpochResult[] {
    return this.history;
  }

  /** Every logged mean loss of the run, resumed parts included. */
  get log(): readonly LogEntry[] {
    return this.logged;
  }

  /** True once every epoch is trained and evaluated, or `maxSteps` is reached. */
  get finished(): boolean {
    return !this.epochPending && (this.pos.epoch >= this.config.epochs || this.pos.step >= this.totalSteps);
  }

  /** The current epoch's batches are done and its evaluation is due. */
  private get epochPending(): boolean {
    return this.pos.batch >= this.batchesPerEpoch;
  }

  lr(): number {
    return learningRate(
      this.config.lr,
      this.config.schedule,
      this.pos.epoch,
      this.pos.step,
      this.totalSteps,
      this.warmupSteps,
    );
  }

  /** Trains one batch and advances; a non-finite loss or parameter is a DivergedError (nothing advances). */
  async step(): Promise<StepEvent> {
    if (this.released) throw new Error('trainer: step() after release()');
    const { pos, config: c } = this;
    if (this.order?.epoch !== pos.epoch)
      this.order = { epoch: pos.epoch, order: epochOrder(this.data.train.count, c.seed, pos.epoch, c.shuffle) };
    const n = fillBatch(
      this.data.train,
      this.order.order,
      pos.batch * c.batchSize,
      c.batchSize,
      this.images,
      this.labels,
    );
    const at = { seed: c.seed, epoch: pos.epoch, batch: pos.batch };
    augmentBatch(c.augment, this.images, n, at, this.data.train.shape);
    const lr = this.lr();
    const t0 = process.hrtime.bigint();
    const r = await this.session.run(this.images, this.labels, n, lr);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.paramsSqSum)) {
      const what = !Number.isFinite(r.loss) ? `the loss is ${r.loss}` : 'a parameter is not finite';
      throw new DivergedError(
        `training diverged at step ${pos.step + 1} (epoch ${pos.epoch + 1}, batch ${pos.batch + 1}): ${what}`,
      );
    }
    const clock = this.clock;
    clock.epochSeconds += seconds;
    clock.epochImages += n;
    clock.seconds += seconds;
    clock.images += n;
    clock.steps++;
    return this.advance(r.loss, r.correct, n, lr);
  }

  private advance(loss: number, correct: number, n: number, lr: number): StepEvent {
    const { pos } = this;
    pos.step++;
    pos.batch++;
    pos.running.loss += loss;
    pos.running.count++;
    pos.epochSums.loss += loss * n;
    pos.epochSums.correct += correct;
    pos.epochSums.seen += n;
    let logged: number | null = null;
    if (pos.batch % this.config.logEvery === 0) {
      logged = pos.running.loss / pos.running.count;
      pos.running = { loss: 0, count: 0 };
      this.logged.push({ step: pos.step, epoch: pos.epoch + 1, batch: pos.batch, loss: logged, lr });
    }
    return {
      epoch: pos.epoch,
      batch: pos.batch,
      batchesPerEpoch: this.batchesPerEpoch,
      step: pos.step,
      loss,
      lr,
      logged,
    };
  }

  /**
   * Accuracy on the test set of `model` (default: the current weights, exported), keeping the `mistakes` most
   * confident misclassifications; an aborted `signal` stops it between batches.
   */
  async evaluate(
    signal?: AbortSignal,
    where = 'epoch model',
    mistakes = 0,
    model: Uint8Array = this.exportModel(),
  ): Promise<EvalReport> {
    return evaluate(model, where, this.data.test, {
      ep: this.data.ep,
      threads: this.data.threads,
      batchSize: EVAL_BATCH,
      signal,
      mistakes,
    });
  }

  /** Scores the finished epoch on the test set, records it and moves to the next epoch. */
  async endEpoch(signal?: AbortSignal): Promise<EpochEvent> {
    const s = this.pos.epochSums;
    const test = await this.evaluate(signal);
    const result: EpochResult = {
      epoch: this.pos.epoch + 1,
      trainLoss: s.loss / s.seen,
      trainAccuracy: s.correct / s.seen,
      testAccuracy: test.accuracy,
    };
    this.history.push(result);
    const { epochSeconds: seconds, epochImages: images } = this.clock;
    this.clock.epochSeconds = 0;
    this.clock.epochImages = 0;
    this.pos = startOfEpoch(this.pos.step, this.pos.epoch + 1);
    return { ...result, seconds, imagesPerSecond: images > 0 ? images / seconds : null };
  }

  /**
   * Trains until `finished`, telling `observers` of every step and epoch. An aborted `signal` (reason: the signal's
   * name) stops it after the current step, or within an evaluation, with an InterruptedError, after `onStop`.
   */
  async fit(observers: readonly TrainObserver[] = [], signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.epochPending) {
        const e = await this.interruptible(observers, () => this.endEpoch(signal), 'in the test evaluation ');
        for (const o of observers) await o.onEpoch?.(this, e);
      } else if (this.finished) {
        return;
      } else {
        const e = await this.step();
        for (const o of observers) await o.onStep?.(this, e);
      }
      if (signal?.aborted) await this.stop(observers, signal.reason as NodeJS.Signals, '');
    }
  }

  private async interruptible<T>(
    observers: readonly TrainObserver[],
    work: () => Promise<T>,
    during: string,
  ): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (e instanceof InterruptedError) await this.stop(observers, e.signal, during);
      throw e;
    }
  }

  private async stop(observers: readonly TrainObserver[], signal: NodeJS.Signals, during: string): Promise<never> {
    for (const o of observers) await o.onStop?.(this);
    throw new InterruptedError(signal, `stopped ${during}after step ${this.pos.step}`);
  }

  /** Steps and step time of this trainer's life (not of the runs it resumed); rates are null before any step. */
  speed(): { steps: number; stepsPerSecond: number | null; imagesPerSecond: number | null } {
    const c = this.clock;
    return {
      steps: c.steps,
      stepsPerSecond: c.steps ? c.steps / c.seconds : null,
      imagesPerSecond: c.steps ? c.images / c.seconds : null,
    };
  }

  /** The current weights (copies); after `release`, the final ones. */
  params(): Params {
    return this.released?.params ?? this.session.params();
  }

  states(): Params {
    return this.released?.states ?? this.session.states();
  }

  /**
   * Every parameter end to end in one buffer, in the network's order (`plan.params`), as onnxruntime-training's
   * `getContiguousParameters` gave them: what a federated average combines.
   */
  getContiguousParameters(): Float32Array {
    const params = this.params();
    const flat = new Float32Array(countParams(this.plan.params));
    let at = 0;
    for (const p of this.plan.params) {
      flat.set(params.get(p.name) as Float32Array, at);
      at += numel(p.shape);
    }
    return flat;
  }

  /** Sets every parameter from a buffer laid out as `getContiguousParameters` gives it (`loadParametersBuffer`). */
  loadParametersBuffer(flat: Float32Array): void {
    if (this.released) throw new Error('trainer: released; its parameters are final');
    const total = countParams(this.plan.params);
    if (flat.length !== total) throw new RangeError(`parameters buffer: ${flat.length} values, expected ${total}`);
    let at = 0;
    const params: Params = new Map();
    for (const p of this.plan.params) {
      params.set(p.name, flat.slice(at, at + numel(p.shape)));
      at += numel(p.shape);
    }
    this.session.setParams(params);
  }

  checkpointState(): CheckpointState {
    return {
      config: this.config,
      position: this.pos,
      epochs: this.history,
      log: this.logged,
      horizon: this.totalSteps,
      signature: this.plan.signature,
      data: this.fingerprint,
    };
  }

  /** A checkpoint of exactly where the trainer stands (ONNX, checksummed); `Trainer.create({ resume })` continues it. */
  checkpoint(): Uint8Array {
    return encodeCheckpoint(this.graph.params, this.graph.states, {
      params: this.params(),
      states: this.states(),
      metadata: checkpointMetadata(this.checkpointState()),
    });
  }

  /**
   * The weights a run evaluates and exports: the current ones, or their moving average under `config.ema`; with the
   * current buffers (BatchNorm's running statistics).
   */
  modelParams(): Params {
    const params =
      this.config.ema === null ? this.params() : averagedParams(this.params(), this.states(), this.graph.trainable);
    const states = this.plan.buffers.length ? this.states() : new Map<string, Float32Array>();
    return new Map([...params, ...this.plan.buffers.map((b) => [b.name, states.get(b.name) as Float32Array] as const)]);
  }

  /** The inference model of `modelParams()` (uint8 images in; logits, probabilities and label out). */
  exportModel(metadata: Record<string, string> = {}): Uint8Array {
    return this.plan.inference(this.modelParams(), metadata);
  }

  /**
   * Frees the training session (its memory matters during a final evaluation); the weights, checkpoint and export
   * stay readable, `step` and `fit` no longer work. Later calls do nothing.
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = { params: this.session.params(), states: this.session.states() };
    await this.session.release();
  }
}
