/** The signature of a training set: its images' shape, its classes, and the normalisation a model of it uses. */
import { createHash } from 'crypto';
import { ImageSignature, imageShape, MNIST_SIGNATURE } from '../signature';
import { Dataset, imageSize } from './mnist';

/** Whether `data` has MNIST's image shape and class count (MNIST itself, Fashion-MNIST, KMNIST). */
function mnistShaped(data: Dataset): boolean {
  const m = imageShape(MNIST_SIGNATURE);
  return data.shape.every((d, i) => d === m[i]) && data.classes === MNIST_SIGNATURE.classes;
}

/**
 * Per-channel mean and (population) std of `data`'s pixels on the [0, 1] scale, as one computes them for
 * torchvision's Normalize; summed in float64.
 */
export function channelStats(data: Dataset): { mean: number[]; std: number[] } {
  const [c, h, w] = data.shape;
  const plane = h * w;
  const sums = new Float64Array(c);
  const squares = new Float64Array(c);
  for (let i = 0; i < data.count; i++) {
    for (let k = 0; k < c; k++) {
      const start = i * imageSize(data) + k * plane;
      for (let j = start; j < start + plane; j++) {
        const v = data.images[j] / 255;
        sums[k] += v;
        squares[k] += v * v;
      }
    }
  }
  const n = Math.max(1, data.count * plane);
  const mean = Array.from(sums, (s) => s / n);
  const std = mean.map((m, k) => Math.sqrt(Math.max(squares[k] / n - m * m, 0)) || 1);
  return { mean, std };
}

/**
 * The signature a model of `train` takes: its shape and classes, normalised by the seed's MNIST constants where the
 * data is MNIST-shaped (so the default job keeps its exact graphs), else by the training set's own statistics.
 */
export function signatureOf(train: Dataset): ImageSignature {
  const names = train.classNames ? { classNames: train.classNames } : {};
  if (mnistShaped(train)) return { ...MNIST_SIGNATURE, ...names };
  const [channels, height, width] = train.shape;
  return { channels, height, width, classes: train.classes, ...channelStats(train), ...names };
}

/** What tells two training sets apart: the image count and a SHA-256 of the labels and pixels. */
export interface DataFingerprint {
  count: number;
  sha256: string;
}

/** The fingerprint of `data` (computed once per run: a hash over its bytes, ~0.1 s for MNIST's training set). */
export function fingerprintOf(data: Dataset): DataFingerprint {
  const sha256 = createHash('sha256').update(data.labels).update(data.images).digest('hex');
  return { count: data.count, sha256 };
}
