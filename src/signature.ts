/**
 * What a model takes and gives: images of C channels of H x W uint8 pixels, normalised in-graph by a per-channel mean
 * and std (on the [0, 1] scale, as torchvision's ToTensor then Normalize), classified into K classes. The data
 * decides it (or an imported model); every graph, reader, evaluator and report follows it. A leaf module.
 */

import { UsageError } from './errors';
import { METADATA } from './metadata';

/** The images a model takes and the classes it gives. */
export interface ImageSignature {
  channels: number;
  height: number;
  width: number;
  /** Per-channel mean and std on the [0, 1] pixel scale: one value each, or one per channel. */
  mean: readonly number[];
  std: readonly number[];
  classes: number;
  /** The classes' names, where the data has them (index = label). */
  classNames?: readonly string[];
}

/** MNIST as the seed trains it: 1x28x28 grey digits in 10 classes, Normalize((0.1307,), (0.3081,)). */
export const MNIST_SIGNATURE: ImageSignature = {
  channels: 1,
  height: 28,
  width: 28,
  mean: [0.1307],
  std: [0.3081],
  classes: 10,
};

/** [C, H, W]. */
export function imageShape(s: ImageSignature): [number, number, number] {
  return [s.channels, s.height, s.width];
}

/** Pixel values per image: C·H·W. */
export function pixelsPerImage(s: Pick<ImageSignature, 'channels' | 'height' | 'width'>): number {
  return s.channels * s.height * s.width;
}

/** The dims of a batch of `n` images: [n, C, H, W]. */
export function imageDims(s: ImageSignature, n: number | string): (number | string)[] {
  return [n, ...imageShape(s)];
}

/** "CxHxW, K classes", for messages. */
export function describeSignature(s: ImageSignature): string {
  return `${s.channels}x${s.height}x${s.width} images in ${s.classes} classes`;
}

/** Whether `s` is MNIST's signature (shape, classes and normalisation; names aside). */
export function isMnist(s: ImageSignature): boolean {
  const m = MNIST_SIGNATURE;
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  return (
    s.channels === m.channels &&
    s.height === m.height &&
    s.width === m.width &&
    s.classes === m.classes &&
    same(s.mean, m.mean) &&
    same(s.std, m.std)
  );
}

/**
 * The metadata that records `s` in an ONNX file: none for MNIST's (every file before signatures existed is MNIST's,
 * so the default job's files stay as they were), else `ingraph.signature`.
 */
export function signatureMetadata(s: ImageSignature): Record<string, string> {
  return isMnist(s) && !s.classNames ? {} : { [METADATA.signature]: JSON.stringify(s) };
}

/** The signature an ONNX file's metadata records (MNIST's where it records none); `where` names the file in errors. */
export function signatureFromMetadata(metadata: Record<string, string>, where: string): ImageSignature {
  const text = metadata[METADATA.signature];
  if (text === undefined) return MNIST_SIGNATURE;
  let s: ImageSignature;
  try {
    s = JSON.parse(text) as ImageSignature;
  } catch (e) {
    throw new UsageError(`${where}: unreadable ${METADATA.signature} (${(e as Error).message})`);
  }
  const positive = (n: unknown) => Number.isInteger(n) && (n as number) > 0;
  const perChannel = (v: unknown) => Array.isArray(v) && (v.length === 1 || v.length === s.channels);
  const ok = [s.channels, s.height, s.width, s.classes].every(positive) && perChannel(s.mean) && perChannel(s.std);
  if (!ok) throw new UsageError(`${where}: ${METADATA.signature} is not an image signature (${text.slice(0, 80)})`);
  return s;
}
