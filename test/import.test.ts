/**
 * Models of PyTorch's own (tools/make_import_fixtures.py, exported by Debian's PyTorch 1.13): imported, their logits,
 * loss and every gradient equal PyTorch's float64 values from the same weights; trained through the CLI, their
 * export is a drop-in for the file; what cannot be imported is refused in one line.
 */
import { existsSync, readFileSync, writeFileSync } from 'fs';
import { onnx } from 'onnx-proto';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import { importModel } from '../src/api';
import { Trainer } from '../src/train/trainer';
import { readDataset } from '../src/data/mnist';
import { trainConfig } from '../src/config';
import { TrainingPlan } from '../src/plan';
import { TrainingStep } from '../src/runtime/step';
import { importGraph, ImportedModule, RANDOM_STATE } from '../src/models/import';
import { Forward } from '../src/models/module';
import { GraphBuilder } from '../src/onnx/builder';
import { runGraph } from './helpers/graph-check';
import { browserRun, CHROMIUM } from './helpers/browser';
import { sgd } from '../src/optim/sgd';
import { numel } from '../src/onnx/tensor';
import { fartherThanTorch32, loadFixture, relError } from './helpers/torch-fixture';
import { mnistSlice, rawImages, rawLabels, runCli, tempDir } from './helpers/cli';
import { parseModel } from '../src/onnx/model';

const FIXTURES = join(__dirname, 'fixtures', 'import');
/** Relative error of logits, loss and gradients against PyTorch's float64 (float32 arithmetic here). */
const REL_TOL = 1e-4;

/** The fixture's images and labels as a training step's feeds, with the model's parameters from the file. */
function stepFeeds(name: string, plan: TrainingPlan): Record<string, ort.Tensor> {
  const fx = loadFixture(join(FIXTURES, name));
  const [c, h, w] = [plan.signature.channels, plan.signature.height, plan.signature.width];
  const feeds: Record<string, ort.Tensor> = {
    images: new ort.Tensor('uint8', fx.images(), [fx.batch, c, h, w]),
    labels: new ort.Tensor('int64', fx.labels(), [fx.batch]),
    lr: new ort.Tensor('float32', Float32Array.of(0), []),
  };
  for (const [k, v] of plan.initialParams(0))
    feeds[k] = new ort.Tensor('float32', v, [...(plan.params.find((p) => p.name === k)?.shape ?? [])]);
  const buffers = plan.initialBuffers(0);
  for (const s of plan.states)
    feeds[s.name] = new ort.Tensor('float32', buffers.get(s.name) ?? new Float32Array(numel(s.shape)), s.shape);
  return feeds;
}

