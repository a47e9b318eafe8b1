/**
 * What a run keeps for its report, beside its artifacts: `metrics.json` (every logged loss and learning rate, every
 * epoch's results) and `evaluation.json` (the final scores and the most confident mistakes, pixels included, so the
 * report needs no data directory). Both are deterministic, like the artifacts, and hashed in the manifest; reading
 * a run checks every file it uses against those hashes.
 */
import { existsSync, statSync } from 'fs';
import { join } from 'path';
import { readFileChecked, sha256 } from '../io/files';
import { Dataset, imageSize } from '../data/mnist';
import { ImageSignature, imageShape, MNIST_SIGNATURE } from '../signature';
import { UsageError } from '../errors';
import { ARTIFACTS, REPRODUCIBILITY } from './layout';
import { EvalReport, Mistake } from '../runtime/evaluate';
import { EpochResult, LogEntry, TrainConfig } from '../options';

/** metrics.json: the whole record of a run's training, resumed parts included. */
export interface MetricsRecord {
  log: LogEntry[];
  epochs: EpochResult[];
}

/** A mistake with its image: base64 of its C·H·W uint8 pixels. */
export interface MistakeRecord extends Mistake {
  pixels: string;
}

/** evaluation.json, or the evaluation part of any report: scores of one model on one test set. */
export interface EvaluationRecord {
  model: string;
  accuracy: number;
  correct: number;
  total: number;
  perClass: EvalReport['perClass'];
  confusion: number[][];
  mistakes: MistakeRecord[];
  /** [C, H, W] of the mistakes' images, where they are not MNIST's 1x28x28 (which older records all are). */
  imageShape?: [number, number, number];
  /** The classes' names, where the data names them. */
  classNames?: string[];
}

/** The images' shape of an evaluation record. */
export function recordImageShape(r: Pick<EvaluationRecord, 'imageShape'>): [number, number, number] {
  return r.imageShape ?? imageShape(MNIST_SIGNATURE);
}

/** JSON with one line per top-level field and per element of a top-level array: compact, and diffs line by line. */
export function recordJson(record: object): string {
  const value = (v: unknown) =>
    Array.isArray(v) && v.length ? `[\n  ${v.map((x) => JSON.stringify(x)).join(',\n  ')}\n ]` : JSON.stringify(v);
  return `{\n ${Object.entries(record)
    .map(([k, v]) => `${JSON.stringify(k)}: ${value(v)}`)
    .join(',\n ')}\n}\n`;
}

/** How many mistakes a run keeps and a report draws. */
export const MISTAKES_SHOWN = 48;

/** The record of `r`, the evaluation of `model` on `data` (which holds the mistakes' pixels). */
export function evaluationRecord(r: EvalReport, data: Dataset, model: string): EvaluationRecord {
  const size = imageSize(data);
  const pixels = (i: number) => Buffer.from(data.images.subarray(i * size, (i + 1) * size)).toString('base64');
  const mnist = data.shape.every((d, i) => d === imageShape(MNIST_SIGNATURE)[i]);
  const { accuracy, correct, total, perClass, confusion } = r;
  return {
    model,
    accuracy,
    correct,
    total,
    perClass,
    confusion,
    mistakes: r.mistakes.map((m) => ({ ...m, pixels: pixels(m.index) })),
    ...(mnist ? {} : { imageShape: [...data.shape] }),
    ...(data.classNames ? { classNames: [...data.classNames] } : {}),
  };
}

/** manifest.json: what a finished run was, what it scored, the hash of every file, and where it ran. */
export interface ManifestRecord {
  ingraph: string;
  onnxruntime: string;
  model: string;
  config: TrainConfig;
  steps: number;
  ep: string;
  /** The images and classes the run trained on. */
  signature?: ImageSignature;
  epochs: EpochResult[];
  final: { accuracy: number; correct: number; total: number };
  /** Where the run quantized its export (RunOptions.quantize): the int8 model's test accuracy. */
  int8?: { accuracy: number; correct: number; total: number; calibrationImages: number };
  files: Record<string, { sha256: string }>;
  reproducibility: typeof REPRODUCIBILITY;
  /** Outside the hashed files: when, where and how fast this process ran. */
  host: {
    finishedAt: string;
    hostname: string;
    cpus: number;
    node: string;
    threads: number | null;
    workers?: number;
    stepsPerSecond: number | null;
    imagesPerSecond: number | null;
    peakRssMB: number;
  };
}

/** A finished run as its directory holds it, every file checked. */
export interface RunRecord {
  dir: string;
  manifest: ManifestRecord;
  metrics: MetricsRecord;
  evaluation: EvaluationRecord;
}

/** The names of the files a report reads from a run. */
export const RECORD_FILES = {
  manifest: ARTIFACTS.manifest,
  metrics: ARTIFACTS.metrics,
  evaluation: ARTIFACTS.evaluation,
} as const;

/** manifest.json's text: indented JSON, as `JSON.stringify` lays it out. */
export function manifestJson(m: ManifestRecord): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

const MAX_RECORD_BYTES = 64 * 1024 * 1024;

