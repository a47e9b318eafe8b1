/**
 * Every gradient rule against float64 central finite differences of an independent reference forward (not our
 * graph), and every op's forward value against the same reference. L = sum(y * r) for a fixed random r.
 */
import { GraphBuilder } from '../src/onnx/builder';
import { Tensor } from '../src/onnx/tensor';
import { crossEntropy as ceGraph } from '../src/models/loss';
import { appendGradients, GradientOptions } from '../src/autodiff/gradients';
import * as ort from 'onnxruntime-node';
import * as R from './helpers/reference';
import { f32, gradCheck, relErrAt, runGraph } from './helpers/graph-check';

/** Gradients: float32 graph vs float64 finite differences, max error relative to the largest gradient. */
const GRAD_TOL = 1e-4;
/** Forward values: float32 graph vs float64 reference, relative to the largest output. */
const FWD_TOL = 1e-5;

const rnd = R.seeded(1234);
const rand = (shape: number[], scale = 1) => R.randomT(shape, rnd, scale);
const weights = (n: number) => Float64Array.from({ length: n }, () => 2 * rnd() - 1);

async function check(
  inputs: { name: string; value: R.T64 }[],
  forward: (g: GraphBuilder, xs: Tensor[]) => Tensor,
  reference: (xs: R.T64[]) => R.T64,
  sample = Infinity,
  options: GradientOptions = {},
): Promise<void> {
  const res = await gradCheck(inputs, forward, reference, weights, sample, options);
  const y = reference(inputs.map((i) => f32(i.value)));
  expect(res.y.length).toBe(y.data.length);
  expect(relErrAt(res.y, y.data, [...y.data.keys()])).toBeLessThan(FWD_TOL);
  res.grads.forEach((grad, k) => {
    const err = relErrAt(grad, res.fd[k], res.checked[k]);
    if (!(err < GRAD_TOL))
      throw new Error(`gradient of ${inputs[k].name}: relative error ${err} (tolerance ${GRAD_TOL})`);
  });
}

