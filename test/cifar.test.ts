/* eslint-disable @typescript-eslint/no-explicit-any -- the chart specs are read as plain JSON */
/**
 * Other images than MNIST's: CIFAR-10 binary files (small synthetic ones, written here) read as numpy decodes them,
 * both seed networks trained on 3x32x32 images in 10 classes through the CLI, the export scored, and bad files
 * refused with one line naming them.
 */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { augmentBatch } from '../src/data/augment';
import { confusionChart, perClassChart } from '../src/report/charts';
import { readDataset } from '../src/data/mnist';
import { ForwardPlan, TrainingPlan } from '../src/plan';
import { sgd } from '../src/optim/sgd';
import { numel } from '../src/onnx/tensor';
import { TrainingStep } from '../src/runtime/step';
import { loadTorchFixture, relError } from './helpers/torch-fixture';
import { parseModel } from '../src/onnx/model';
import * as ort from 'onnxruntime-node';
import { imagesInput, preprocess } from '../src/models';
import { GraphBuilder } from '../src/onnx/builder';
import { runGraph } from './helpers/graph-check';
import { exportedModel, mnistSlice, runCli, tempDir } from './helpers/cli';
import { CIFAR_NAMES as NAMES, CIFAR_RECORD as RECORD, cifarDir, cifarRecords as records } from './helpers/cifar';

