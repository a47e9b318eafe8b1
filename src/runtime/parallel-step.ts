/**
 * Data-parallel training on the CPU. Each batch is split into K contiguous shards, one per worker thread, each with
 * its own one-thread onnxruntime session of the gradient graph (a batch-64 step is too small for onnxruntime's
 * intra-op threads to split; whole shards on separate cores are not). The shards' gradients, already weighted by
 * their share of the batch, are summed here in a fixed order and applied by one update session, so for a given K the
 * result is deterministic, and equal to the one-session step up to float rounding. Batches, parameters and gradients
 * cross threads through shared memory.
 */
import { Worker } from 'worker_threads';
import * as ort from 'onnxruntime-node';
import { FLAT, ShardedTrainingGraphs, TrainingGraph } from '../plan/graphs';
import { countParams, Params } from '../models/module';
import { gradient, INPUTS, OUTPUTS, updated } from '../onnx/signature';
import { numel } from '../onnx/tensor';
import { openSession, OpenedSession } from './session';
import { flatSlots, flatStateLayout, Slot, StateLayout, StepResult, StepRunner, tensorOf } from './step';

/** What a worker is given: its graph, the shared buffers, where each tensor lies, the names it uses. */
interface WorkerData {
  ort: string;
  model: Uint8Array;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  images: SharedArrayBuffer;
  labels: SharedArrayBuffer;
  paramSlots: Slot[];
  gradSlots: (Slot & { output: string })[];
  names: { images: string; labels: string; lossScale: string; loss: string; correct: string };
  imageShape: number[];
}

/**
 * The body of a worker thread. It runs from its source text in a fresh thread, so it is self-contained: no imports,
 * no closures. For each shard it copies the parameters and its images out of shared memory (onnxruntime-node takes
 * no shared buffers), runs the gradient graph and writes the gradients back into its own shared region.
 */
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-unsafe-assignment,
   @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return --
   the body runs from its source text, so it requires what it uses and cannot import types */
function gradientWorker(): void {
  const { parentPort, workerData } = require('worker_threads');
  const w = workerData as WorkerData;
  const ortApi = require(w.ort) as typeof ort;
  const shared = {
    params: new Float32Array(w.params),
    grads: new Float32Array(w.grads),
    images: new Uint8Array(w.images),
    labels: new BigInt64Array(w.labels),
  };
  const feeds: Record<string, ort.Tensor> = {};
  const own = w.paramSlots.map((s) => new Float32Array(s.count));
  w.paramSlots.forEach((s, i) => (feeds[s.name] = new ortApi.Tensor('float32', own[i], s.shape)));
  const size = w.imageShape.reduce((a, b) => a * b, 1);
  const scale = new Float32Array(1);
  feeds[w.names.lossScale] = new ortApi.Tensor('float32', scale, []);
  const fail = (e: unknown) => parentPort.postMessage({ error: String((e as Error)?.message ?? e) });
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  } as const;
  ortApi.InferenceSession.create(w.model, options).then((session) => {
    parentPort.on('message', (m: { start: number; n: number; scale: number }) => {
      w.paramSlots.forEach((s, i) => own[i].set(shared.params.subarray(s.offset, s.offset + s.count)));
      scale[0] = m.scale;
      feeds[w.names.images] = new ortApi.Tensor('uint8', shared.images.slice(m.start * size, (m.start + m.n) * size), [
        m.n,
        ...w.imageShape,
      ]);
      feeds[w.names.labels] = new ortApi.Tensor('int64', shared.labels.slice(m.start, m.start + m.n), [m.n]);
      session.run(feeds).then((out) => {
        for (const s of w.gradSlots) shared.grads.set(out[s.output].data as Float32Array, s.offset);
        parentPort.postMessage({
          loss: (out[w.names.loss].data as Float32Array)[0],
          correct: (out[w.names.correct].data as Float32Array)[0],
        });
      }, fail);
    });
    parentPort.postMessage({ ready: true });
  }, fail);
}
/* eslint-enable */

/**
 * A worker thread and its one outstanding request. The thread keeps the process alive only while a request is out,
 * so a trainer that is never released does not hold a finished script open.
 */