function parseJson(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new UsageError(`${where}: torn or not JSON (${(e as Error).message})`);
  }
}

/** Refuses `value` unless `ok`; the message names the file and what is wrong. */
function check(ok: boolean, where: string, what: string): void {
  if (!ok) throw new UsageError(`${where}: ${what}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const allFinite = (o: Record<string, unknown>, keys: readonly string[]) => keys.every((k) => finite(o[k]));
const isLabel = (v: unknown, classes: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < classes;

function checkManifest(m: unknown, where: string): ManifestRecord {
  check(
    isObject(m) &&
      typeof m.model === 'string' &&
      isObject(m.config) &&
      isObject(m.files) &&
      isObject(m.host) &&
      isObject(m.final),
    where,
    'not an ingraph run manifest',
  );
  return m as ManifestRecord;
}

function checkMetrics(m: unknown, where: string): MetricsRecord {
  check(
    isObject(m) && Array.isArray(m.log) && Array.isArray(m.epochs),
    where,
    'expected {"log": [...], "epochs": [...]}',
  );
  const { log, epochs } = m as { log: unknown[]; epochs: unknown[] };
  log.forEach((e, i) =>
    check(
      isObject(e) && allFinite(e, ['step', 'epoch', 'batch', 'loss', 'lr']),
      where,
      `log entry ${i} is not {step, epoch, batch, loss, lr}`,
    ),
  );
  epochs.forEach((e, i) =>
    check(
      isObject(e) && allFinite(e, ['epoch', 'trainLoss', 'trainAccuracy', 'testAccuracy']),
      where,
      `epoch entry ${i} is not {epoch, trainLoss, trainAccuracy, testAccuracy}`,
    ),
  );
  return m as MetricsRecord;
}

/** Checks an evaluation record, the pixels of every mistake included. */
export function checkEvaluation(e: unknown, where: string): EvaluationRecord {
  check(
    isObject(e) &&
      allFinite(e, ['accuracy', 'correct', 'total']) &&
      Array.isArray(e.perClass) &&
      Array.isArray(e.mistakes),
    where,
    'not an evaluation record',
  );
  const r = e as EvaluationRecord;
  const k = Array.isArray(r.confusion) ? r.confusion.length : 0;
  const square = k > 0 && r.confusion.every((row) => Array.isArray(row) && row.length === k && row.every(finite));
  check(square, where, 'the confusion matrix is not a square of numbers');
  check(
    r.perClass.length === k &&
      r.perClass.every(
        (c) => isObject(c) && allFinite(c as unknown as Record<string, unknown>, ['label', 'accuracy', 'total']),
      ),
    where,
    `perClass is not ${k} classes`,
  );
  const shape = recordImageShape(r);
  check(shape.length === 3 && shape.every((d) => Number.isInteger(d) && d > 0), where, 'imageShape is not [C,H,W]');
  const size = shape[0] * shape[1] * shape[2];
  r.mistakes.forEach((m, i) => {
    const ok =
      isObject(m) &&
      isLabel(m.label, k) &&
      isLabel(m.predicted, k) &&
      finite(m.probability) &&
      typeof m.pixels === 'string' &&
      Buffer.from(m.pixels, 'base64').length === size;
    check(ok, where, `mistake ${i} is not {label, predicted, probability, pixels (${size} bytes)}`);
  });
  return r;
}

/** A file of the run, read and checked against the sha256 the manifest records for it. */
function hashedFile(dir: string, name: string, manifest: ManifestRecord, where: string): Buffer {
  const recorded = manifest.files[name]?.sha256;
  check(
    recorded !== undefined,
    where,
    `its manifest records no ${name} (made by an ingraph that kept no metrics); train it again for a report`,
  );
  const bytes = readFileChecked(join(dir, name), `${where}: ${name}`, MAX_RECORD_BYTES);
  check(
    sha256(bytes) === recorded,
    `${where}: ${name}`,
    'does not match its sha256 in manifest.json (torn or changed since the run)',
  );
  return bytes;
}

/** Reads the finished run in `dir` (named `where` in errors): manifest, metrics and evaluation, each checked. */
export function readRun(dir: string, where: string): RunRecord {
  check(existsSync(dir) && statSync(dir).isDirectory(), where, 'no such directory');
  const manifestPath = join(dir, RECORD_FILES.manifest);
  check(existsSync(manifestPath), where, `not a finished training run (no ${RECORD_FILES.manifest})`);
  const manifest = checkManifest(
    parseJson(
      readFileChecked(manifestPath, `${where}: ${RECORD_FILES.manifest}`, MAX_RECORD_BYTES),
      `${where}: ${RECORD_FILES.manifest}`,
    ),
    `${where}: ${RECORD_FILES.manifest}`,
  );
  const record = (name: string) => parseJson(hashedFile(dir, name, manifest, where), `${where}: ${name}`);
  return {
    dir,
    manifest,
    metrics: checkMetrics(record(RECORD_FILES.metrics), `${where}: ${RECORD_FILES.metrics}`),
    evaluation: checkEvaluation(record(RECORD_FILES.evaluation), `${where}: ${RECORD_FILES.evaluation}`),
  };
}
