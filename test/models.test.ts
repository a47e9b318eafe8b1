/** The seed's two networks: parameter names and counts, layer shapes, and values against the float64 reference. */
import * as ort from 'onnxruntime-node';
import { buildInferenceModel } from '../src/plan';
import { resolveNetwork } from '../src/models';
import { InceptionA, InceptionNet } from '../src/models/inception';
import { Forward, Module, ParamSpec, Params, countParams, initParams } from '../src/models/module';
import { ResidualBlock, ResidualNet } from '../src/models/residual';
import { GraphBuilder } from '../src/onnx/builder';
import { f32, gradCheck, relErrAt } from './helpers/graph-check';
import * as R from './helpers/reference';

const rnd = R.seeded(99);

function paramOf(params: Map<string, R.T64>, name: string): R.T64 {
  const p = params.get(name);
  if (!p) throw new Error(`no ${name}`);
  return p;
}

function residualBlockRef(x: R.T64, p: Map<string, R.T64>, prefix: string): R.T64 {
  const y1 = R.relu(
    R.conv2d(x, paramOf(p, `${prefix}conv1.weight`), paramOf(p, `${prefix}conv1.bias`), [1, 1, 1, 1], [1, 1]),
  );
  const y2 = R.conv2d(y1, paramOf(p, `${prefix}conv2.weight`), paramOf(p, `${prefix}conv2.bias`), [1, 1, 1, 1], [1, 1]);
  return R.relu({ data: x.data.map((v, i) => v + y2.data[i]), shape: x.shape });
}

function inceptionARef(x: R.T64, p: Map<string, R.T64>, prefix: string): R.T64 {
  const conv = (name: string, input: R.T64, pad: number) =>
    R.conv2d(
      input,
      paramOf(p, `${prefix}${name}.weight`),
      paramOf(p, `${prefix}${name}.bias`),
      [pad, pad, pad, pad],
      [1, 1],
    );
  const b1 = conv('branch1x1', x, 0);
  const b5 = conv('branch5x5_2', conv('branch5x5_1', x, 0), 2);
  const b3 = conv('branch3x3_3', conv('branch3x3_2', conv('branch3x3_1', x, 0), 1), 1);
  const bp = conv('branch_pool', R.avgPool(x, [3, 3], [1, 1], [1, 1, 1, 1]), 0);
  return R.concat([b1, b5, b3, bp], 1);
}

function netRef(model: 'inception' | 'residual', images: Uint8Array, n: number, p: Map<string, R.T64>): R.T64 {
  let x = R.t64(
    Array.from(images, (v) => (v / 255 - 0.1307) / 0.3081),
    [n, 1, 28, 28],
  );
  const conv = (name: string, input: R.T64) =>
    R.conv2d(input, paramOf(p, `${name}.weight`), paramOf(p, `${name}.bias`), [0, 0, 0, 0], [1, 1]);
  const block = model === 'inception' ? inceptionARef : residualBlockRef;
  const [b1, b2] = model === 'inception' ? ['incep1.', 'incep2.'] : ['rblock1.', 'rblock2.'];
  x = R.relu(R.maxPool(conv('conv1', x), [2, 2], [2, 2]));
  x = block(x, p, b1);
  x = R.relu(R.maxPool(conv('conv2', x), [2, 2], [2, 2]));
  x = block(x, p, b2);
  return R.linear(R.flatten(x), paramOf(p, 'fc.weight'), paramOf(p, 'fc.bias'));
}

function asT64(params: Params, specs: { name: string; shape: number[] }[]): Map<string, R.T64> {
  return new Map(specs.map((s) => [s.name, R.t64(params.get(s.name) as Float32Array, s.shape)]));
}

describe('parameters', () => {
  it('inception net: 97,298 parameters named by the seed state_dict keys', () => {
    const specs = resolveNetwork('inception').create().parameters();
    expect(countParams(specs)).toBe(97298);
    const names = specs.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'conv1.weight',
        'conv2.bias',
        'incep1.branch5x5_2.bias',
        'incep2.branch_pool.weight',
        'fc.weight',
        'fc.bias',
      ]),
    );
    expect(names).toHaveLength(4 + 2 * 7 * 2 + 2);
    expect(specs.find((s) => s.name === 'incep1.branch5x5_2.weight')?.shape).toEqual([24, 16, 5, 5]);
    expect(specs.find((s) => s.name === 'fc.weight')?.shape).toEqual([10, 1408]);
  });

  it('residual net: 41,514 parameters, blocks named rblockN.convM', () => {
    const specs = resolveNetwork('residual').create().parameters();
    expect(countParams(specs)).toBe(41514);
    expect(specs.map((s) => s.name)).toEqual([
      'conv1.weight',
      'conv1.bias',
      'conv2.weight',
      'conv2.bias',
      'rblock1.conv1.weight',
      'rblock1.conv1.bias',
      'rblock1.conv2.weight',
      'rblock1.conv2.bias',
      'rblock2.conv1.weight',
      'rblock2.conv1.bias',
      'rblock2.conv2.weight',
      'rblock2.conv2.bias',
      'fc.weight',
      'fc.bias',
    ]);
  });

  it('initialisation is PyTorch-like U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and seeded', () => {
    const specs = resolveNetwork('residual').create().parameters();
    const a = initParams(specs, 7);
    const b = initParams(specs, 7);
    const c = initParams(specs, 8);
    expect(a.get('conv2.weight')).toEqual(b.get('conv2.weight'));
    expect(a.get('conv2.weight')).not.toEqual(c.get('conv2.weight'));
    const w = a.get('conv2.weight') as Float32Array;
    const bound = 1 / Math.sqrt(16 * 25);
    expect(Math.max(...w)).toBeLessThanOrEqual(bound);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-bound);
    expect(Math.max(...w)).toBeGreaterThan(0.95 * bound); // spread over the whole range
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    expect(Math.abs(mean)).toBeLessThan(0.05 * bound);
  });
});