describe('gradient rules against finite differences', () => {
  it.each([
    ['3x3 pad 1', [2, 3, 5, 5], [4, 3, 3, 3], [1, 1, 1, 1], [1, 1]],
    ['5x5 pad 2', [2, 2, 6, 6], [3, 2, 5, 5], [2, 2, 2, 2], [1, 1]],
    ['5x5 no pad', [2, 1, 8, 8], [2, 1, 5, 5], [0, 0, 0, 0], [1, 1]],
    ['1x1', [2, 4, 3, 3], [5, 4, 1, 1], [0, 0, 0, 0], [1, 1]],
    ['1x1 narrowing (dX as a flipped Conv)', [2, 6, 3, 3], [2, 6, 1, 1], [0, 0, 0, 0], [1, 1]],
    ['3x3 no pad, narrowing (dX as a flipped Conv)', [2, 5, 6, 6], [2, 5, 3, 3], [0, 0, 0, 0], [1, 1]],
    ['3x3 asymmetric pads', [1, 2, 5, 6], [3, 2, 3, 3], [0, 1, 2, 1], [1, 1]],
    ['3x3 stride 2 pad 1, odd sizes', [1, 2, 7, 6], [3, 2, 3, 3], [1, 1, 1, 1], [2, 2]],
  ])('Conv %s: dX, dW, dB', async (_, xs, ws, pads, strides) => {
    for (const convWeightGradient of ['gather', 'conv'] as const) {
      await check(
        [
          { name: 'x', value: rand(xs) },
          { name: 'w', value: rand(ws, 0.5) },
          { name: 'b', value: rand([ws[0]]) },
        ],
        (g, [x, w, b]) => g.conv(x, w, b, { pads, strides }),
        ([x, w, b]) => R.conv2d(x, w, b, pads, strides),
        Infinity,
        { convWeightGradient },
      );
    }
  });

  it.each([
    ['grouped (2 groups of 2 channels)', [2, 4, 5, 5], [6, 2, 3, 3], [1, 1, 1, 1], [1, 1], 2, [1, 1]],
    ['depthwise 3x3 stride 2 pad 1', [2, 3, 7, 7], [3, 1, 3, 3], [1, 1, 1, 1], [2, 2], 3, [1, 1]],
    ['depthwise, 2 filters a channel, dilation 2', [1, 2, 8, 8], [4, 1, 3, 3], [2, 2, 2, 2], [1, 1], 2, [2, 2]],
    ['dilation 2, stride 2', [1, 2, 9, 9], [3, 2, 3, 3], [1, 1, 1, 1], [2, 2], 1, [2, 2]],
  ])('Conv %s: dX, dW, dB', async (_, xs, ws, pads, strides, group, dilations) => {
    await check(
      [
        { name: 'x', value: rand(xs) },
        { name: 'w', value: rand(ws, 0.5) },
        { name: 'b', value: rand([ws[0]]) },
      ],
      (g, [x, w, b]) => g.conv(x, w, b, { pads, strides, group, dilations }),
      ([x, w, b]) => R.conv2d(x, w, b, pads, strides, group, dilations),
    );
  });

  it.each(['unpool', 'scatter', 'masks'] as const)(
    'MaxPool 2x2 stride 2 and 3x3 stride 3 (windows that tile the input), by %s',
    async (maxPoolGradient) => {
      for (const k of [2, 3]) {
        await check(
          [{ name: 'x', value: rand([2, 3, 2 * k, 3 * k]) }],
          (g, [x]) => g.maxPool(x, { kernel: [k, k] }),
          ([x]) => R.maxPool(x, [k, k], [k, k]),
          Infinity,
          { maxPoolGradient },
        );
      }
    },
  );

  it('MaxPool 2x2 stride 2 built with its Indices output', async () => {
    await check(
      [{ name: 'x', value: rand([2, 3, 6, 6]) }],
      (g, [x]) => g.maxPoolWithIndices(x, { kernel: [2, 2] })[0],
      ([x]) => R.maxPool(x, [2, 2], [2, 2]),
    );
  });

  it('MaxPool 3x3 stride 2, overlapping windows', async () => {
    await check(
      [{ name: 'x', value: rand([1, 2, 7, 7]) }],
      (g, [x]) => g.maxPool(x, { kernel: [3, 3], strides: [2, 2] }),
      ([x]) => R.maxPool(x, [3, 3], [2, 2]),
    );
  });

  it.each(['unpool', 'scatter', 'masks'] as const)(
    'MaxPool ties by %s: the whole gradient goes to the first maximum of each window, as in PyTorch',
    async (maxPoolGradient) => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', ['N', 1, 2, 6]);
      const y = g.maxPool(x, { kernel: [2, 2] });
      const r = g.constant([3, 5, 11], [1, 1, 1, 3]);
      const loss = g.reduceSum(g.mul(y, r), [0, 1, 2, 3], false);
      g.output(appendGradients(g, loss, [x], { maxPoolGradient }).get('x') as Tensor, 'dx');
      // Window 1 is all 7s; window 2 has its max 9 twice (row 0 col 3, row 1 col 2); window 3 has it at its last place.
      // The second image: window 1 all -7s, window 2 its max -1 at the first and last places, window 3 at its first.
      const first = [7, 7, 1, 9, 0, 1, 7, 7, 9, 2, 2, 4];
      const second = [-7, -7, -1, -9, -0.5, -1, -7, -7, -9, -1, -2, -4];
      const out = await runGraph(g, {
        x: new ort.Tensor('float32', Float32Array.from([...first, ...second]), [2, 1, 2, 6]),
      });
      expect(Array.from(out.dx.data as Float32Array)).toEqual([
        3, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 11, 3, 0, 5, 0, 11, 0, 0, 0, 0, 0, 0, 0,
      ]);
    },
  );

  it.each([
    ['3x3 stride 1 pad 1 (the inception branch)', [2, 3, 5, 5], [3, 3], [1, 1], [1, 1, 1, 1]],
    ['2x2 stride 2', [1, 2, 6, 6], [2, 2], [2, 2], [0, 0, 0, 0]],
    ['3x3 stride 2 pad 1, odd size', [1, 2, 7, 7], [3, 3], [2, 2], [1, 1, 1, 1]],
  ])('AveragePool %s, count_include_pad', async (_, xs, k, s, p) => {
    await check(
      [{ name: 'x', value: rand(xs) }],
      (g, [x]) => g.averagePool(x, { kernel: k, strides: s, pads: p }),
      ([x]) => R.avgPool(x, k, s, p),
    );
  });

  it('Relu', async () => {
    await check(
      [{ name: 'x', value: rand([3, 7]) }],
      (g, [x]) => g.relu(x),
      ([x]) => R.relu(x),
    );
  });

  it('Add with broadcasting (bias over a batch)', async () => {
    await check(
      [
        { name: 'a', value: rand([4, 3]) },
        { name: 'b', value: rand([3]) },
      ],
      (g, [a, b]) => g.add(a, b),
      ([a, b]) => R.add(a, b),
    );
  });

  it('Concat on the channel axis', async () => {
    await check(
      [
        { name: 'a', value: rand([2, 1, 2, 2]) },
        { name: 'b', value: rand([2, 3, 2, 2]) },
        { name: 'c', value: rand([2, 2, 2, 2]) },
      ],
      (g, xs) => g.concat(xs, 1),
      (xs) => R.concat(xs, 1),
    );
  });

  it('Gemm with transB and bias (Linear)', async () => {
    await check(
      [
        { name: 'x', value: rand([3, 6]) },
        { name: 'w', value: rand([4, 6]) },
        { name: 'b', value: rand([4]) },
      ],
      (g, [x, w, b]) => g.gemm(x, w, b, { transB: true }),
      ([x, w, b]) => R.linear(x, w, b),
    );
  });

  it('Flatten', async () => {
    await check(
      [{ name: 'x', value: rand([2, 3, 2, 2]) }],
      (g, [x]) => g.flatten(x, 1),
      ([x]) => R.flatten(x),
    );
  });

  it('LogSoftmax', async () => {
    await check(
      [{ name: 'x', value: rand([3, 5], 3) }],
      (g, [x]) => g.logSoftmax(x, 1),
      ([x]) => R.logSoftmax(x),
    );
  });

  it('a tensor used twice: gradients are summed (relu(x) + x*x)', async () => {
    await check(
      [{ name: 'x', value: rand([2, 5]) }],
      (g, [x]) => g.add(g.relu(x), g.mul(x, x)),
      ([x]) => ({ data: x.data.map((v) => Math.max(v, 0) + v * v), shape: x.shape }),
    );
  });

  // The remaining rules, each against the same float64 finite differences; references are plain loops over the data.
  const map = (x: R.T64, f: (v: number) => number): R.T64 => ({ data: x.data.map(f), shape: x.shape });
  const zip = (a: R.T64, b: R.T64, f: (u: number, v: number) => number): R.T64 => ({
    data: a.data.map((u, i) => f(u, b.data[i % b.data.length])),
    shape: a.shape,
  });
  /** Index arithmetic for the layout references below. */
  const strides = (shape: number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const permute = (x: R.T64, perm: number[]): R.T64 => {
    const shape = perm.map((p) => x.shape[p]);
    const inS = strides(x.shape);
    const outS = strides(shape);
    const data = new Float64Array(x.data.length);
    for (let o = 0; o < data.length; o++) {
      let src = 0;
      perm.forEach((p, k) => (src += (Math.floor(o / outS[k]) % shape[k]) * inS[p]));
      data[o] = x.data[src];
    }
    return { data, shape };
  };
  const sliceAxis1 = (x: R.T64, from: number, to: number): R.T64 => {
    const [a, b, c] = x.shape;
    const out: number[] = [];
    for (let i = 0; i < a; i++)
      for (let j = from; j < to; j++) for (let k = 0; k < c; k++) out.push(x.data[(i * b + j) * c + k]);
    return R.t64(out, [a, to - from, c]);
  };
  const reduceAxis = (x: R.T64, axis: number, mean: boolean): R.T64 => {
    const shape = x.shape.map((d, i) => (i === axis ? 1 : d));
    const inS = strides(x.shape);
    const data = new Float64Array(x.data.length / x.shape[axis]);
    const outS = strides(shape);
    for (let i = 0; i < x.data.length; i++) {
      let o = 0;
      x.shape.forEach((d, k) => (o += k === axis ? 0 : (Math.floor(i / inS[k]) % d) * outS[k]));
      data[o] += x.data[i] / (mean ? x.shape[axis] : 1);
    }
    return { data, shape };
  };

  it.each<[string, number[][], (g: GraphBuilder, xs: Tensor[]) => Tensor, (xs: R.T64[]) => R.T64, number?]>([
    ['Sub with broadcasting', [[3, 4], [4]], (g, [a, b]) => g.sub(a, b), ([a, b]) => zip(a, b, (u, v) => u - v)],
    [
      'Div',
      [
        [3, 4],
        [3, 4],
      ],
      (g, [a, b]) => g.div(a, g.add(g.mul(b, b), g.scalar(0.5))),
      ([a, b]) => zip(a, b, (u, v) => u / (v * v + 0.5)),
    ],
    ['Pow with a constant exponent', [[2, 5]], (g, [x]) => g.pow(x, g.scalar(3)), ([x]) => map(x, (v) => v ** 3)],
    ['Neg', [[2, 5]], (g, [x]) => g.neg(x), ([x]) => map(x, (v) => -v)],
    ['Exp', [[2, 5]], (g, [x]) => g.exp(x), ([x]) => map(x, Math.exp)],
    [
      'Log',
      [[2, 5]],
      (g, [x]) => g.log(g.add(g.mul(x, x), g.scalar(0.5))),
      ([x]) => map(x, (v) => Math.log(v * v + 0.5)),
    ],
    [
      'ReduceMax over axis 1 (distinct values)',
      [[3, 4]],
      (g, [x]) => g.reduceMax(x, [1], false),
      ([x]) =>
        R.t64(
          [0, 1, 2].map((r) => Math.max(...x.data.slice(4 * r, 4 * r + 4))),
          [3],
        ),
    ],
    ['Sigmoid', [[3, 5]], (g, [x]) => g.sigmoid(x), ([x]) => map(x, (v) => 1 / (1 + Math.exp(-v)))],
    ['Tanh', [[3, 5]], (g, [x]) => g.tanh(x), ([x]) => map(x, Math.tanh)],
    ['LeakyRelu (alpha 0.1)', [[3, 5]], (g, [x]) => g.leakyRelu(x, 0.1), ([x]) => map(x, (v) => (v > 0 ? v : 0.1 * v))],
    [
      'Clip to [-0.3, 0.4] (ReLU6 is Clip(0, 6))',
      [[4, 5]],
      (g, [x]) => g.clip(x, -0.3, 0.4),
      ([x]) => map(x, (v) => Math.min(0.4, Math.max(-0.3, v))),
    ],
    ['Clip with only a max', [[4, 5]], (g, [x]) => g.clip(x, null, 0.2), ([x]) => map(x, (v) => Math.min(0.2, v))],
    [
      'Sqrt',
      [[2, 5]],
      (g, [x]) => g.sqrt(g.add(g.mul(x, x), g.scalar(0.5))),
      ([x]) => map(x, (v) => Math.sqrt(v * v + 0.5)),
    ],
    [
      'Where (condition from the data)',
      [
        [2, 5],
        [2, 5],
      ],
      (g, [a, b]) => g.where(g.greater(a, g.scalar(0.2)), a, b),
      ([a, b]) => zip(a, b, (u, v) => (u > 0.2 ? u : v)),
    ],
    ['Cast float to float', [[2, 3]], (g, [x]) => g.cast(x, 'float32'), ([x]) => x],
    [
      'Expand',
      [[3, 1]],
      (g, [x]) => g.expand(x, g.ints([2, 3, 4]), [2, 3, 4]),
      ([x]) =>
        R.t64(
          Array.from({ length: 24 }, (_, i) => x.data[Math.floor(i / 4) % 3]),
          [2, 3, 4],
        ),
    ],
    [
      'Reshape',
      [[2, 6]],
      (g, [x]) => g.mul(g.reshape(x, [3, 4]), g.constant([1, 2, 3, 4], [4])),
      ([x]) =>
        R.t64(
          Array.from(x.data, (v, i) => v * (1 + (i % 4))),
          [3, 4],
        ),
    ],
    [
      'Unsqueeze',
      [[2, 3]],
      (g, [x]) => g.mul(g.unsqueeze(x, [1]), g.constant([1, 2, 3], [3])),
      ([x]) =>
        R.t64(
          Array.from(x.data, (v, i) => v * (1 + (i % 3))),
          [2, 1, 3],
        ),
    ],
    ['Transpose', [[2, 3, 4]], (g, [x]) => g.transpose(x, [2, 0, 1]), ([x]) => permute(x, [2, 0, 1])],
    ['Split, one part unused', [[2, 5, 2]], (g, [x]) => g.split(x, 1, [2, 3])[1], ([x]) => sliceAxis1(x, 2, 5)],
    ['Slice', [[2, 6, 2]], (g, [x]) => g.slice(x, [1], [4], [1]), ([x]) => sliceAxis1(x, 1, 4)],
    [
      'Pad',
      [[1, 2, 3, 3]],
      (g, [x]) => g.pad(x, [0, 0, 1, 0, 0, 0, 2, 1]),
      ([x]) => {
        const out = new Float64Array(2 * 6 * 4);
        for (let c = 0; c < 2; c++)
          for (let h = 0; h < 3; h++)
            for (let w = 0; w < 3; w++) out[(c * 6 + h + 1) * 4 + w] = x.data[(c * 3 + h) * 3 + w];
        return { data: out, shape: [1, 2, 6, 4] };
      },
    ],
    ['ReduceSum over one axis', [[2, 3, 4]], (g, [x]) => g.reduceSum(x, [1], true), ([x]) => reduceAxis(x, 1, false)],
    ['ReduceMean over one axis', [[2, 3, 4]], (g, [x]) => g.reduceMean(x, [2], true), ([x]) => reduceAxis(x, 2, true)],
    ['Softmax', [[3, 5]], (g, [x]) => g.softmax(x, 1), ([x]) => map(R.logSoftmax(x), Math.exp)],
    [
      'MatMul, batched with a broadcast operand',
      [
        [2, 3, 4],
        [4, 5],
      ],
      (g, [a, b]) => g.matMul(a, b),
      ([a, b]) => {
        const out = new Float64Array(2 * 3 * 5);
        for (let n = 0; n < 2; n++)
          for (let i = 0; i < 3; i++)
            for (let j = 0; j < 5; j++)
              for (let k = 0; k < 4; k++) out[(n * 3 + i) * 5 + j] += a.data[(n * 3 + i) * 4 + k] * b.data[k * 5 + j];
        return { data: out, shape: [2, 3, 5] };
      },
    ],
  ])('%s', async (_, shapes, forward, reference) => {
    await check(
      shapes.map((shape, i) => ({ name: `x${i}`, value: rand(shape) })),
      forward,
      reference,
    );
  });

  it('mean cross-entropy (LogSoftmax, one-hot, ReduceSum, ReduceMean) equals torch.nn.CrossEntropyLoss and its gradient', async () => {
    const labels = [3, 0, 9, 3];
    const logits = f32(rand([4, 10], 2));
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['N', 10]);
    const l = g.input('labels', 'int64', ['N']);
    const { loss, correct } = ceGraph(g, x, l);
    const dx = appendGradients(g, loss, [x]).get('x') as Tensor;
    g.output(loss, 'loss');
    g.output(correct, 'correct');
    g.output(dx, 'dx');
    const out = await runGraph(g, {
      x: new ort.Tensor('float32', Float32Array.from(logits.data), [4, 10]),
      labels: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [4]),
    });
    const ref = R.crossEntropy(logits, labels);
    expect(Math.abs((out.loss.data as Float32Array)[0] - ref) / ref).toBeLessThan(FWD_TOL);
    const predicted = [0, 1, 2, 3].map((i) =>
      Array.from(logits.data.subarray(i * 10, i * 10 + 10)).reduce((b, v, k, a) => (v > a[b] ? k : b), 0),
    );
    expect((out.correct.data as Float32Array)[0]).toBe(predicted.filter((p, i) => p === labels[i]).length);
    const fd = R.finiteDiff((d) => R.crossEntropy({ data: d, shape: [4, 10] }, labels), logits.data);
    expect(relErrAt(out.dx.data as Float32Array, fd, [...fd.keys()])).toBeLessThan(GRAD_TOL);
  });

  it('a gradient through an op without a derivative is a build-time error naming the op and node', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [4, 3]);
    const picked = g.gather(x, g.constant([2, 0], [2], 'int64'), 0);
    const loss = g.reduceSum(picked, [0, 1], false);
    expect(() => appendGradients(g, loss, [x])).toThrow(
      /^gradients: Gather "Gather_0" is not differentiable \(only emitted by gradients; its own gradient is not implemented\) but lies between a parameter and the loss$/,
    );
  });

  it('a parameter that does not reach the loss is an error, not a silent zero', () => {
    const g = new GraphBuilder();
    const [a, b] = [g.input('a', 'float32', [2]), g.input('b', 'float32', [2])];
    expect(() => appendGradients(g, g.reduceSum(g.relu(a), [0], false), [a, b])).toThrow(
      'gradients: "b" does not affect the loss',
    );
  });
});
