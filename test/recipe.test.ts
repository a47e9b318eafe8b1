/**
 * The training-recipe options: augmentation (what a warp does to a known image, reproducibility), label smoothing
 * (against PyTorch and finite differences), warm-up (against PyTorch's schedulers), the moving average of the
 * weights (against a float64 recomputation), their flags, and the README's recipes on a few images.
 */
import { readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import { appendGradients } from '../src/autodiff/gradients';
import { AUGMENT_RANGES, augmentBatch, batchRng, drawWarp, warpImage } from '../src/data/augment';
import { crossEntropy } from '../src/models/loss';
import { GraphBuilder } from '../src/onnx/builder';
import { Tensor } from '../src/onnx/tensor';
import { parseModel } from '../src/onnx/model';
import { learningRate } from '../src/runtime/schedule';
import { readDataset } from '../src/data/mnist';
import { trainConfig } from '../src/config';
import { Trainer } from '../src/train/trainer';
import { relErrAt, runGraph } from './helpers/graph-check';
import { MNIST_DIR, mnistSlice, rawImages, runCli, tempDir } from './helpers/cli';
import * as R from './helpers/reference';
import { RECIPES } from '../tools/recipe-flags';

interface SmoothingCase {
  eps: number;
  logits: number[];
  labels: number[];
  loss: number;
  grad: number[];
}
interface WarmupCase {
  base: number;
  warmup: number;
  total: number;
  schedule: 'cosine' | 'constant';
  lrs: number[];
}
/** Made by tools/make_recipe_fixtures.py. */
const fixture: { smoothing: SmoothingCase[]; warmup: WarmupCase[] } = JSON.parse(
  readFileSync(join(__dirname, 'fixtures', 'torch_recipe.json'), 'utf8'),
);
const SIDE = 28;

/** The first training digit (a 5), straight from the IDX bytes. */
const digit = rawImages(MNIST_DIR, 'train-images-idx3-ubyte').slice(0, 784);

describe('augmentation', () => {
  const warped = (src: Uint8Array, w: { degrees?: number; scale?: number; dx?: number; dy?: number }) => {
    const dst = new Uint8Array(784);
    warpImage(src, dst, { degrees: 0, scale: 1, dx: 0, dy: 0, ...w });
    return dst;
  };
  const at = (img: Uint8Array, x: number, y: number) =>
    x >= 0 && x < SIDE && y >= 0 && y < SIDE ? img[y * SIDE + x] : 0;

  it('a whole-pixel shift moves the digit exactly, zeros coming in at the edges', () => {
    const out = warped(digit, { dx: 2, dy: -1 });
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++) expect([x, y, out[y * SIDE + x]]).toEqual([x, y, at(digit, x - 2, y + 1)]);
  });

  it('a quarter turn is counter-clockwise on screen about the centre; half a pixel of shift averages neighbours', () => {
    const quarter = warped(digit, { degrees: 90 });
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++) expect(quarter[y * SIDE + x]).toBe(at(digit, SIDE - 1 - y, x));
    const half = warped(digit, { dx: 0.5 });
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++)
        expect(Math.abs(half[y * SIDE + x] - (at(digit, x, y) + at(digit, x - 1, y)) / 2)).toBeLessThanOrEqual(0.5);
  });

  it('scaling about the centre: a pixel at distance d lands at distance s·d', () => {
    const dot = new Uint8Array(784);
    dot[7 * SIDE + 7] = 255;
    const out = warped(dot, { scale: 4 / 3 });
    // (7, 7) is 6.5 pixels from the centre (13.5) on each axis; 6.5·4/3 = 8.67 → around (4.83, 4.83).
    const lit = [...out.keys()].filter((i) => out[i] > 0).map((i) => [i % SIDE, Math.floor(i / SIDE)]);
    expect(lit.every(([x, y]) => Math.abs(x - 4.83) < 1.5 && Math.abs(y - 4.83) < 1.5)).toBe(true);
    expect(lit.length).toBeGreaterThan(0);
  });

  it('draws stay within their ranges; shifts are whole pixels', () => {
    const rng = batchRng(3, 1, 2);
    for (let i = 0; i < 500; i++) {
      const s = drawWarp('shift', rng);
      expect(
        Number.isInteger(s.dx) &&
          Number.isInteger(s.dy) &&
          Math.abs(s.dx) <= AUGMENT_RANGES.shiftPixels &&
          s.degrees === 0 &&
          s.scale === 1,
      ).toBe(true);
      const a = drawWarp('affine', rng);
      expect(
        Math.abs(a.degrees) <= AUGMENT_RANGES.degrees &&
          a.scale >= 0.9 &&
          a.scale <= 1.1 &&
          Math.abs(a.dy) <= AUGMENT_RANGES.shiftPixels,
      ).toBe(true);
    }
  });

  it('a batch warps the same for the same (seed, epoch, batch) and differently otherwise; none leaves it as it is', () => {
    const batch = () => rawImages(MNIST_DIR, 'train-images-idx3-ubyte').slice(0, 8 * 784);
    const run = (kind: 'none' | 'affine', seed: number, epoch: number, b: number) => {
      const images = batch();
      augmentBatch(kind, images, 8, { seed, epoch, batch: b });
      return Buffer.from(images);
    };
    expect(run('affine', 0, 1, 2).equals(run('affine', 0, 1, 2))).toBe(true);
    expect(run('affine', 0, 1, 2).equals(run('affine', 0, 1, 3))).toBe(false);
    expect(run('affine', 0, 1, 2).equals(run('affine', 0, 2, 2))).toBe(false);
    expect(run('affine', 0, 1, 2).equals(run('affine', 1, 1, 2))).toBe(false);
    expect(run('none', 0, 1, 2).equals(Buffer.from(batch()))).toBe(true);
  });
});

