/**
 * The training loop's inner call: one `session.run` of the training model is one step. Parameters and optimizer
 * state stay as onnxruntime tensors between steps: each step's outputs are the next step's inputs, with no copy.
 */
import * as ort from 'onnxruntime-node';
import { TrainingGraph } from '../artifacts/graphs';
import { IMAGE_SIZE, INPUTS, OUTPUTS, imageDims, updated } from '../onnx/signature';
import { Params } from '../models/module';
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
  readonly ep: 'cpu' | 'cuda';
  readonly note?: string;
  /** Worker threads that share each batch (1: one session runs the whole step). */
  readonly parallelism: number;
  /** Runs one step on `n` images (uint8, n·IMAGE_SIZE) and labels; returns the batch's mean loss and correct count. */
  run(images: Uint8Array, labels: BigInt64Array, n: number, lr: number): Promise<StepResult>;
  /** Copies of the current parameters and optimizer state. */
  params(): Params;
  states(): Params;
  /** Frees the sessions; later calls do nothing, so every path out of a run may call it. */
  release(): Promise<void>;
}

/** The training step as one session of the training graph. */
export class TrainingStep implements StepRunner {
  private readonly feeds: Record<string, ort.Tensor> = {};
  private readonly lr = new Float32Array(1);
  private batchImages: Uint8Array | null = null;
  private batchLabels: BigInt64Array | null = null;
  private released = false;
  /** [input, output] names fed back each step: every trainable parameter and optimizer state. */
  private readonly carried: [string, string][];

  private constructor(readonly opened: OpenedSession, readonly graph: TrainingGraph, params: Params, states: Params) {
    for (const p of graph.params) this.feeds[p.name] = tensorOf(params, p.name, p.shape);
    for (const s of graph.states) this.feeds[s.name] = tensorOf(states, s.name, s.shape);
    this.feeds[INPUTS.lr] = new ort.Tensor('float32', this.lr, []);
    this.carried = [...graph.trainable, ...graph.states.map((s) => s.name)].map((name) => [name, updated(name)]);
  }

  static async open(graph: TrainingGraph, params: Params, states: Params, o: SessionOptions = {}): Promise<TrainingStep> {
    return new TrainingStep(await openSession(graph.bytes, o), graph, params, states);
  }

  get ep(): 'cpu' | 'cuda' {
    return this.opened.ep;
  }

  get note(): string | undefined {
    return this.opened.note;
  }

  readonly parallelism = 1;

  async run(images: Uint8Array, labels: BigInt64Array, n: number, lr: number): Promise<StepResult> {
    this.lr[0] = lr;
    // The input tensors wrap the caller's batch buffers; they are made anew only when the buffers or n change.
    const current = this.feeds[INPUTS.images];
    if (!current || current.dims[0] !== n || this.batchImages !== images || this.batchLabels !== labels) {
      this.feeds[INPUTS.images] = new ort.Tensor('uint8', images.subarray(0, n * IMAGE_SIZE), imageDims(n) as number[]);
      this.feeds[INPUTS.labels] = new ort.Tensor('int64', labels.subarray(0, n), [n]);
      this.batchImages = images;
      this.batchLabels = labels;
    }
    const out = await this.opened.session.run(this.feeds);
    for (const [input, output] of this.carried) this.feeds[input] = out[output];
    return {
      loss: (out[OUTPUTS.loss].data as Float32Array)[0],
      correct: (out[OUTPUTS.correct].data as Float32Array)[0],
      paramsSqSum: (out[OUTPUTS.paramsSqSum].data as Float32Array)[0],
    };
  }

  params(): Params {
    return new Map(this.graph.params.map((p) => [p.name, Float32Array.from(this.feeds[p.name].data as Float32Array)]));
  }

  states(): Params {
    return new Map(this.graph.states.map((s) => [s.name, Float32Array.from(this.feeds[s.name].data as Float32Array)]));
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
  if (data.length !== count) throw new RangeError(`training step: "${name}" has ${data.length} values, expected ${count}`);
  return new ort.Tensor('float32', Float32Array.from(data), shape);
}
