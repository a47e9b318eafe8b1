/** Small synthetic CIFAR-10 binary files for tests: each class a colour, brighter in the upper half, with noise. */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { tempDir } from './cli';

export const CIFAR_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
/** Bytes per record: the label, then 3x32x32 pixels as channel planes. */
export const CIFAR_RECORD = 1 + 3072;

/** `count` CIFAR-10 records: label i mod 10, pixels from `seed`. */
export function cifarRecords(count: number, seed: number): Buffer {
  const buf = Buffer.alloc(count * CIFAR_RECORD);
  let state = seed;
  const noise = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24) % 32;
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    buf[i * CIFAR_RECORD] = label;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 1024; p++) {
        const base = ((label * (c + 3) * 37) % 160) + (p < 512 ? 60 : 0);
        buf[i * CIFAR_RECORD + 1 + c * 1024 + p] = base + noise();
      }
  }
  return buf;
}

/** A CIFAR-10 directory: five training batches of `perBatch` records, a test batch of `test`, the class names. */
export function cifarDir(perBatch: number, test: number): string {
  const dir = tempDir('ingraph-cifar-');
  for (let k = 1; k <= 5; k++) writeFileSync(join(dir, `data_batch_${k}.bin`), cifarRecords(perBatch, k));
  writeFileSync(join(dir, 'test_batch.bin'), cifarRecords(test, 99));
  writeFileSync(join(dir, 'batches.meta.txt'), `${CIFAR_NAMES.join('\n')}\n\n`);
  return dir;
}