describe('label smoothing', () => {
  it.each(fixture.smoothing.map((c) => [c.eps, c] as const))(
    'ε = %s: loss and gradient equal PyTorch float64 and finite differences',
    async (eps, c) => {
      const { labels } = c;
      const logits = Float32Array.from(c.logits);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', ['N', 10]);
      const { loss } = crossEntropy(g, x, g.input('labels', 'int64', ['N']), eps);
      g.output(loss, 'loss');
      g.output(appendGradients(g, loss, [x]).get('x') as Tensor, 'dx');
      const out = await runGraph(g, {
        x: new ort.Tensor('float32', logits, [5, 10]),
        labels: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [5]),
      });
      expect(Math.abs((out.loss.data as Float32Array)[0] - c.loss) / c.loss).toBeLessThan(1e-6);
      const all = [...logits.keys()];
      expect(relErrAt(out.dx.data as Float32Array, c.grad, all)).toBeLessThan(1e-5);
      const fd = R.finiteDiff(
        (d) => R.crossEntropy({ data: d, shape: [5, 10] }, labels, eps),
        Float64Array.from(logits),
      );
      expect(relErrAt(out.dx.data as Float32Array, fd, all)).toBeLessThan(1e-4);
    },
  );
});

describe('warm-up', () => {
  it.each(fixture.warmup.map((w) => [w.schedule, w] as const))(
    "then %s: every step's learning rate equals PyTorch's SequentialLR(LinearLR, ...)",
    (kind, w) => {
      const { base, warmup, total, lrs } = w;
      const schedule = { kind, gamma: 0.1, stepEpochs: 1 };
      const ours = lrs.map((_, step) => learningRate(base, schedule, 0, step, total, warmup));
      expect(Math.max(...ours.map((lr, step) => Math.abs(lr - lrs[step]) / base))).toBeLessThan(1e-12);
    },
  );
});

describe('moving average of the weights', () => {
  it.each([
    [1, false],
    [2, false],
    [1, true],
  ])(
    'with %i thread(s), flat step %s: after each step, the average equals d·average + (1-d)·weights, in float64',
    async (threads, flatStep) => {
      const decay = 0.8;
      const [train, test] = [readDataset(MNIST_DIR, 'train', 128), readDataset(MNIST_DIR, 'test', 32)];
      const config = trainConfig('residual', { ema: decay, batchSize: 32, momentum: 0.9, freeze: ['conv1'] });
      const trainer = await Trainer.create({ network: 'residual', config, train, test, ep: 'cpu', threads, flatStep });
      try {
        const average = new Map([...trainer.params()].map(([k, v]) => [k, Float64Array.from(v)]));
        for (let step = 0; step < 3; step++) {
          await trainer.step();
          for (const [k, w] of trainer.params())
            if (!k.startsWith('conv1.'))
              average.set(
                k,
                (average.get(k) as Float64Array).map((a, i) => decay * a + (1 - decay) * w[i]),
              );
        }
        const ours = trainer.modelParams();
        for (const [k, a] of average)
          expect(relErrAt(ours.get(k) as Float32Array, a, [...a.keys()])).toBeLessThan(1e-6);
        expect(
          relErrAt(ours.get('fc.weight') as Float32Array, trainer.params().get('fc.weight') as Float32Array, [0, 1, 2]),
        ).toBeGreaterThan(1e-3);
        const exported = parseModel(trainer.exportModel()).initializers;
        for (const [k, v] of ours)
          expect([
            k,
            Buffer.from((exported.get(k)?.data as Float32Array).buffer).equals(Buffer.from(v.buffer)),
          ]).toEqual([k, true]);
      } finally {
        await trainer.release();
      }
    },
  );
});