/** SHA-256 of the training split's pixels then labels, decoded by numpy (an independent reader of the format). */
function numpyDigest(dir: string): string {
  const script = `
import hashlib, sys, numpy as np
files = [f"{sys.argv[1]}/data_batch_{k}.bin" for k in range(1, 6)]
r = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 3073) for f in files])
h = hashlib.sha256(); h.update(r[:, 1:].tobytes()); h.update(r[:, 0].tobytes()); print(h.hexdigest())`;
  const r = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

const data = cifarDir(40, 30);

describe('CIFAR-10 binary files', () => {
  it('read image for image and label for label as numpy decodes them, with the class names', () => {
    const train = readDataset(data, 'train');
    const ours = createHash('sha256').update(train.images).update(train.labels).digest('hex');
    expect([train.count, train.shape, train.classes, train.classNames]).toEqual([200, [3, 32, 32], 10, NAMES]);
    expect(ours).toBe(numpyDigest(data));
  });

  it('give the seed networks their inputs, fc sizes and classes by shape inference', () => {
    const signature = {
      channels: 3,
      height: 32,
      width: 32,
      classes: 10,
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
    };
    const fc = (net: 'residual' | 'inception') =>
      new ForwardPlan(net, signature).params
        .filter((p) => p.name.startsWith('fc.') || p.name === 'conv1.weight')
        .map((p) => p.shape);
    // 32 → conv 5 → 28 → pool → 14 → conv 5 → 10 → pool → 5: residual 32·5·5, inception 88·5·5.
    expect(fc('residual')).toEqual([[16, 3, 5, 5], [10, 800], [10]]);
    expect(fc('inception')).toEqual([[10, 3, 5, 5], [10, 2200], [10]]);
  });

  it('an input too small for a layer is refused, naming the layer', () => {
    const tiny = { channels: 1, height: 8, width: 8, classes: 2, mean: [0.5], std: [0.5] };
    expect(() => new ForwardPlan('residual', tiny)).toThrow(
      /^network residual: 1x8x8 images are too small for its layers \(Conv: W "conv2\.weight" 5x5 kernel is larger/,
    );
  });

  it.each(['residual', 'inception'])(
    'train the %s net; its export takes 3x32x32 images and scores the test batch',
    (net) => {
      const out = join(tempDir(), 'run');
      const r = runCli([
        'train',
        '--model',
        net,
        '--data',
        data,
        '--max-steps',
        '6',
        '--batch-size',
        '16',
        '--threads',
        '2',
        '--out',
        out,
      ]);
      expect([r.code, r.stderr]).toEqual([0, '']);
      expect(exportedModel(out).shapes).toEqual([
        ['N', 3, 32, 32],
        ['N', 10],
      ]);
      const evaluation = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8'));
      expect([evaluation.total, evaluation.confusion.length, evaluation.imageShape]).toEqual([30, 10, [3, 32, 32]]);
      expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('data:image/png;base64,');
      const scored = runCli(['eval', '--model-file', join(out, 'inference.onnx'), '--data', data, '--json']);
      const report = JSON.parse(scored.stdout);
      const names = [report.perClass[0].name, report.perClass[9].name];
      expect([scored.code, report.total, names]).toEqual([0, 30, ['airplane', 'truck']]);
    },
  );

  it('records the signature: export --init rebuilds the model from it, a resume keeps it, other data is refused', () => {
    const out = join(tempDir(), 'run');
    const args = ['--data', data, '--model', 'residual', '--batch-size', '16', '--threads', '2'];
    expect(runCli(['train', ...args, '--max-steps', '3', '--out', out]).code).toBe(0);
    const meta = exportedModel(out).metadata;
    const recorded = JSON.parse(meta['ingraph.signature']);
    const shape = [recorded.channels, recorded.height, recorded.width, recorded.classes, recorded.mean.length];
    expect([shape, recorded.classNames]).toEqual([[3, 32, 32, 10, 3], NAMES]);
    const exported = join(tempDir(), 'again.onnx');
    const e = runCli(['export', '--model', 'residual', '--init', join(out, 'checkpoint.onnx'), '--out', exported]);
    expect([e.code, parseModel(readFileSync(exported), 'again').inputs[0].shape]).toEqual([0, ['N', 3, 32, 32]]);
    const mnist = runCli(['train', '--resume', out, '--data', mnistSlice(64, 32), '--max-steps', '4']);
    const refused =
      /^ingraph: --data: the training set has 1x28x28 images in 10 classes; the model takes 3x32x32 images/;
    expect([mnist.code, mnist.stderr]).toEqual([2, expect.stringMatching(refused)]);
    expect(runCli(['train', '--resume', out, '--data', data, '--max-steps', '5', '--threads', '2']).code).toBe(0);
  });

  it.each([
    [
      'a file that is not a whole number of records',
      (dir: string) => writeFileSync(join(dir, 'data_batch_3.bin'), records(3, 3).subarray(0, 2 * RECORD + 7)),
      /data_batch_3\.bin: 6153 bytes, not a whole number of CIFAR-10 records of 3073 bytes/,
    ],
    [
      'a label beyond the classes',
      (dir: string) => {
        const b = records(3, 4);
        b[RECORD] = 10;
        writeFileSync(join(dir, 'data_batch_4.bin'), b);
      },
      /data_batch_4\.bin: record 1 has label 10, beyond CIFAR-10's 10 classes/,
    ],
    [
      'an empty batch',
      (dir: string) => writeFileSync(join(dir, 'data_batch_5.bin'), ''),
      /data_batch_5\.bin: 0 bytes, not a whole number of CIFAR-10 records/,
    ],
  ] as const)('%s: one line naming the file, exit 2, nothing written', (_, damage, message) => {
    const dir = cifarDir(4, 4);
    damage(dir);
    const parent = tempDir();
    const r = runCli(['train', '--data', dir, '--max-steps', '1', '--out', join(parent, 'run')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(readdirSync(parent)).toEqual([]);
    expect(existsSync(join(parent, 'run'))).toBe(false);
  });
});

describe('--mean and --std', () => {
  it('normalise as given, recorded in the export; a count that fits no channels is refused', () => {
    const out = join(tempDir(), 'run');
    const args = ['train', '--model', 'residual', '--data', data, '--max-steps', '2', '--threads', '2'];
    expect(runCli([...args, '--mean', '0.49,0.48,0.45', '--std', '0.25', '--out', out]).code).toBe(0);
    const recorded = JSON.parse(exportedModel(out).metadata['ingraph.signature']);
    expect([recorded.mean, recorded.std]).toEqual([[0.49, 0.48, 0.45], [0.25]]);
    const bad = runCli([...args, '--mean', '0.5,0.5', '--std', '0.2', '--out', join(tempDir(), 'never')]);
    expect([bad.code, bad.stderr]).toEqual([2, 'ingraph: --mean 0.5,0.5: needs 1 or 3 values (one per channel)\n']);
    const alone = runCli([...args, '--std', '0.2', '--out', join(tempDir(), 'never')]);
    expect([alone.code, alone.stderr]).toEqual([2, 'ingraph: --std: needs --mean too\n']);
  });
});

describe('in-graph normalisation', () => {
  it("is torchvision's ToTensor then Normalize(mean, std), per channel", async () => {
    const s = { channels: 3, height: 1, width: 2, classes: 2, mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 0.125] };
    const g = new GraphBuilder();
    g.output(preprocess(g, imagesInput(g, s), s), 'x');
    const pixels = Uint8Array.of(0, 255, 51, 102, 204, 153);
    const out = await runGraph(g, { images: new ort.Tensor('uint8', pixels, [1, 3, 1, 2]) });
    const expected = Array.from(pixels, (p, i) => (p / 255 - s.mean[i >> 1]) / s.std[i >> 1]);
    const got = Array.from(out.x.data as Float32Array);
    got.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
  });
});

describe('the training set a run started with', () => {
  it('is fingerprinted in the checkpoint: a resume on other data is refused, on the same data it continues', () => {
    const out = join(tempDir(), 'run');
    const first = mnistSlice(64, 32);
    const base = ['--model', 'residual', '--threads', '2', '--batch-size', '16', '--lr-schedule', 'constant'];
    expect(runCli(['train', ...base, '--data', first, '--max-steps', '2', '--out', out]).code).toBe(0);
    const other = runCli(['train', '--resume', out, '--data', mnistSlice(80, 32), '--max-steps', '4']);
    const refused =
      /^ingraph: --data: not the training set the run started with \(64 images, sha256 [0-9a-f]{12}; this is 80 images/;
    expect([other.code, other.stderr]).toEqual([2, expect.stringMatching(refused)]);
    expect(runCli(['train', '--resume', out, '--data', first, '--max-steps', '4']).code).toBe(0);
  });
});

describe('--augment flip', () => {
  it('mirrors about half the images left to right, every channel alike, the same for the same (seed, epoch, batch)', () => {
    const shape = [3, 2, 4] as const;
    const n = 400;
    const original = Uint8Array.from({ length: n * 24 }, (_, i) => (i * 7) % 251);
    const run = () => {
      const images = Uint8Array.from(original);
      augmentBatch('flip', images, n, { seed: 3, epoch: 1, batch: 2 }, shape);
      return images;
    };
    const images = run();
    expect(Buffer.from(run()).equals(Buffer.from(images))).toBe(true);
    let flipped = 0;
    for (let i = 0; i < n; i++) {
      const rows = (a: Uint8Array) =>
        Array.from({ length: 6 }, (_, r) => Array.from(a.subarray(i * 24 + r * 4, i * 24 + r * 4 + 4)));
      const mine = rows(images);
      const source = rows(original);
      const equal = (x: number[], y: number[]) => x.every((v, k) => v === y[k]);
      const mirrored = source.every((row, r) => equal([...row].reverse(), mine[r]));
      const same = source.every((row, r) => equal(row, mine[r]));
      expect(mirrored !== same).toBe(true);
      if (mirrored) flipped++;
    }
    expect(flipped / n).toBeGreaterThan(0.4);
    expect(flipped / n).toBeLessThan(0.6);
  });
});

describe('the residual net on 3x32x32 images in 10 classes against PyTorch in float64', () => {
  it('one SGD step: loss and every gradient; two steps: every parameter (tools/make_torch_cifar_fixture.py)', async () => {
    const fx = loadTorchFixture('residual', 'cifar');
    const { mean, std } = JSON.parse(
      readFileSync(join(__dirname, 'fixtures', 'torch_step_residual_cifar.json'), 'utf8'),
    );
    const signature = { channels: 3, height: 32, width: 32, classes: 10, mean, std };
    const plan = new TrainingPlan({
      network: 'residual',
      signature,
      optimizer: sgd({ momentum: 0.5, weightDecay: 0 }),
      exposeGradients: true,
    });
    const graph = plan.step();
    const init = new Map(graph.params.map((p) => [p.name, fx.get(`init/${p.name}`)]));
    const B = fx.batch;
    const images = fx.images();
    const labels = fx.labels();
    const feeds: Record<string, ort.Tensor> = {
      images: new ort.Tensor('uint8', images.slice(0, B * 3072), [B, 3, 32, 32]),
      labels: new ort.Tensor('int64', labels.slice(0, B), [B]),
      lr: new ort.Tensor('float32', Float32Array.of(fx.config.lr), []),
    };
    for (const p of graph.params) feeds[p.name] = new ort.Tensor('float32', init.get(p.name) as Float32Array, p.shape);
    for (const s of graph.states) feeds[s.name] = new ort.Tensor('float32', new Float32Array(numel(s.shape)), s.shape);
    const step = await TrainingStep.open(graph, init, new Map(), { ep: 'cpu', threads: 1 });
    const out = await step.opened.session.run(feeds);
    expect(Math.abs((out.loss.data as Float32Array)[0] - fx.losses[0]) / fx.losses[0]).toBeLessThan(1e-5);
    for (const p of graph.params)
      expect([p.name, relError(out[`grad.${p.name}`].data as Float32Array, fx.get(`grad1/${p.name}`)) < 1e-4]).toEqual([
        p.name,
        true,
      ]);
    for (let k = 0; k < 2; k++) {
      const r = await step.run(images.subarray(k * B * 3072), labels.subarray(k * B), B, fx.config.lr);
      expect(Math.abs(r.loss - fx.losses[k]) / fx.losses[k]).toBeLessThan(1e-5);
    }
    const params = step.params();
    for (const p of graph.params)
      expect([p.name, relError(params.get(p.name) as Float32Array, fx.get(`param2/${p.name}`)) < 1e-4]).toEqual([
        p.name,
        true,
      ]);
    await step.release();
  });
});

describe('CSV files of other images', () => {
  it('--image-shape C,H,W reads rows of C·H·W pixels, the classes from the labels; a row of another length is named', () => {
    const dir = tempDir('ingraph-csv-');
    const row = (label: number, seed: number) =>
      [label, ...Array.from({ length: 3 * 16 * 16 }, (_, i) => (i * 31 + seed * 17 + label * 80) % 256)].join(',');
    const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i % 3, i)).join('\n');
    writeFileSync(join(dir, 'train.csv'), `label,pixels\n${rows(24)}\n`);
    writeFileSync(join(dir, 'test.csv'), `${rows(9)}\n`);
    const train = readDataset(dir, 'train', undefined, [3, 16, 16]);
    expect([train.count, train.shape, train.classes, train.images[16 * 16]]).toEqual([
      24,
      [3, 16, 16],
      3,
      (256 * 31) % 256,
    ]);
    const out = join(tempDir(), 'run');
    const r = runCli([
      'train',
      '--model',
      'residual',
      '--data',
      dir,
      '--image-shape',
      '3,16,16',
      '--max-steps',
      '2',
      '--threads',
      '2',
      '--out',
      out,
    ]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(exportedModel(out).shapes[0]).toEqual(['N', 3, 16, 16]);
    const wrong = runCli([
      'train',
      '--data',
      dir,
      '--image-shape',
      '3,16,15',
      '--max-steps',
      '1',
      '--out',
      join(tempDir(), 'never'),
    ]);
    expect([wrong.code, wrong.stderr]).toEqual([
      2,
      expect.stringMatching(/train\.csv:2: more than 721 columns \(a label and 720 pixels\)/),
    ]);
  });
});

describe('report charts for many named classes', () => {
  it('name the classes on both axes in their order, widen with the class count and drop the cell numbers past 20', () => {
    const names = Array.from({ length: 100 }, (_, k) => `c${k}`);
    const confusion = names.map((_, t) => names.map((_, p) => (t === p ? 1 : 0)));
    const spec = confusionChart(confusion, names) as unknown as Record<string, any>;
    expect([
      spec.width >= 900,
      spec.layer.length,
      spec.encoding.x.sort.slice(0, 3),
      spec.encoding.y.axis.labelAngle,
    ]).toEqual([true, 1, ['c0', 'c1', 'c2'], 0]);
    const ten = confusionChart(confusion.slice(0, 10).map((r) => r.slice(0, 10))) as unknown as Record<string, any>;
    expect([ten.width, ten.layer.length, ten.encoding.x.sort]).toEqual([330, 2, undefined]);
    const bars = perClassChart(
      names.map((name, label) => ({ label, name, accuracy: 0.5, total: 3 })),
    ) as unknown as Record<string, any>;
    expect([bars.width >= 900, bars.data.values[7].label, bars.layer.length]).toEqual([true, 'c7', 1]);
  });
});
