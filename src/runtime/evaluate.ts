/** The evaluator: runs an exported inference model on test images (MNIST's by default) and scores it. */
import * as ort from 'onnxruntime-node';
import { Dataset, imageSize } from '../data/mnist';
import { OUTPUTS } from '../onnx/signature';
import { METADATA } from '../metadata';
import { InterruptedError, UsageError } from '../errors';
import { ParsedModel, parseModel } from '../onnx/model';
import { EpChoice, openSession } from './session';
import { Ep } from '../options';
import { signatureFromMetadata } from '../signature';

/** An evaluation's results. */
export interface EvalReport {
  model: string;
  accuracy: number;
  correct: number;
  total: number;
  /** Each class's score; `name` where the model records its classes' names. */
  perClass: { label: number; name?: string; correct: number; total: number; accuracy: number }[];
  /** confusion[true][predicted] */
  confusion: number[][];
  /** The most confident mistakes, up to `EvaluateOptions.mistakes` of them. */
  mistakes: Mistake[];
  imagesPerSecond: number;
  seconds: number;
  batchSize: number;
  ep: Ep;
  epNote?: string;
}

/** A misclassified test image: its index in the data, true and predicted label, and the predicted label's probability. */
export interface Mistake {
  index: number;
  label: number;
  predicted: number;
  probability: number;
}

/** How a classifier is fed and read: its image input (uint8 as ingraph's, or normalised float32) and its logits. */
export interface ClassifierInterface {
  input: string;
  dtype: 'uint8' | 'float32';
  output: string;
  classes: number;
  /** The batch size the input fixes (an export without a dynamic batch axis), else null. */
  batch: number | null;
}

/**
 * How to run `m` on `data`: its one image input [N,C,H,W] of the data's shape (uint8, or float32 for a PyTorch-style
 * model), and its logits (`logits`, else its one [N,K] output) for at least the data's classes.
 */
export function classifierInterface(
  m: ParsedModel,
  where: string,
  data: Pick<Dataset, 'shape' | 'classes'>,
): ClassifierInterface {
  if (m.inputs.length !== 1) {
    const found = m.inputs.map((i) => `"${i.name}"`).join(', ') || 'none';
    throw new UsageError(`${where}: expected one image input, found ${found}`);
  }
  const [input] = m.inputs;
  const [, c, h, w] = input.shape;
  const [dc, dh, dw] = data.shape;
  const dtype = input.dtype === 'uint8' || input.dtype === 'float32' ? input.dtype : null;
  if (!dtype || input.shape.length !== 4 || c !== dc || h !== dh || w !== dw) {
    const expected = `uint8 or float32 [N,${data.shape.join(',')}]`;
    throw new UsageError(`${where}: input "${input.name}" is ${input.dtype} [${input.shape}], expected ${expected}`);
  }
  const ranked = m.outputs.filter((o) => o.shape.length === 2);
  const logits = m.outputs.find((o) => o.name === OUTPUTS.logits) ?? (ranked.length === 1 ? ranked[0] : undefined);
  const classes = logits?.shape[1];
  if (!logits || logits.shape.length !== 2 || typeof classes !== 'number' || classes < data.classes) {
    throw new UsageError(`${where}: expected an output "logits" (or one output) of shape [N,${data.classes}]`);
  }
  const batch = typeof input.shape[0] === 'number' && input.shape[0] > 0 ? input.shape[0] : null;
  return { input: input.name, dtype, output: logits.name, classes, batch };
}

/**
 * Images start..start+n of `data` as the model's input: uint8 as they are, or float32 normalised as torchvision's
 * ToTensor and Normalize(mean, std) do.
 */
function batchOf(
  data: Dataset,
  start: number,
  n: number,
  normalise: { mean: readonly number[]; std: readonly number[] } | null,
): ort.Tensor {
  const size = imageSize(data);
  const pixels = data.images.subarray(start * size, (start + n) * size);
  if (!normalise) return new ort.Tensor('uint8', pixels, [n, ...data.shape]);
  const plane = data.shape[1] * data.shape[2];
  const at = (v: readonly number[], c: number) => v[v.length === 1 ? 0 : c];
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = Math.floor(i / plane) % data.shape[0];
    x[i] = (pixels[i] / 255 - at(normalise.mean, c)) / at(normalise.std, c);
  }
  return new ort.Tensor('float32', x, [n, ...data.shape]);
}

/**
 * The normalisation of a float-input model's images: given, else what an ingraph-written model records; a model
 * from elsewhere needs it given.
 */
function floatNormalisation(
  m: ParsedModel,
  where: string,
  given: EvaluateOptions['normalise'],
): { mean: readonly number[]; std: readonly number[] } {
  if (given) return given;
  const recorded = m.metadata[METADATA.signature] !== undefined || m.metadata[METADATA.version] !== undefined;
  if (recorded) return signatureFromMetadata(m.metadata, where);
  throw new UsageError(
    `${where}: takes float32 images and records no normalisation; give the mean and std it was trained with`,
  ).about('mean');
}

/** Images per run of an evaluation, unless told otherwise. */
export const EVAL_BATCH_SIZE = 1000;