describe('the recipe flags', () => {
  const data = mnistSlice(256, 64);
  const base = ['--model', 'residual', '--data', data, '--batch-size', '32', '--ep', 'cpu'];
  const recipe = [
    '--augment',
    'affine',
    '--label-smoothing',
    '0.1',
    '--warmup-epochs',
    '0.5',
    '--momentum',
    '0.9',
    '--ema',
    '0.9',
  ];
  const weights = (dir: string) => parseModel(readFileSync(join(dir, 'inference.onnx'))).initializers;

  // A constant schedule: a cosine one spans --max-steps, so a run stopped by it could not be resumed further.
  it('N steps straight equal K steps, resume, N-K steps, with two threads; augmentation changes what is learned', () => {
    const [straight, split, plain] = [tempDir(), tempDir(), tempDir()];
    const two = [...base, '--threads', '2', '--epochs', '2'];
    expect(runCli(['train', ...two, ...recipe, '--out', straight]).code).toBe(0);
    expect(runCli(['train', ...two, ...recipe, '--max-steps', '11', '--out', split]).code).toBe(0);
    const r = runCli([
      'train',
      '--resume',
      split,
      '--max-steps',
      '16',
      '--threads',
      '2',
      '--ep',
      'cpu',
      '--data',
      data,
    ]);
    expect(r.stderr).toBe('');
    expect(runCli(['train', ...two, ...recipe.slice(2), '--out', plain]).code).toBe(0);
    const [a, b, c] = [weights(straight), weights(split), weights(plain)];
    for (const [name, t] of a)
      expect([
        name,
        Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((b.get(name)?.data as Float32Array).buffer)),
      ]).toEqual([name, true]);
    expect(
      Buffer.from((a.get('fc.weight')?.data as Float32Array).buffer).equals(
        Buffer.from((c.get('fc.weight')?.data as Float32Array).buffer),
      ),
    ).toBe(false);
    const training = JSON.parse(
      parseModel(readFileSync(join(straight, 'inference.onnx'))).metadata['ingraph.training'],
    );
    expect(training).toMatchObject({ augment: 'affine', labelSmoothing: 0.1, warmupEpochs: 0.5, ema: 0.9 });
  });

  it.each(Object.entries(RECIPES))("the README's %s recipe (tools/recipes) runs, on 128 images", (net, flags) => {
    const r = runCli([
      'train',
      '--model',
      net,
      ...flags,
      '--data',
      data,
      '--limit',
      '128',
      '--test-limit',
      '32',
      '--ep',
      'cpu',
      '--json',
      '--out',
      join(tempDir(), 'run'),
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const epochs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'epoch');
    expect(epochs).toHaveLength(15);
  });

  it.each([
    [
      'an unknown augmentation',
      ['--augment', 'rotate'],
      /^ingraph: --augment rotate: must be one of none, shift, affine, flip, shift\+flip, affine\+flip$/,
    ],
    [
      'a value starting with a dash',
      ['--label-smoothing', '-0.1'],
      /^ingraph: train: Option '--label-smoothing' argument is ambiguous\. .* use '--label-smoothing=-XYZ'\.$/,
    ],
    ['an EMA decay of 1', ['--ema', '1'], /^ingraph: --ema 1: must be in \(0, 1\), e\.g\. 0\.999$/],
    ['an EMA decay of 0', ['--ema', '0'], /^ingraph: --ema 0: must be in \(0, 1\), e\.g\. 0\.999$/],
    ['negative smoothing', ['--label-smoothing=-0.1'], /^ingraph: --label-smoothing -0\.1: must be in \[0, 1\)$/],
    [
      'a warm-up as long as the run',
      ['--warmup-epochs', '2', '--epochs', '2'],
      /^ingraph: --warmup-epochs 2: must be shorter than the run: 16 steps, not fewer than the run's 16$/,
    ],
    [
      'a warm-up longer than --max-steps',
      ['--warmup-epochs', '1', '--max-steps', '5'],
      /^ingraph: --warmup-epochs 1: must be shorter than the run: 8 steps, not fewer than the run's 5$/,
    ],
  ])('%s: exit 2, one line, nothing written', (_, flags, message) => {
    const parent = tempDir();
    const r = runCli(['train', ...base, '--epochs', '2', ...flags, '--out', join(parent, 'run')]);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.code).toBe(2);
    expect(readdirSync(parent)).toEqual([]);
  });
});
