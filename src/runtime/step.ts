/**
 * The training loop's inner call: one `session.run` of the training model is one step. Parameters and optimizer
 * state stay as onnxruntime tensors between steps: each step's outputs are the next step's inputs, with no copy.
 */
import * as ort from 'onnxruntime-node';
import { Ep } from '../options';
import { FLAT, FlatState, FlatTrainingGraph, LoopTrainingGraph, TrainingGraph } from '../plan/graphs';
import { StateSpec } from '../optim/optimizer';
import { INPUTS, OUTPUTS, updated } from '../onnx/signature';
import { countParams, Params } from '../models/module';
import { numel } from '../onnx/tensor';
import { OpenedSession, SessionOptions, openSession } from './session';

export interface StepResult {
  loss: number;
  correct: number;
  /** Sum of squares of the updated parameters: non-finite when any of them is. */
  paramsSqSum: number;
}

/** Runs training steps, on one session or several; the Trainer uses only this. */
export interface StepRunner {
  /** The provider the steps run on, and why `auto` chose the CPU where it did. */
  readonly ep: Ep;
  readonly note?: string;
  /** Worker threads that share each batch (1: one session runs the whole step). */
  readonly parallelism: number;
  /** Runs one step on `n` images (uint8, n·C·H·W) and labels; returns the batch's mean loss and correct count. */
  run(images: Uint8Array, labels: BigInt64Array, n: number, lr: number): Promise<StepResult>;
  /** Copies of the current parameters and optimizer state. */
  params(): Params;
  states(): Params;
  /** Replaces the parameters (every one, by name) from the next step on. */
  setParams(params: Params): void;
  /** Frees the sessions; later calls do nothing, so every path out of a run may call it. */
  release(): Promise<void>;
}

/** How an update graph takes the optimizer state. */
export interface StateLayout {
  /** The graph's state inputs, from per-tensor values. */
  feeds(states: Params): Record<string, ort.Tensor>;
  /** The state inputs that each step's outputs (`updated.<input>`) replace. */
  readonly carried: readonly string[];
  /** Copies of the per-tensor states, from the current inputs. */
  states(feeds: Record<string, ort.Tensor>): Params;
}

/** How a training graph takes its parameters and optimizer state: tensor by tensor, or end to end in flat tensors. */
interface StepLayout {
  /** The graph's parameter and state inputs, from per-tensor values. */
  feeds(params: Params, states: Params): Record<string, ort.Tensor>;
  /** The inputs that each step's outputs (`updated.<input>`) replace. */
  readonly carried: readonly string[];
  /** Copies of the per-tensor values, from the current inputs. */
  params(feeds: Record<string, ort.Tensor>): Params;
  states(feeds: Record<string, ort.Tensor>): Params;
}

const copyOf = (feeds: Record<string, ort.Tensor>, name: string) => Float32Array.from(feeds[name].data as Float32Array);

/** buildTrainingModel's graph: an input per parameter and per state. */
function perTensor(graph: TrainingGraph): StepLayout {
  return {
    feeds: (params, states) =>
      Object.fromEntries([
        ...graph.params.map((p) => [p.name, tensorOf(params, p.name, p.shape)] as const),
        ...graph.states.map((s) => [s.name, tensorOf(states, s.name, s.shape)] as const),
      ]),
    carried: [...graph.trainable, ...graph.states.map((s) => s.name)],
    params: (feeds) => new Map(graph.params.map((p) => [p.name, copyOf(feeds, p.name)])),
    states: (feeds) => new Map(graph.states.map((s) => [s.name, copyOf(feeds, s.name)])),
  };
}

/**
 * The optimizer state of a flat update (buildFlatTrainingModel's step, the data-parallel update): each flat state
 * holds its per-parameter parts end to end, laid out as `slots` (the trainable parameters); the global state stays
 * per tensor. States come back in the order of `states`.
 */
