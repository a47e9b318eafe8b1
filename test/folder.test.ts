/**
 * Image folders as torchvision's ImageFolder reads them: PNG and JPEG files written here (5 RGB classes), read
 * pixel for pixel as independent pure-JS decoders (pngjs, jpeg-js) read them, a network trained on them through the
 * CLI and its export scored, and every kind of bad folder refused with one line naming what is wrong.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import sharp from 'sharp';
import { readImageFolder } from '../src/data/folder';
import { exportedModel, runCli, tempDir } from './helpers/cli';

const CLASSES = ['cat', 'dog', 'fox', 'owl', 'yak'];
const SIDE = 20;

/** An RGB image of class `k`: a colour per class, a bright band whose row depends on `i`, interleaved (HWC). */
function pixels(k: number, i: number, side = SIDE): Buffer {
  const p = Buffer.alloc(side * side * 3);
  for (let y = 0; y < side; y++)
    for (let x = 0; x < side; x++)
      for (let c = 0; c < 3; c++) p[(y * side + x) * 3 + c] = (k * 50 + c * 70 + (y === i % side ? 90 : 0) + x) % 256;
  return p;
}

/** A folder of `perClass` images a class in each split; class 1 as JPEG, the others PNG. */
async function imageFolder(perClass: number): Promise<string> {
  const dir = tempDir('ingraph-folder-');
  for (const split of ['train', 'test'])
    for (const [k, name] of CLASSES.entries()) {
      mkdirSync(join(dir, split, name), { recursive: true });
      for (let i = 0; i < perClass; i++) {
        const image = sharp(pixels(k, i), { raw: { width: SIDE, height: SIDE, channels: 3 } });
        const file = join(dir, split, name, `img${String(i).padStart(3, '0')}.${k === 1 ? 'jpg' : 'png'}`);
        writeFileSync(file, k === 1 ? await image.jpeg({ quality: 95 }).toBuffer() : await image.png().toBuffer());
      }
    }
  return dir;
}

/** An image file decoded by pngjs or jpeg-js, as channel planes (CHW) of RGB. */
function independent(path: string): Uint8Array {
  const bytes = readFileSync(path);
  const { width, height, data } = path.endsWith('.png')
    ? PNG.sync.read(bytes)
    : jpeg.decode(bytes, { useTArray: true });
  const plane = width * height;
  const planes = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) planes[c * plane + i] = data[i * 4 + c];
  return planes;
}

let data: string;
beforeAll(async () => {
  data = await imageFolder(8);
});