describe('layer shapes', () => {
  function stepper() {
    const g = new GraphBuilder();
    const bind = (spec: ParamSpec) => g.input(spec.name, 'float32', spec.shape);
    return { f: new Forward(g, bind), x: g.input('x', 'float32', ['N', 1, 28, 28]) };
  }

  // Both nets run conv1 -> pool/relu -> block1 -> conv2 -> pool/relu -> block2 -> fc, as in the seed's forward.
  it.each([
    [
      'inception',
      () => {
        const n = new InceptionNet().bindNames();
        return [n.conv1, n.incep1, n.conv2, n.incep2, n.fc] as const;
      },
      [
        [10, 24, 24],
        [88, 12, 12],
        [20, 8, 8],
        [88, 4, 4],
      ],
    ],
    [
      'residual',
      () => {
        const n = new ResidualNet().bindNames();
        return [n.conv1, n.rblock1, n.conv2, n.rblock2, n.fc] as const;
      },
      [
        [16, 24, 24],
        [16, 12, 12],
        [32, 8, 8],
        [32, 4, 4],
      ],
    ],
  ] as const)('%s net, layer by layer', (_, layers, shapes) => {
    const [conv1, block1, conv2, block2, fc] = layers();
    const { f, x: input } = stepper();
    let x = conv1.forward(f, input);
    expect(x.shape).toEqual(['N', ...shapes[0]]);
    x = block1.forward(f, f.relu(f.maxPool2d(x, 2)));
    expect(x.shape).toEqual(['N', ...shapes[1]]);
    x = conv2.forward(f, x);
    expect(x.shape).toEqual(['N', ...shapes[2]]);
    x = block2.forward(f, f.relu(f.maxPool2d(x, 2)));
    expect(x.shape).toEqual(['N', ...shapes[3]]);
    expect(fc.forward(f, f.flatten(x)).shape).toEqual(['N', 10]);
  });
});

describe('blocks against the float64 reference (forward values and sampled gradients)', () => {
  /** Forward values within 1e-5 and gradients of the input and every parameter (sampled) within 1e-4. */
  async function checkBlock(
    block: Module,
    prefix: string,
    inputShape: number[],
    reference: (x: R.T64, p: Map<string, R.T64>, prefix: string) => R.T64,
    sample: number,
  ) {
    const specs = block.parameters();
    const inputs = [
      { name: 'x', value: R.randomT(inputShape, rnd) },
      ...specs.map((s) => ({ name: s.name, value: R.randomT(s.shape, rnd, 0.3) })),
    ];
    const asParams = (xs: R.T64[]) => new Map(specs.map((s, i) => [s.name, xs[1 + i]]));
    const res = await gradCheck(
      inputs,
      (g, xs) => block.forward(new Forward(g, (s) => xs[1 + specs.findIndex((q) => q.name === s.name)], true), xs[0]),
      (xs) => reference(xs[0], asParams(xs), prefix),
      (n) => Float64Array.from({ length: n }, () => 2 * rnd() - 1),
      sample,
    );
    const values = inputs.map((i) => f32(i.value));
    const y = reference(values[0], asParams(values), prefix);
    expect(relErrAt(res.y, y.data, [...y.data.keys()])).toBeLessThan(1e-5);
    res.grads.forEach((g, k) =>
      expect([inputs[k].name, relErrAt(g, res.fd[k], res.checked[k]) < 1e-4]).toEqual([inputs[k].name, true]),
    );
    return y;
  }

  it('ResidualBlock(4)', async () => {
    await checkBlock(new ResidualBlock(4).bindNames('b.'), 'b.', [2, 4, 5, 5], residualBlockRef, 40);
  });

  it('InceptionA(3)', async () => {
    const y = await checkBlock(new InceptionA(3).bindNames('i.'), 'i.', [1, 3, 5, 5], inceptionARef, 12);
    expect(y.shape).toEqual([1, 88, 5, 5]);
  });
});

describe('exported inference model against the float64 reference of the whole net', () => {
  it.each(['residual', 'inception'] as const)('%s net: logits, probabilities and label for 2 images', async (model) => {
    const specs = resolveNetwork(model).create().parameters();
    const params = initParams(specs, 3);
    const session = await ort.InferenceSession.create(buildInferenceModel(model, params, {}), { intraOpNumThreads: 1 });
    const images = Uint8Array.from({ length: 2 * 784 }, () => Math.floor(256 * rnd()));
    const out = await session.run({ images: new ort.Tensor('uint8', images, [2, 1, 28, 28]) });
    const ref = netRef(model, images, 2, asT64(params, specs));
    expect(relErrAt(out.logits.data as Float32Array, ref.data, [...ref.data.keys()])).toBeLessThan(1e-5);
    const probs = out.probabilities.data as Float32Array;
    for (let i = 0; i < 2; i++) {
      const row = Array.from(ref.data.subarray(i * 10, i * 10 + 10));
      const mx = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - mx), 0);
      row.forEach((v, k) => expect(Math.abs(probs[i * 10 + k] - Math.exp(v - mx) / z)).toBeLessThan(1e-6));
      expect(Number((out.label.data as BigInt64Array)[i])).toBe(row.indexOf(mx));
    }
    await session.release();
  });
});