export function flatStateLayout(
  states: readonly StateSpec[],
  slots: readonly Slot[],
  flatStates: readonly FlatState[],
): StateLayout {
  const parts = new Set(flatStates.flatMap((f) => f.parts));
  const global = states.filter((s) => !parts.has(s.name));
  return {
    feeds: (values) => ({
      ...Object.fromEntries(flatStates.map((f) => [f.name, joined(values, slots, f.parts)])),
      ...Object.fromEntries(global.map((s) => [s.name, tensorOf(values, s.name, s.shape)])),
    }),
    carried: [...flatStates.map((f) => f.name), ...global.map((s) => s.name)],
    states: (feeds) => {
      const values = new Map([
        ...flatStates.flatMap((f) => cut(feeds[f.name], slots, f.parts)),
        ...global.map((s) => [s.name, copyOf(feeds, s.name)] as const),
      ]);
      return new Map(states.map((s) => [s.name, values.get(s.name) as Float32Array]));
    },
  };
}

/** `names`' values end to end as `slots` lay them out, as one tensor. */
function joined(values: Params, slots: readonly Slot[], names: readonly string[]): ort.Tensor {
  const size = countParams(slots);
  const out = new Float32Array(size);
  slots.forEach((slot, i) => out.set(tensorOf(values, names[i], slot.shape).data as Float32Array, slot.offset));
  return new ort.Tensor('float32', out, [size]);
}

/** A flat tensor cut back into `names`' values, as `slots` lay them out. */
function cut(flat: ort.Tensor, slots: readonly Slot[], names: readonly string[]): (readonly [string, Float32Array])[] {
  const data = flat.data as Float32Array;
  return slots.map((slot, i) => [names[i], data.slice(slot.offset, slot.offset + slot.count)] as const);
}

/** buildFlatTrainingModel's graph: the trainable parameters and their states end to end, the rest per tensor. */
function flat(graph: FlatTrainingGraph): StepLayout {
  const trainable = new Set(graph.trainable);
  const slots = flatSlots(graph.params.filter((p) => trainable.has(p.name)));
  const frozen = graph.params.filter((p) => !trainable.has(p.name));
  const states = flatStateLayout(graph.states, slots, graph.flatStates);
  return {
    feeds: (params, values) => ({
      [FLAT.params]: joined(params, slots, graph.trainable),
      ...Object.fromEntries(frozen.map((p) => [p.name, tensorOf(params, p.name, p.shape)])),
      ...states.feeds(values),
    }),
    carried: [FLAT.params, ...states.carried],
    params: (feeds) =>
      new Map([
        ...cut(feeds[FLAT.params], slots, graph.trainable),
        ...frozen.map((p) => [p.name, copyOf(feeds, p.name)] as const),
      ]),
    states: (feeds) => states.states(feeds),
  };
}

/** Where a tensor lies in a flat buffer. */
export interface Slot {
  name: string;
  shape: number[];
  offset: number;
  count: number;
}

/** Where each of `specs` lies when they are laid end to end. */
export function flatSlots(specs: readonly { name: string; shape: number[] }[]): Slot[] {
  let offset = 0;
  return specs.map((s) => {
    const slot = { name: s.name, shape: s.shape, offset, count: numel(s.shape) };
    offset += slot.count;
    return slot;
  });
}

const isFlat = (graph: TrainingGraph): graph is FlatTrainingGraph => 'flatStates' in graph;
const isLoop = (graph: TrainingGraph): graph is LoopTrainingGraph => 'loop' in graph;

/** The training step as one session of a training graph (per tensor, flat, or several flat steps per run). */
export class TrainingStep implements StepRunner {
  private readonly feeds: Record<string, ort.Tensor>;
  private readonly lr = new Float32Array(1);
  private batchImages: Uint8Array | null = null;
  private batchLabels: BigInt64Array | null = null;
  private released = false;
  private readonly layout: StepLayout;