/** The plan of fixture `name`'s model (or of `file`.onnx, another export of the same weights). */
function planOf(name: string, file = name): TrainingPlan {
  const network = importModel(join(FIXTURES, `${file}.onnx`));
  const { input, classes } = network.imported?.shape ?? { input: [1, 28, 28], classes: 10 };
  const signature = { channels: input[0], height: input[1], width: input[2], classes, ...normalisationOf(name) };
  return new TrainingPlan({
    network,
    signature,
    optimizer: sgd({ momentum: 0, weightDecay: 0 }),
    exposeGradients: true,
  });
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** The normalisation the fixture's images were given in PyTorch. */
function normalisationOf(name: string): { mean: number[]; std: number[] } {
  const index = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { mean: number[]; std: number[] };
  return { mean: index.mean, std: index.std };
}

describe.each([
  ['residual', 'residual'],
  ['smallnet', 'smallnet'],
  ['smallnet', 'smallnet_train'],
  ['mixnet', 'mixnet'],
])('%s (%s.onnx), imported', (name, file) => {
  it('gives PyTorch’s training loss, every gradient and the running statistics after a step, from the same weights', async () => {
    const fx = loadFixture(join(FIXTURES, name));
    const plan = planOf(name, file);
    expect(plan.params.map((p) => p.name).sort()).toEqual(fx.keys('grad1/').sort());
    const session = await ort.InferenceSession.create(plan.step().bytes, { intraOpNumThreads: 1 });
    const out = await session.run(stepFeeds(name, plan));
    await session.release();
    expect(Math.abs((out.loss.data as Float32Array)[0] - fx.losses[0]) / fx.losses[0]).toBeLessThan(REL_TOL);
    // Relative to the tensor's largest gradient, or a hundredth of the largest of all where it is (nearly) zero:
    // a Linear's bias before a BatchNorm has a gradient of exactly 0, which float32 meets only to rounding.
    const largest = Math.max(...plan.params.map((p) => maxAbs(fx.get(`grad1/${p.name}`))));
    for (const p of plan.params) {
      const [ours, theirs] = [out[`grad.${p.name}`].data as Float32Array, fx.get(`grad1/${p.name}`)];
      const err = maxAbs(ours.map((v, i) => v - theirs[i])) / Math.max(maxAbs(theirs), 1e-2 * largest);
      expect([p.name, err < REL_TOL ? 'ok' : err]).toEqual([p.name, 'ok']);
    }
    // BatchNorm trains on the batch's statistics and moves its running ones as PyTorch does.
    expect(plan.buffers.map((b) => b.name).sort()).toEqual(fx.keys('running1/').sort());
    for (const b of plan.buffers) {
      const err = relError(out[`updated.${b.name}`].data as Float32Array, fx.get(`running1/${b.name}`));
      expect([b.name, err < REL_TOL ? 'ok' : err]).toEqual([b.name, 'ok']);
    }
  });
});

describe.each([
  ['residual', 'residual'],
  ['smallnet', 'smallnet_train'],
  ['mixnet', 'mixnet'],
])('%s (%s.onnx), imported', (name, file) => {
  it('three SGD steps reach PyTorch’s float64 parameters and running statistics, as near as PyTorch’s float32', async () => {
    const fx = loadFixture(join(FIXTURES, name));
    const network = importModel(join(FIXTURES, `${file}.onnx`));
    const plan = new TrainingPlan({
      network,
      signature: planOf(name).signature,
      optimizer: sgd({ momentum: 0.9, weightDecay: 0 }),
    });
    const step = await TrainingStep.open(plan.step(), plan.initialParams(0), plan.initialBuffers(0), {
      ep: 'cpu',
      threads: 1,
    });
    const [images, labels] = [fx.uint8('steps/images'), BigInt64Array.from(fx.uint8('steps/labels'), BigInt)];
    const size = images.length / labels.length;
    const B = fx.batch;
    for (let k = 0; k < 3; k++) await step.run(images.subarray(k * B * size), labels.subarray(k * B), B, 0.05);
    const ours = new Map([...step.params(), ...step.states()]);
    await step.release();
    // Within 5x PyTorch float32's own distance to float64 (float32 arithmetic rounds in other orders).
    const { far, compared } = fartherThanTorch32(fx, 3, ours);
    expect([far, compared > 0]).toEqual([[], true]);
  });
});

describe.each(['residual', 'smallnet', 'folded', 'mixnet'])('%s.onnx, imported', (name) => {
  it('gives PyTorch’s eval-mode logits (folded.onnx: its BatchNorm folded into the conv by the export)', async () => {
    const fx = loadFixture(join(FIXTURES, name));
    const plan = planOf(name);
    const session = await ort.InferenceSession.create(plan.eval(), { intraOpNumThreads: 1 });
    const { images, labels, ...params } = stepFeeds(name, plan);
    const wanted = new Set(session.inputNames);
    const feeds = Object.fromEntries(Object.entries({ images, labels, ...params }).filter(([k]) => wanted.has(k)));
    const out = await session.run(feeds);
    await session.release();
    expect(relError(out.logits.data as Float32Array, fx.get('logits'))).toBeLessThan(REL_TOL);
  });
});

describe.each(['residual', 'inception'] as const)('the seed’s %s net, exported by PyTorch and imported', (net) => {
  it('trains 20 SGD steps to the parameters of the built-in net from the same weights and batches (1e-5)', async () => {
    const data = mnistSlice(640, 20);
    const [train, test] = [readDataset(data, 'train'), readDataset(data, 'test')];
    const imported = importModel(join(FIXTURES, `${net}.onnx`));
    const weights = imported.imported?.weights as Map<string, Float32Array>;
    const config = (name: string) => trainConfig(name, { maxSteps: 20, batchSize: 32 });
    const builtIn = await Trainer.create({ network: net, config: config(net), train, test, threads: 1, init: weights });
    const ours = await Trainer.create({ network: imported, config: config(imported.name), train, test, threads: 1 });
    for (let i = 0; i < 20; i++) await Promise.all([builtIn.step(), ours.step()]);
    const [a, b] = [builtIn.params(), ours.params()];
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    const off = [...a].filter(([name, w]) => !(relError(b.get(name) as Float32Array, w) <= 1e-5));
    expect(off.map(([name]) => name)).toEqual([]);
    expect(relError(a.get('fc.weight') as Float32Array, weights.get('fc.weight') as Float32Array)).toBeGreaterThan(
      1e-3,
    );
    await Promise.all([builtIn.release(), ours.release()]);
  });
});

describe('ingraph train --model FILE.onnx', () => {
  const file = join(FIXTURES, 'residual.onnx');
  const data = mnistSlice(640, 200);

  it('trains a PyTorch export; its inference.onnx is a drop-in for the file, eval and onnxruntime-web score it', async () => {
    const out = join(tempDir(), 'run');
    const deployed = join(tempDir(), 'deployed.onnx');
    const r = runCli([
      'train',
      '--model',
      file,
      '--data',
      data,
      '--max-steps',
      '6',
      '--out',
      out,
      '--promote-to',
      deployed,
    ]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(readFileSync(deployed)).toEqual(readFileSync(join(out, 'inference.onnx'))); // promoted: nothing deployed yet
    const [theirs, ours] = [parseModel(readFileSync(file)), parseModel(readFileSync(join(out, 'inference.onnx')))];
    expect([ours.inputs, ours.outputs]).toEqual([theirs.inputs, theirs.outputs]);
    for (const [name, t] of theirs.initializers)
      expect([name, ours.initializers.get(name)?.shape]).toEqual([name, t.shape]);
    const trained = ours.initializers.get('conv1.weight')?.data as Float32Array;
    expect(trained).not.toEqual(theirs.initializers.get('conv1.weight')?.data); // trained, from the file's weights
    const scored = runCli(['eval', '--model-file', join(out, 'inference.onnx'), '--data', data, '--json']);
    const evaluation = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8'));
    expect([scored.code, JSON.parse(scored.stdout).correct]).toEqual([0, evaluation.correct]);
    // The trained file runs in onnxruntime-web (Chromium) to the labels onnxruntime-node gives.
    if (existsSync(CHROMIUM)) {
      const bytes = readFileSync(join(out, 'inference.onnx'));
      const x = Float32Array.from(rawImages(data).subarray(0, 50 * 784), (v) => (v / 255 - 0.1307) / 0.3081);
      const web = await browserRun(bytes, 'input', x, [50, 1, 28, 28]);
      const session = await ort.InferenceSession.create(bytes);
      const node = (await session.run({ input: new ort.Tensor('float32', x, [50, 1, 28, 28]) })).logits
        .data as Float32Array;
      await session.release();
      const labels = (v: ArrayLike<number>) =>
        Array.from({ length: 50 }, (_, i) => {
          const row = Array.from(v).slice(i * 10, i * 10 + 10);
          return row.indexOf(Math.max(...row));
        });
      expect(labels(web)).toEqual(labels(node));
    }
    // A resume needs the file again, and continues from the checkpoint with it.
    const again = runCli(['train', '--resume', out, '--data', data, '--max-steps', '8']);
    expect([again.code, again.stderr]).toEqual([
      2,
      expect.stringMatching(/a model imported from a file: give it again/),
    ]);
    const resumed = runCli(['train', '--resume', out, '--model', file, '--data', data, '--max-steps', '8']);
    expect([resumed.code, resumed.stderr]).toEqual([0, '']);
  });

  it('eval scores the PyTorch file itself given its normalisation, as onnxruntime does on normalised pixels', async () => {
    const bare = runCli(['eval', '--model-file', file, '--data', data]);
    expect([bare.code, bare.stderr]).toEqual([
      2,
      expect.stringMatching(/records no normalisation; give the mean and std/),
    ]);
    const r = runCli(['eval', '--model-file', file, '--data', data, '--mean', '0.1307', '--std', '0.3081', '--json']);
    const images = rawImages(data);
    const x = Float32Array.from(images, (v) => (v / 255 - 0.1307) / 0.3081);
    const session = await ort.InferenceSession.create(file);
    const logits = (await session.run({ input: new ort.Tensor('float32', x, [200, 1, 28, 28]) })).logits
      .data as Float32Array;
    await session.release();
    const labels = rawLabels(data);
    let correct = 0;
    for (let i = 0; i < 200; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
    }
    expect([r.code, JSON.parse(r.stdout).correct]).toEqual([0, correct]);
  });

  it('trains a model with BatchNorm in one session; the export carries the running statistics the run reached', () => {
    const dir = tempDir();
    const rows = (n: number, seed: number) =>
      Array.from({ length: n }, (_, i) =>
        [i % 4, ...Array.from({ length: 768 }, (_, p) => ((i % 4) * 60 + ((p * 7 + i * seed) % 50)) % 256)].join(','),
      ).join('\n');
    writeFileSync(join(dir, 'train.csv'), rows(64, 3));
    writeFileSync(join(dir, 'test.csv'), rows(16, 5));
    const out = join(tempDir(), 'run');
    const small = join(FIXTURES, 'smallnet.onnx');
    const args = [
      '--data',
      dir,
      '--image-shape',
      '3,16,16',
      '--batch-size',
      '16',
      '--max-steps',
      '4',
      '--threads',
      '2',
    ];
    const r = runCli(['train', '--model', small, ...args, '--out', out]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const [file, exported] = [parseModel(readFileSync(small)), parseModel(readFileSync(join(out, 'inference.onnx')))];
    const checkpoint = parseModel(readFileSync(join(out, 'checkpoint.onnx')));
    for (const name of ['bn1.running_mean', 'bn2.running_var']) {
      const moved = exported.initializers.get(name)?.data;
      expect(moved).toEqual(checkpoint.initializers.get(name)?.data);
      expect(moved).not.toEqual(file.initializers.get(name)?.data);
    }
    // Stopped after 2 steps and resumed to 4, the run's checkpoint is the same bytes: the statistics resume too.
    const halves = join(tempDir(), 'halves');
    const first = runCli([
      'train',
      '--model',
      small,
      ...args.slice(0, -4),
      '--max-steps',
      '2',
      '--threads',
      '2',
      '--out',
      halves,
    ]);
    expect([first.code, first.stderr]).toEqual([0, '']);
    const rest = runCli([
      'train',
      '--resume',
      halves,
      '--model',
      small,
      '--data',
      dir,
      '--image-shape',
      '3,16,16',
      '--max-steps',
      '4',
      '--threads',
      '2',
    ]);
    expect([rest.code, rest.stderr]).toEqual([0, '']);
    expect(readFileSync(join(halves, 'checkpoint.onnx')).equals(readFileSync(join(out, 'checkpoint.onnx')))).toBe(true);
  });

  it('trains a model with Dropout reproducibly: two runs, and a run stopped and resumed, write the same checkpoint', () => {
    const drop = join(FIXTURES, 'dropfc.onnx');
    const args = ['--model', drop, '--data', data, '--batch-size', '32', '--threads', '2'];
    const [a, b, c] = [join(tempDir(), 'a'), join(tempDir(), 'b'), join(tempDir(), 'c')];
    for (const out of [a, b]) expect(runCli(['train', ...args, '--max-steps', '6', '--out', out]).code).toBe(0);
    expect(runCli(['train', ...args, '--max-steps', '3', '--out', c]).code).toBe(0);
    const resumed = runCli(['train', '--resume', c, ...args, '--max-steps', '6']);
    expect([resumed.code, resumed.stderr]).toEqual([0, '']);
    const checkpoint = (dir: string) => readFileSync(join(dir, 'checkpoint.onnx'));
    expect(checkpoint(a).equals(checkpoint(b))).toBe(true);
    expect(checkpoint(c).equals(checkpoint(a))).toBe(true);
    // The masks moved the random state on by a step each (seed 0: high and low halves 0).
    const random = parseModel(checkpoint(a)).initializers.get('ingraph.random')?.data;
    expect(Array.from(random as Float32Array)).toEqual([0, 0, 6]);
  });

  it('inspect says what it can train in a file, or points an ingraph export at its network', () => {
    const r = runCli(['inspect', join(FIXTURES, 'smallnet_train.onnx')]);
    expect(r.stdout.trim().split('\n').pop()).toBe(
      'ingraph train --model FILE: can train it: 1,304 parameters in 13 tensors; 2 BatchNorm layers (running statistics)',
    );
    const json = JSON.parse(runCli(['inspect', join(FIXTURES, 'dropnet.onnx'), '--json']).stdout);
    expect(json.training).toEqual({ trainable: true, parameters: 0, tensors: 0, batchNorm: 0, dropout: true });
  });

  it.each<[string, (m: onnx.ModelProto) => void, RegExp]>([
    [
      'a name used before it is defined',
      (m) => void m.graph?.node?.unshift(m.graph.node.pop() as onnx.INodeProto),
      /node "\/fc\/Gemm" \(Gemm\) reads ".*", which nothing makes/,
    ],
    [
      'a cycle',
      (m) =>
        void ((m.graph?.node?.find((n) => n.opType === 'Conv') as onnx.INodeProto).input = ['logits', 'conv1.weight']),
      /expected one float32 image input|reads "logits", which nothing makes/,
    ],
    [
      'two image inputs',
      (m) => void m.graph?.input?.push({ ...m.graph.input[0], name: 'second' }),
      /expected one float32 image input \[N,C,H,W\], found "input" float32 \[N,1,28,28\], "second"/,
    ],
    [
      'an output that is not [N,K]',
      (m) => void m.graph?.output?.[0].type?.tensorType?.shape?.dim?.push({ dimValue: 1 }),
      /expected one output of logits \[N,K\], found "logits" \[N,10,1\]/,
    ],
    [
      'a Loop',
      (m) => void ((m.graph?.node?.[3] as onnx.INodeProto).opType = 'Loop'),
      /\(Loop\) is not an op ingraph can train/,
    ],
    [
      'an unknown domain',
      (m) => void ((m.graph?.node?.[3] as onnx.INodeProto).domain = 'com.example'),
      /\(com\.example\.Conv\) is not an op ingraph can train/,
    ],
    [
      'external data',
      (m) =>
        void ((m.graph?.initializer?.[0] as onnx.ITensorProto).dataLocation = onnx.TensorProto.DataLocation.EXTERNAL),
      /keeps its data in an external file/,
    ],
    [
      'a claimed 2 GB tensor',
      (m) => void ((m.graph?.initializer?.[0] as onnx.ITensorProto).dims = [2 ** 29, 1]),
      /tensor "conv1\.weight" holds 400 values for shape \[536870912,1\]/,
    ],
  ])('refuses %s in one line, exit 2, and writes nothing', (_, damage, message) => {
    const proto = onnx.ModelProto.decode(readFileSync(file));
    damage(proto);
    const odd = join(tempDir(), 'odd.onnx');
    writeFileSync(odd, onnx.ModelProto.encode(proto).finish());
    const out = join(tempDir(), 'run');
    const r = runCli(['train', '--model', odd, '--data', data, '--out', out]);
    expect([r.code, r.stderr.trim().split('\n').length]).toEqual([2, 1]);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a node it cannot train in one line naming it, and writes nothing', () => {
    const proto = onnx.ModelProto.decode(readFileSync(file));
    const node = proto.graph?.node?.find((n) => n.opType === 'Relu') as onnx.INodeProto;
    node.opType = 'HardSwish';
    const odd = join(tempDir(), 'odd.onnx');
    writeFileSync(odd, onnx.ModelProto.encode(proto).finish());
    const out = join(tempDir(), 'run');
    const r = runCli(['train', '--model', odd, '--data', data, '--out', out]);
    expect([r.code, r.stderr.trim().split('\n')]).toEqual([
      2,
      [
        expect.stringMatching(
          /odd\.onnx: node ".*Relu.*" \(HardSwish\) is not an op ingraph can train; the supported ops are in docs\/import\.md$/,
        ),
      ],
    ]);
    expect(existsSync(out)).toBe(false);
  });
});

describe('Dropout (dropnet.onnx: flatten, Dropout(0.3), a training-mode export)', () => {
  const graph = importGraph(parseModel(readFileSync(join(FIXTURES, 'dropnet.onnx'))), 'dropnet.onnx');

  /** The imported forward's output for ones [4, 1, 10, 10], and its random state after, from random state `state`. */
  async function dropped(state: number[], training = true): Promise<{ y: Float32Array; next: Float32Array }> {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['N', 1, 10, 10]);
    const random = g.input(RANDOM_STATE, 'float32', [3]);
    const f = new Forward(g, () => random, training);
    g.output(new ImportedModule(graph).forward(f, x), 'y');
    g.output(f.updates.get(RANDOM_STATE) ?? g.add(random, g.scalar(0)), 'next');
    const feeds = {
      x: new ort.Tensor('float32', new Float32Array(400).fill(1), [4, 1, 10, 10]),
      [RANDOM_STATE]: new ort.Tensor('float32', Float32Array.from(state), [3]),
    };
    const out = await runGraph(g, feeds);
    return { y: out.y.data as Float32Array, next: out.next.data as Float32Array };
  }

  it('drops about 30% in training, scales the rest by 1/0.7, and advances its step; passes through in evaluation', async () => {
    const { y, next } = await dropped([0, 7, 0]);
    const zeros = y.filter((v) => v === 0).length;
    expect(y.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6)).toBe(true);
    expect(Math.abs(zeros / 400 - 0.3)).toBeLessThan(3 * Math.sqrt((0.3 * 0.7) / 400)); // within 3 sigma
    expect(Array.from(next)).toEqual([0, 7, 1]);
    expect(Array.from((await dropped([0, 7, 0], false)).y)).toEqual(new Array<number>(400).fill(1));
  });

  it('draws the same mask from the same seed and step, another from another step or seed', async () => {
    const mask = async (state: number[]) => Array.from((await dropped(state)).y, (v) => (v === 0 ? 0 : 1)).join('');
    const first = await mask([0, 7, 0]);
    expect(await mask([0, 7, 0])).toBe(first);
    expect(await mask([0, 7, 1])).not.toBe(first);
    expect(await mask([1, 7, 0])).not.toBe(first);
  });
});
