/**
 * ingraph as a library: a network the project does not ship (examples/lenet5.ts) checked against float64 finite
 * differences and trained, exported and evaluated like the seed's; the Trainer over arrays, its checkpoint and
 * resume; data as gzip-compressed IDX, CSV and arrays, each validated; the schedule horizon on resume.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { gzipSync } from 'zlib';
import {
  Checkpointer,
  DataError,
  Forward,
  GraphBuilder,
  Trainer,
  progressLog,
  datasetFromArrays,
  evaluateModel,
  parseModel,
  readCheckpoint,
  readDataset,
  train,
  trainConfig,
} from 'ingraph';
import { LeNet5, lenet5 } from '../examples/lenet5';
import { gradCheck, relErrAt } from './helpers/graph-check';
import * as R from './helpers/reference';
import { exportedModel, mnistSlice, runCli, tempDir } from './helpers/cli';

const rnd = R.seeded(5);
const data = mnistSlice(320, 100);
const quiet = { line: () => {}, event: () => {}, progress: () => {} };

function lenetRef(x: R.T64, p: Map<string, R.T64>): R.T64 {
  const w = (name: string) => p.get(name) as R.T64;
  let y = R.maxPool(R.relu(R.conv2d(x, w('conv1.weight'), w('conv1.bias'), [2, 2, 2, 2], [1, 1])), [2, 2], [2, 2]);
  y = R.maxPool(R.relu(R.conv2d(y, w('conv2.weight'), w('conv2.bias'), [0, 0, 0, 0], [1, 1])), [2, 2], [2, 2]);
  y = R.relu(R.linear(R.flatten(y), w('fc1.weight'), w('fc1.bias')));
  y = R.relu(R.linear(y, w('fc2.weight'), w('fc2.bias')));
  return R.linear(y, w('fc3.weight'), w('fc3.bias'));
}

describe('a custom network (LeNet-5, examples/lenet5.ts)', () => {
  it('61,706 parameters named like its modules; every gradient against float64 finite differences (sampled)', async () => {
    const net = new LeNet5().bindNames();
    const specs = net.parameters();
    expect(specs.map((s) => s.name)).toEqual([
      'conv1.weight',
      'conv1.bias',
      'conv2.weight',
      'conv2.bias',
      'fc1.weight',
      'fc1.bias',
      'fc2.weight',
      'fc2.bias',
      'fc3.weight',
      'fc3.bias',
    ]);
    expect(specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)).toBe(61706);
    const inputs = [
      { name: 'x', value: R.randomT([2, 1, 28, 28], rnd) },
      ...specs.map((s) => ({ name: s.name, value: R.randomT(s.shape, rnd, 0.3) })),
    ];
    const asParams = (xs: R.T64[]) => new Map(specs.map((s, i) => [s.name, xs[1 + i]]));
    const res = await gradCheck(
      inputs,
      (g: GraphBuilder, xs) =>
        net.forward(new Forward(g, (s) => xs[1 + specs.findIndex((q) => q.name === s.name)], true), xs[0]),
      (xs) => lenetRef(xs[0], asParams(xs)),
      (n) => Float64Array.from({ length: n }, () => 2 * rnd() - 1),
      24,
    );
    res.grads.forEach((g, k) =>
      expect([inputs[k].name, relErrAt(g, res.fd[k], res.checked[k]) < 1e-4]).toEqual([inputs[k].name, true]),
    );
  });

  it('trains in-graph into a run directory, and its export is evaluated by the CLI like the seed networks', async () => {
    const out = join(tempDir(), 'run');
    const config = trainConfig('lenet5', { epochs: 3, batchSize: 32, lr: 0.05, momentum: 0.9, logEvery: 5 });
    const result = await train({
      config,
      data,
      network: lenet5,
      out,
      init: null,
      resume: null,
      ep: 'cpu',
      threads: 2,
      checkpointEvery: null,
      promote: null,
      report: quiet,
    });
    expect(result.epochs).toHaveLength(3);
    expect(result.final.accuracy).toBeGreaterThan(0.3); // 30 steps from chance (0.1)
    const inference = parseModel(readFileSync(join(out, 'inference.onnx')));
    expect(inference.metadata['ingraph.model']).toBe('lenet5');
    expect(readCheckpoint(join(out, 'checkpoint.onnx'), 'test').initializers.has('fc3.weight')).toBe(true);
    const r = runCli(['eval', '--model-file', join(out, 'inference.onnx'), '--data', data, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).accuracy).toBe(result.final.accuracy);
  });
});

describe('the Trainer over arrays', () => {
  const split = readDataset(data, 'train');
  const arrays = datasetFromArrays(Array.from(split.images), Array.from(split.labels));
  const test = readDataset(data, 'test');
  const config = trainConfig('residual', { batchSize: 32, maxSteps: 6, shuffle: true, seed: 3 });

  it('steps, checkpoints and resumes to the same weights as an uninterrupted run', async () => {
    const straight = await Trainer.create({ network: 'residual', config, train: arrays, test, threads: 1 });
    const losses: number[] = [];
    await straight.fit([{ onStep: (_, e) => void losses.push(e.loss) }]);
    expect(losses).toHaveLength(6);
    expect(straight.finished).toBe(true);
    const halves = await Trainer.create({ network: 'residual', config, train: arrays, test, threads: 1 });
    for (let i = 0; i < 3; i++) await halves.step();
    const ck = join(tempDir(), 'ck.onnx');
    writeFileSync(ck, halves.checkpoint());
    await halves.release();
    const resumed = await Trainer.create({
      network: 'residual',
      config,
      train: arrays,
      test,
      threads: 1,
      resume: readCheckpoint(ck, 'test'),
    });
    expect(resumed.position.step).toBe(3);
    await resumed.fit();
    for (const [name, w] of straight.params())
      expect([
        name,
        Buffer.from((resumed.params().get(name) as Float32Array).buffer).equals(Buffer.from(w.buffer)),
      ]).toEqual([name, true]);
    const report = await evaluateModel(resumed.exportModel(), test);
    expect(report.total).toBe(100);
    await Promise.all([straight.release(), resumed.release()]);
  });
});

describe('contiguous parameters (federated averaging)', () => {
  // Two batches of 32 that are the same images, in order: two trainers' steps can be compared exactly.
  const half = readDataset(data, 'train', 32);
  const twice = <T>(a: ArrayLike<T>) => [...Array.from(a), ...Array.from(a)];
  const train = datasetFromArrays(twice(half.images), twice(half.labels));
  const test = readDataset(data, 'test', 20);
  const config = trainConfig('residual', { batchSize: 32, maxSteps: 4, momentum: 0, shuffle: false });

  it.each([1, 2])(
    'with %i thread(s): the average of two trainers, loaded, steps as a trainer started from it',
    async (threads) => {
      const open = (seed: number, init?: Map<string, Float32Array>) =>
        Trainer.create({
          network: 'residual',
          config: { ...config, seed },
          train,
          test,
          threads,
          ...(init ? { init } : {}),
        });
      const [a, b] = [await open(1), await open(2)];
      await a.step();
      await b.step();
      const [fa, fb] = [a.getContiguousParameters(), b.getContiguousParameters()];
      expect(fa).toHaveLength(41514);
      expect(Array.from(fa.subarray(0, 400))).toEqual(Array.from(a.params().get('conv1.weight') as Float32Array));
      const mean = fa.map((v, i) => (v + fb[i]) / 2);
      a.loadParametersBuffer(mean);
      expect(Array.from(a.getContiguousParameters())).toEqual(Array.from(mean));
      expect(() => a.loadParametersBuffer(mean.subarray(1))).toThrow(/41513 values, expected 41514/);
      const fresh = await open(1, new Map(a.params()));
      const [ours, theirs] = [await a.step(), await fresh.step()];
      expect(ours.loss).toBe(theirs.loss);
      expect(Array.from(a.getContiguousParameters())).toEqual(Array.from(fresh.getContiguousParameters()));
      await Promise.all([a.release(), b.release(), fresh.release()]);
    },
  );
});

describe('data formats', () => {
  const plain = { train: readDataset(data, 'train'), test: readDataset(data, 'test') };
  const files = [
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
  ];
  const csvOf = (s: typeof plain.train, header: boolean) =>
    [
      ...(header ? [['label', ...Array.from({ length: 784 }, (_, i) => `pixel${i}`)].join(',')] : []),
      ...Array.from({ length: s.count }, (_, i) =>
        [s.labels[i], ...s.images.subarray(i * 784, (i + 1) * 784)].join(','),
      ),
    ].join('\r\n');

  it('gzip-compressed IDX (the official distribution) reads the same as plain IDX, also through the CLI', () => {
    const dir = tempDir();
    for (const f of files) writeFileSync(join(dir, `${f}.gz`), gzipSync(readFileSync(join(data, f))));
    for (const split of ['train', 'test'] as const) expect(readDataset(dir, split)).toEqual(plain[split]);
    expect(
      runCli([
        'train',
        '--model',
        'residual',
        '--data',
        dir,
        '--max-steps',
        '1',
        '--ep',
        'cpu',
        '--out',
        join(tempDir(), 'run'),
      ]).code,
    ).toBe(0);
  });

  it('IDX labels beyond 9 (EMNIST letters, 1..26) give 27 classes; a test label beyond them is refused', () => {
    const idx = (magic: number, dims: number[], body: Uint8Array) => {
      const head = Buffer.alloc(4 + 4 * dims.length);
      head.writeUInt32BE(magic, 0);
      dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
      return gzipSync(Buffer.concat([head, body]));
    };
    const dir = tempDir();
    const write = (prefix: string, n: number, top: number) => {
      const labels = Uint8Array.from({ length: n }, (_, i) => 1 + (i % top));
      const images = Uint8Array.from({ length: n * 784 }, (_, p) => (labels[Math.floor(p / 784)] * 9 + p) % 256);
      writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), idx(0x803, [n, 28, 28], images));
      writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`), idx(0x801, [n], labels));
    };
    write('train', 52, 26);
    write('t10k', 26, 26);
    const [train, test] = [readDataset(dir, 'train'), readDataset(dir, 'test')];
    expect([train.classes, test.classes, train.labels[25], test.labels[0]]).toEqual([27, 27, 26, 1]);
    const out = join(tempDir(), 'run');
    expect(runCli(['train', '--model', 'residual', '--data', dir, '--max-steps', '1', '--out', out]).code).toBe(0);
    expect(exportedModel(out).shapes[1]).toEqual(['N', 27]);
    write('t10k', 30, 30);
    expect(() => readDataset(dir, 'test')).toThrow(
      /t10k-labels-idx1-ubyte\.gz: label 27 at index 26 is out of range 0\.\.26 \(the classes of .*train-labels-idx1-ubyte\.gz\)/,
    );
  });

  it('CSV of label,pixel0..pixel783 (with a header, CRLF lines) reads the same as IDX', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'mnist_train.csv'), csvOf(plain.train, true));
    writeFileSync(join(dir, 'mnist_test.csv'), csvOf(plain.test, false));
    for (const split of ['train', 'test'] as const) expect(readDataset(dir, split)).toEqual(plain[split]);
  });

  it.each([
    ['a row with 784 columns', 2, (row: string) => row.replace(/,0$/, ''), /train\.csv:3: 784 columns, expected 785/],
    ['a pixel of 256', 1, (row: string) => row.replace(/,0,/, ',256,'), /train\.csv:2: column \d+: a value over 255/],
    ['a label of 12', 0, (row: string) => `12${row.slice(1)}`, /train\.csv:1: label 12 is out of range 0\.\.9/],
    [
      'a word in a row',
      0,
      (row: string) => row.replace(/,0,/, ',x,'),
      /train\.csv:1: column \d+: "x" is not part of a non-negative integer/,
    ],
  ] as const)('a CSV with %s is refused naming the file and line', (_, index, damage, message) => {
    const dir = tempDir();
    const rows = csvOf(plain.train, false).split('\r\n').slice(0, 5);
    rows[index] = damage(rows[index]);
    writeFileSync(join(dir, 'train.csv'), rows.join('\n'));
    expect(() => readDataset(dir, 'train')).toThrow(DataError);
    expect(() => readDataset(dir, 'train')).toThrow(message);
  });

  it('a damaged gzip file and bad arrays are refused with one line', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'x'));
    writeFileSync(
      join(dir, 'train-images-idx3-ubyte.gz'),
      gzipSync(readFileSync(join(data, files[0]))).subarray(0, 200),
    );
    expect(() => readDataset(dir, 'train')).toThrow(/train-images-idx3-ubyte\.gz: not a valid gzip file/);
    expect(() => datasetFromArrays(new Uint8Array(784), [1, 2])).toThrow(
      /images: 784 values for 2 labels; expected 1568/,
    );
    expect(() => datasetFromArrays(new Uint8Array(784), [10])).toThrow(
      /labels: value 10 at index 0 is not an integer 0\.\.9/,
    );
    expect(() =>
      datasetFromArrays(
        Array.from({ length: 784 }, (_, i) => (i === 5 ? 300 : 0)),
        [1],
      ),
    ).toThrow(/images: value 300 at index 5/);
  });
});

describe('resume and the schedule horizon', () => {
  const base = ['train', '--model', 'residual', '--data', data, '--batch-size', '32', '--ep', 'cpu', '--threads', '1'];

  it('a cosine run resumed with another --max-steps is refused (the schedule would bend); a constant one extends', () => {
    const cosine = join(tempDir(), 'run');
    expect(runCli([...base, '--lr-schedule', 'cosine', '--max-steps', '4', '--out', cosine]).code).toBe(0);
    const r = runCli(['train', '--resume', cosine, '--max-steps', '8', '--data', data]);
    expect([r.code, r.stderr.trim()]).toEqual([
      2,
      expect.stringMatching(
        /^ingraph: --resume .*: its cosine schedule spans 4 steps; these epochs, max-steps and data give 8, which would bend the schedule mid-run; resume with the run's own epochs and max-steps$/,
      ),
    ]);
    const constant = join(tempDir(), 'run');
    expect(runCli([...base, '--max-steps', '4', '--out', constant]).code).toBe(0);
    expect(runCli(['train', '--resume', constant, '--max-steps', '8', '--data', data]).code).toBe(0);
    expect(
      JSON.parse(readCheckpoint(join(constant, 'checkpoint.onnx'), 'test').metadata['ingraph.position']).step,
    ).toBe(8);
  });
});

describe('observers, each alone', () => {
  const fakeTrainer = (step: number, epochs: number) =>
    ({
      checkpointState: () => ({ position: { step }, epochs: Array.from({ length: epochs }) }),
      checkpoint: () => Uint8Array.of(step),
    }) as unknown as Trainer;
  const stepEvent = (step: number, logged: number | null) => ({
    epoch: 0,
    batch: step,
    batchesPerEpoch: 10,
    step,
    loss: 1,
    lr: 0.01,
    logged,
  });

  it('Checkpointer: every N steps, after each epoch and on a stop; never the same state twice', () => {
    const written: number[] = [];
    const c = new Checkpointer((bytes) => written.push(bytes[0]), 3);
    for (let s = 1; s <= 7; s++) c.onStep(fakeTrainer(s, 0), stepEvent(s, null));
    c.onEpoch(fakeTrainer(7, 1));
    c.onStop(fakeTrainer(7, 1));
    c.save(fakeTrainer(7, 1));
    expect(written).toEqual([3, 6, 7]);
    expect(c.step).toBe(7);
  });

  it("progressLog: the seed's loss line when a mean is logged, and the epoch's test accuracy", () => {
    const lines: string[] = [];
    const events: Record<string, unknown>[] = [];
    const log = progressLog({ line: (t) => lines.push(t), event: (e) => events.push(e), progress: () => {} });
    void log.onStep?.(fakeTrainer(1, 0), stepEvent(299, null));
    void log.onStep?.(fakeTrainer(1, 0), { ...stepEvent(300, 0.97812), batch: 300 });
    void log.onEpoch?.(fakeTrainer(1, 1), {
      epoch: 1,
      trainLoss: 0.3,
      trainAccuracy: 0.9,
      testAccuracy: 0.9622,
      seconds: 10,
      imagesPerSecond: 1551.4,
    });
    expect(lines).toEqual(['[1,   300] loss: 0.978', 'accuracy on test set: 96.22 % (epoch 1, 1551 images/s)']);
    expect(events.map((e) => e.type)).toEqual(['log', 'epoch']);
  });
});