/** Provider, threads, batch size and an abort signal of an evaluation. */
export interface EvaluateOptions {
  ep?: EpChoice;
  threads?: number;
  batchSize?: number;
  /** Aborted (reason: the signal's name), the evaluation stops between batches with an InterruptedError. */
  signal?: AbortSignal;
  /** The model, parsed already by the caller (so it is parsed once); default: parsed here. */
  parsed?: ParsedModel;
  /** Keep this many misclassified images, the most confident first (default 0). */
  mistakes?: number;
  /** How to normalise the images of a float-input model (default: what the model records). */
  normalise?: { mean: readonly number[]; std: readonly number[] };
}

/** The softmax probability of class `k` of the `classes` logits at `offset`. */
function probabilityOf(logits: Float32Array, offset: number, classes: number, k: number): number {
  let max = -Infinity;
  for (let j = 0; j < classes; j++) max = Math.max(max, logits[offset + j]);
  let sum = 0;
  for (let j = 0; j < classes; j++) sum += Math.exp(logits[offset + j] - max);
  return Math.exp(logits[offset + k] - max) / sum;
}

/** The `keep` most confident mistakes; equal probabilities keep test-set order. */
function mostConfident(mistakes: Mistake[], keep: number): Mistake[] {
  return mistakes.sort((a, b) => b.probability - a.probability || a.index - b.index).slice(0, keep);
}

/** The running scores of an evaluation: the confusion matrix, the correct count and the mistakes kept. */
class Tally {
  readonly confusion: number[][];
  correct = 0;
  readonly mistakes: Mistake[] = [];

  constructor(
    private readonly classes: number,
    private readonly keepMistakes: boolean,
  ) {
    this.confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  }

  /** Scores the `n` logits rows of the images from `start` of `data`. */
  add(logits: Float32Array, data: Dataset, start: number, n: number): void {
    const k = this.classes;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
      const truth = data.labels[start + i];
      this.confusion[truth][best]++;
      if (best === truth) this.correct++;
      else if (this.keepMistakes) {
        const probability = probabilityOf(logits, i * k, k, best);
        this.mistakes.push({ index: start + i, label: truth, predicted: best, probability });
      }
    }
  }

  perClass(names?: readonly string[]): EvalReport['perClass'] {
    return this.confusion.map((row, label) => {
      const total = row.reduce((a, b) => a + b, 0);
      const name = names?.[label] === undefined ? {} : { name: names[label] };
      return { label, ...name, correct: row[label], total, accuracy: total ? row[label] / total : 0 };
    });
  }
}

/** Scores the inference model `bytes` (named `where` in errors) on `data`: accuracy, per class, confusion, speed. */
export async function evaluate(
  bytes: Uint8Array,
  where: string,
  data: Dataset,
  o: EvaluateOptions = {},
): Promise<EvalReport> {
  const parsed = o.parsed ?? parseModel(bytes, where);
  const io = classifierInterface(parsed, where, data);
  const { classes } = io;
  const normalise = io.dtype === 'float32' ? floatNormalisation(parsed, where, o.normalise) : null;
  const names = signatureFromMetadata(parsed.metadata, where).classNames;
  const batchSize = io.batch ?? o.batchSize ?? EVAL_BATCH_SIZE;
  const opened = await openSession(bytes, { ep: o.ep, threads: o.threads });
  const run = async (start: number, n: number) =>
    (await opened.session.run({ [io.input]: batchOf(data, start, n, normalise) }, [io.output]))[io.output]
      .data as Float32Array;
  const tally = new Tally(classes, !!o.mistakes);
  let seconds: number;
  try {
    // One untimed run first: onnxruntime allocates and prepacks weights on the first run.
    if (data.count > 0) await run(0, Math.min(batchSize, data.count));
    const start = process.hrtime.bigint();
    for (let s = 0; s < data.count; s += batchSize) {
      if (o.signal?.aborted)
        throw new InterruptedError(o.signal.reason as NodeJS.Signals, `stopped in the evaluation of ${where}`);
      const n = Math.min(batchSize, data.count - s);
      tally.add(await run(s, n), data, s, n);
    }
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    await opened.session.release();
  }
  return {
    model: where,
    accuracy: data.count ? tally.correct / data.count : 0,
    correct: tally.correct,
    total: data.count,
    perClass: tally.perClass(names),
    confusion: tally.confusion,
    mistakes: mostConfident(tally.mistakes, o.mistakes ?? 0),
    imagesPerSecond: data.count / seconds,
    seconds,
    batchSize,
    ep: opened.ep,
    ...(opened.note ? { epNote: opened.note } : {}),
  };
}

/** The report as `ingraph eval` prints it: accuracy, speed, per class, the confusion matrix. */
export function formatReport(r: EvalReport): string {
  const lines = [
    `model: ${r.model}`,
    `accuracy on ${r.total} test images: ${(100 * r.accuracy).toFixed(2)}% (${r.correct}/${r.total})`,
    `speed: ${Math.round(r.imagesPerSecond)} images/s (batch ${r.batchSize}, ${r.ep} execution provider${r.epNote ? `; ${r.epNote}` : ''})`,
    '',
    'per class:   ' + r.perClass.map((c) => `${c.name ?? c.label}: ${(100 * c.accuracy).toFixed(1)}%`).join('  '),
    '',
    'confusion (rows: true label, columns: predicted)',
    '      ' + r.confusion.map((_, k) => String(k).padStart(5)).join(''),
    ...r.confusion.map((row, t) => String(t).padStart(5) + ' ' + row.map((v) => String(v).padStart(5)).join('')),
  ];
  return lines.join('\n');
}