describe('image folders', () => {
  it('read class by class, files sorted, as pngjs (exactly) and jpeg-js (within 4 levels on average) decode them', async () => {
    const decoded: number[] = [];
    const train = await readImageFolder(data, 'train', { onDecoded: (done, total) => decoded.push(done / total) });
    expect([train.count, train.shape, train.classes, train.classNames]).toEqual([40, [3, SIDE, SIDE], 5, CLASSES]);
    expect(decoded).toEqual(Array.from({ length: 40 }, (_, i) => (i + 1) / 40)); // what the progress bar draws
    expect([...train.labels.subarray(0, 9)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1]);
    const size = 3 * SIDE * SIDE;
    CLASSES.forEach((name, k) => {
      const file = join(data, 'train', name, `img003.${k === 1 ? 'jpg' : 'png'}`);
      const ours = train.images.subarray((k * 8 + 3) * size, (k * 8 + 4) * size);
      const theirs = independent(file);
      // PNG is lossless: equal. JPEG decoders differ in their IDCT and chroma upsampling (libjpeg-turbo's "fancy"
      // upsampling against jpeg-js's), most at sharp colour edges like these images': close on average.
      const diffs = Array.from(ours, (v, i) => Math.abs(v - theirs[i]));
      const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
      expect([name, k === 1 ? mean < 4 : Math.max(...diffs) === 0]).toEqual([name, true]);
    });
  });

  it('train a network on them; its export scores the test split, named by class', () => {
    const out = join(tempDir(), 'run');
    const r = runCli([
      'train',
      '--model',
      'residual',
      '--data',
      data,
      '--max-steps',
      '8',
      '--batch-size',
      '8',
      '--threads',
      '2',
      '--out',
      out,
    ]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(exportedModel(out).shapes).toEqual([
      ['N', 3, SIDE, SIDE],
      ['N', 5],
    ]);
    const scored = runCli(['eval', '--model-file', join(out, 'inference.onnx'), '--data', data, '--json']);
    const report = JSON.parse(scored.stdout);
    expect([scored.code, report.total, report.perClass.map((c: { name: string }) => c.name)]).toEqual([0, 40, CLASSES]);
    // Its weights cannot start a run on MNIST: refused in those words, before anything is written.
    const other = join(tempDir(), 'mnist');
    const init = runCli(['train', '--model', 'residual', '--init', join(out, 'inference.onnx'), '--out', other]);
    expect([init.code, init.stderr.trim().split('\n')]).toEqual([
      2,
      [expect.stringMatching(/--init .*: a model of 3x20x20 images in 5 classes; the data has 1x28x28 images in 10/)],
    ]);
    expect(existsSync(other)).toBe(false);
  });

  it('--channels 1 makes them grey; --resize takes images of mixed sizes', async () => {
    const dir = await imageFolder(2);
    const odd = join(dir, 'train', 'cat', 'img001.png');
    writeFileSync(
      odd,
      await sharp(pixels(0, 1, 24), { raw: { width: 24, height: 24, channels: 3 } })
        .png()
        .toBuffer(),
    );
    const grey = await readImageFolder(dir, 'train', { channels: 1, resize: [16, 16] });
    expect([grey.shape, grey.count]).toEqual([[1, 16, 16], 10]);
    const r = runCli(['train', '--data', dir, '--max-steps', '1', '--out', join(tempDir(), 'run')]);
    expect([r.code, r.stderr]).toEqual([
      2,
      expect.stringMatching(/img001\.png: 24x24, not 20x20 as .*; images of mixed sizes need the resize option/),
    ]);
    // A resume reads the folder as its checkpoint records (grey, 16x16): no --channels or --resize again.
    const out = join(tempDir(), 'grey');
    const first = ['--data', dir, '--batch-size', '4', '--out', out];
    const started = runCli(['train', ...first, '--channels', '1', '--resize', '16x16', '--max-steps', '1']);
    expect([started.code, started.stderr]).toEqual([0, '']);
    const resumed = runCli(['train', '--resume', out, '--data', dir, '--max-steps', '2']);
    expect([resumed.code, resumed.stderr]).toEqual([0, '']);
    expect(exportedModel(out).shapes[0]).toEqual(['N', 1, 16, 16]);
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).steps).toBe(2);
  });

  it.each([
    [
      'an empty class folder',
      (dir: string) => readdirSync(join(dir, 'train', 'owl')).forEach((f) => rmSync(join(dir, 'train', 'owl', f))),
      /train\/owl: an empty class folder/,
    ],
    [
      'train and test with other classes',
      (dir: string) => {
        mkdirSync(join(dir, 'test', 'zebra'));
        writeFileSync(join(dir, 'test', 'zebra', 'a.png'), readFileSync(join(dir, 'test', 'cat', 'img000.png')));
      },
      /test: classes .*zebra.*, not the training split's cat, dog, fox, owl, yak/,
    ],
    [
      'a truncated PNG',
      (dir: string) =>
        writeFileSync(
          join(dir, 'train', 'fox', 'img000.png'),
          readFileSync(join(dir, 'train', 'fox', 'img000.png')).subarray(0, 40),
        ),
      /train\/fox\/img000\.png: /,
    ],
    ['a bad --resize', () => undefined, /--resize 0x9: each side must be 1 to 4096/],
  ] as const)('%s: one line, exit 2, nothing written', async (what, damage, message) => {
    const dir = await imageFolder(2);
    if (what.includes('empty')) writeFileSync(join(dir, 'test', 'owl', 'keep.txt'), '');
    damage(dir);
    const parent = tempDir();
    const extra = what.includes('resize') ? ['--resize', '0x9'] : [];
    const r = runCli(['train', '--data', dir, '--max-steps', '1', ...extra, '--out', join(parent, 'run')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(readdirSync(parent)).toEqual([]);
  });
});