  private constructor(
    readonly opened: OpenedSession,
    readonly graph: TrainingGraph,
    params: Params,
    states: Params,
  ) {
    this.layout = isFlat(graph) ? flat(graph) : perTensor(graph);
    this.feeds = { ...this.layout.feeds(params, states), [INPUTS.lr]: new ort.Tensor('float32', this.lr, []) };
  }

  /** One session of `graph`: buildTrainingModel's, buildFlatTrainingModel's or buildLoopTrainingModel's. */
  static async open(
    graph: TrainingGraph,
    params: Params,
    states: Params,
    o: SessionOptions = {},
  ): Promise<TrainingStep> {
    return new TrainingStep(await openSession(graph.bytes, o), graph, params, states);
  }

  get ep(): Ep {
    return this.opened.ep;
  }

  get note(): string | undefined {
    return this.opened.note;
  }

  readonly parallelism = 1;

  async run(images: Uint8Array, labels: BigInt64Array, n: number, lr: number): Promise<StepResult> {
    if (isLoop(this.graph)) return (await this.runSteps(images, labels, n, [lr]))[0];
    this.lr[0] = lr;
    // The input tensors wrap the caller's batch buffers; they are made anew only when the buffers or n change.
    const current = this.feeds[INPUTS.images];
    if (!current || current.dims[0] !== n || this.batchImages !== images || this.batchLabels !== labels) {
      const [c, h, w] = this.graph.imageShape;
      this.feeds[INPUTS.images] = new ort.Tensor('uint8', images.subarray(0, n * c * h * w), [n, c, h, w]);
      this.feeds[INPUTS.labels] = new ort.Tensor('int64', labels.subarray(0, n), [n]);
      this.batchImages = images;
      this.batchLabels = labels;
    }
    return (await this.runOnce())[0];
  }

  /**
   * `lrs.length` steps in one run of a Loop graph (buildLoopTrainingModel): step k takes images and labels
   * k·n..(k+1)·n-1 and learning rate lrs[k]. Returns each step's result.
   */
  async runSteps(images: Uint8Array, labels: BigInt64Array, n: number, lrs: readonly number[]): Promise<StepResult[]> {
    if (!isLoop(this.graph)) throw new TypeError('training step: runSteps needs a graph from buildLoopTrainingModel');
    const s = lrs.length;
    const [c, h, w] = this.graph.imageShape;
    this.feeds[INPUTS.images] = new ort.Tensor('uint8', images.subarray(0, s * n * c * h * w), [s, n, c, h, w]);
    this.feeds[INPUTS.labels] = new ort.Tensor('int64', labels.subarray(0, s * n), [s, n]);
    this.feeds[INPUTS.lr] = new ort.Tensor('float32', Float32Array.from(lrs), [s]);
    return this.runOnce();
  }

  /** One run: the updated parameters and state become the next run's inputs; one result per step of the run. */
  private async runOnce(): Promise<StepResult[]> {
    const out = await this.opened.session.run(this.feeds);
    for (const name of this.layout.carried) this.feeds[name] = out[updated(name)];
    const [loss, correct, sq] = [OUTPUTS.loss, OUTPUTS.correct, OUTPUTS.paramsSqSum].map(
      (k) => out[k].data as Float32Array,
    );
    return Array.from(loss, (l, k) => ({ loss: l, correct: correct[k], paramsSqSum: sq[k] }));
  }

  params(): Params {
    return this.layout.params(this.feeds);
  }

  setParams(params: Params): void {
    Object.assign(this.feeds, this.layout.feeds(params, this.states()));
  }

  states(): Params {
    return this.layout.states(this.feeds);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.opened.session.release();
  }
}

/** A tensor of `shape` holding a copy of `values`' entry `name` (zeros when absent). */
export function tensorOf(values: Params, name: string, shape: number[]): ort.Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = values.get(name) ?? new Float32Array(count);
  if (data.length !== count)
    throw new RangeError(`training step: "${name}" has ${data.length} values, expected ${count}`);
  return new ort.Tensor('float32', Float32Array.from(data), shape);
}