class GradientWorker {
  private pending: { resolve: (r: { loss: number; correct: number }) => void; reject: (e: Error) => void } | null =
    null;
  private failure: Error | null = null;

  private constructor(
    private readonly thread: Worker,
    readonly grads: Float32Array,
  ) {
    thread.on('message', (m: { loss: number; correct: number; error?: string }) =>
      this.settle(m.error === undefined ? null : new Error(`gradient worker: ${m.error}`), m),
    );
    thread.on('error', (e) => this.settle(e, null));
    thread.on('exit', (code) => this.settle(new Error(`gradient worker: exited (code ${code})`), null));
  }

  static start(data: WorkerData): Promise<GradientWorker> {
    const thread = new Worker(`(${gradientWorker.toString()})()`, { eval: true, workerData: data });
    const w = new GradientWorker(thread, new Float32Array(data.grads));
    return w.request(() => {}).then(() => w);
  }

  private settle(error: Error | null, result: { loss: number; correct: number } | null): void {
    const p = this.pending;
    this.pending = null;
    this.thread.unref();
    if (error) this.failure ??= error;
    if (!p) return;
    if (error) p.reject(error);
    else p.resolve(result as { loss: number; correct: number });
  }

  private request(send: () => void): Promise<{ loss: number; correct: number }> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.thread.ref();
      send();
    });
  }

  /** The gradients of images start..start+n of the shared batch, weighted by `scale`, into `grads`. */
  run(start: number, n: number, scale: number): Promise<{ loss: number; correct: number }> {
    return this.request(() => this.thread.postMessage({ start, n, scale }));
  }

  async terminate(): Promise<void> {
    this.thread.removeAllListeners('exit');
    await this.thread.terminate();
  }
}

/** The training step over K worker threads; see the module comment. */
export class ParallelTrainingStep implements StepRunner {
  readonly ep = 'cpu';
  private readonly feeds: Record<string, ort.Tensor> = {};
  private readonly lr = new Float32Array(1);
  /** Each shard's gradients, as the update graph takes them. */
  private readonly grads: Float32Array[];
  /** The update's inputs that its outputs replace each step: the flat parameters and every optimizer state. */
  private readonly carried: string[];
  /** How the update takes the optimizer state: flat per-parameter states, and the global ones. */
  private readonly stateLayout: StateLayout;
  private released = false;

  /** Pixel values of one image. */
  private readonly imageSize: number;

  private constructor(
    private readonly update: OpenedSession,
    private readonly workers: GradientWorker[],
    graph: TrainingGraph,
    sharded: ShardedTrainingGraphs,
    private readonly shared: { params: Float32Array; images: Uint8Array; labels: BigInt64Array },
    /** Where each parameter lies in the shared buffer: the trainable ones first, in TrainingGraph.trainable order. */
    private readonly slots: Slot[],
    readonly note: string | undefined,
    states: Params,
  ) {
    this.imageSize = numel(graph.imageShape);
    const trainable = slots.slice(0, graph.trainable.length);
    const p = countParams(trainable);
    this.grads = workers.map(() => new Float32Array(p));
    this.grads.forEach((g, k) => (this.feeds[FLAT.grads(k)] = new ort.Tensor('float32', g, [p])));
    this.feeds[FLAT.params] = new ort.Tensor('float32', shared.params.slice(0, p), [p]);
    this.feeds[INPUTS.lr] = new ort.Tensor('float32', this.lr, []);
    this.stateLayout = flatStateLayout(graph.states, trainable, sharded.flatStates);
    Object.assign(this.feeds, this.stateLayout.feeds(states));
    this.carried = [FLAT.params, ...this.stateLayout.carried];
  }

  /**
   * Starts a worker for each of the shards `sharded` was built for, for batches of up to `maxBatch` images; `note`
   * says why the CPU was chosen, when it was.
   */
  static async open(
    graph: TrainingGraph,
    sharded: ShardedTrainingGraphs,
    params: Params,
    states: Params,
    maxBatch: number,
    note?: string,
  ): Promise<ParallelTrainingStep> {
    // Trainable parameters first (TrainingGraph.trainable keeps the parameters' order): end to end, they are the
    // update's flat input and the layout of each worker's gradients; the frozen ones after them.
    const trainable = new Set(graph.trainable);
    const slots = flatSlots([
      ...graph.params.filter((s) => trainable.has(s.name)),
      ...graph.params.filter((s) => !trainable.has(s.name)),
    ]);
    const gradSlots = slots.slice(0, trainable.size);
    const buffers = {
      params: new SharedArrayBuffer(4 * countParams(slots)),
      images: new SharedArrayBuffer(maxBatch * numel(graph.imageShape)),
      labels: new SharedArrayBuffer(8 * maxBatch),
    };
    const shared = {
      params: new Float32Array(buffers.params),
      images: new Uint8Array(buffers.images),
      labels: new BigInt64Array(buffers.labels),
    };
    for (const s of slots) shared.params.set(tensorOf(params, s.name, s.shape).data as Float32Array, s.offset);
    const names = {
      images: INPUTS.images,
      labels: INPUTS.labels,
      lossScale: INPUTS.lossScale,
      loss: OUTPUTS.loss,
      correct: OUTPUTS.correct,
    };
    const data = (): WorkerData => ({
      ort: require.resolve('onnxruntime-node'),
      model: sharded.gradient,
      ...buffers,
      grads: new SharedArrayBuffer(4 * countParams(gradSlots)),
      paramSlots: slots,
      gradSlots: gradSlots.map((s) => ({ ...s, output: gradient(s.name) })),
      names,
      imageShape: [...graph.imageShape],
    });
    const started = await Promise.allSettled(
      Array.from({ length: sharded.shards }, () => GradientWorker.start(data())),
    );
    const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw failed.reason;
    }
    const update = await openSession(sharded.update, { ep: 'cpu', threads: 1 });
    return new ParallelTrainingStep(update, workers, graph, sharded, shared, slots, note, states);
  }

  /** Workers that compute each step's gradients. */
  get parallelism(): number {
    return this.workers.length;
  }

  async run(images: Uint8Array, labels: BigInt64Array, n: number, lr: number): Promise<StepResult> {
    this.shared.images.set(images.subarray(0, n * this.imageSize));
    this.shared.labels.set(labels.subarray(0, n));
    const shards = shardsOf(n, this.workers.length);
    const results = await Promise.all(shards.map((s, k) => this.workers[k].run(s.start, s.n, s.n / n)));
    // Summed in-graph in shard order: the result depends on K, never on which worker finished first. A batch smaller
    // than K leaves shards of zeros, which add nothing.
    this.workers.forEach((w, k) => (k < shards.length ? this.grads[k].set(w.grads) : this.grads[k].fill(0)));
    this.lr[0] = lr;
    const out = await this.update.session.run(this.feeds);
    for (const name of this.carried) this.feeds[name] = out[updated(name)];
    this.shared.params.set(this.feeds[FLAT.params].data as Float32Array, 0);
    return {
      loss: results.reduce((a, r, k) => a + (shards[k].n / n) * r.loss, 0),
      correct: results.reduce((a, r) => a + r.correct, 0),
      paramsSqSum: (out[OUTPUTS.paramsSqSum].data as Float32Array)[0],
    };
  }

  params(): Params {
    return new Map(this.slots.map((s) => [s.name, this.shared.params.slice(s.offset, s.offset + s.count)]));
  }

  setParams(params: Params): void {
    for (const s of this.slots)
      this.shared.params.set(tensorOf(params, s.name, s.shape).data as Float32Array, s.offset);
    const p = (this.feeds[FLAT.params].data as Float32Array).length;
    this.feeds[FLAT.params] = new ort.Tensor('float32', this.shared.params.slice(0, p), [p]);
  }

  states(): Params {
    return this.stateLayout.states(this.feeds);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    await this.update.session.release();
  }
}

/** `n` images in at most `k` contiguous shards as equal as can be; empty shards are left out. */
export function shardsOf(n: number, k: number): { start: number; n: number }[] {
  const base = Math.floor(n / k);
  const extra = n % k;
  const shards: { start: number; n: number }[] = [];
  for (let i = 0, start = 0; i < k; i++) {
    const size = base + (i < extra ? 1 : 0);
    if (size > 0) shards.push({ start, n: size });
    start += size;
  }
  return shards;
}
