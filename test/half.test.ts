/**
 * float16 export: the float32 → half rounding against onnxruntime's own Cast (an independent implementation), and a
 * half-precision inference model against the float32 one built from the same weights.
 */
import * as ort from 'onnxruntime-node';
import { buildInferenceModel } from '../src/plan';
import { resolveNetwork } from '../src/models';
import { initParams } from '../src/models/module';
import { GraphBuilder } from '../src/onnx/builder';
import { halfBits, toHalf } from '../src/onnx/half';
import { parseModel } from '../src/onnx/model';
import { runGraph } from './helpers/graph-check';
import { join } from 'path';
import { rawImages, mnistSlice, runCli, tempDir } from './helpers/cli';

it("rounds to the nearest half, ties to even, like onnxruntime's Cast: normals, subnormals, overflow, signs", async () => {
  const special = [
    0,
    -0,
    1,
    -1,
    1 / 3,
    65504,
    65519.99,
    65520,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    6e-8,
    2.98e-8,
    2.99e-8,
    5.96e-8,
    1e-5,
    6.1e-5,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    2048 + 1,
    2048 + 3,
    3.4e38,
    1e-40,
  ];
  let seed = 7;
  const random = Array.from({ length: 20000 }, (_, i) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed / 2 ** 32 - 0.5) * 2 ** ((i % 60) - 30);
  });
  const values = Float32Array.from([...special, ...random]);
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [values.length]);
  g.output(g.cast(x, 'float16'), 'y');
  const out = await runGraph(g, { x: new ort.Tensor('float32', values, [values.length]) });
  expect(Array.from(toHalf(values))).toEqual(Array.from(out.y.data as Uint16Array));
  expect(halfBits(NaN) & 0x7c00).toBe(0x7c00);
  expect(halfBits(NaN) & 0x3ff).not.toBe(0);
});

it('a float16 inference model: half the bytes, float32 outputs, the same labels as float32 within rounding', async () => {
  const params = initParams(resolveNetwork('residual').create().parameters(), 3);
  const float = buildInferenceModel('residual', params, {});
  const half = buildInferenceModel('residual', params, {}, 17, 'float16');
  expect(half.length).toBeLessThan(0.55 * float.length);
  const parsed = parseModel(half, 'half');
  expect(parsed.initializers.get('conv1.weight')?.dtype).toBe('float16');
  expect(parsed.outputs.map((o) => [o.name, o.dtype])).toEqual([
    ['logits', 'float32'],
    ['probabilities', 'float32'],
    ['label', 'int64'],
  ]);
  const n = 200;
  const images = new ort.Tensor('uint8', rawImages(mnistSlice(n, 0), 'train-images-idx3-ubyte'), [n, 1, 28, 28]);
  const run = async (bytes: Uint8Array) => (await ort.InferenceSession.create(bytes)).run({ images });
  const [a, b] = [await run(float), await run(half)];
  const [la, lb] = [a.logits.data as Float32Array, b.logits.data as Float32Array];
  const scale = Math.max(...Array.from(la, Math.abs));
  const err = Math.max(...Array.from(la, (v, i) => Math.abs(v - lb[i])));
  expect(err / scale).toBeLessThan(1e-2);
  expect(err / scale).toBeGreaterThan(0);
  const agree = Array.from(a.label.data as BigInt64Array).filter(
    (l, i) => l === (b.label.data as BigInt64Array)[i],
  ).length;
  expect(agree / n).toBeGreaterThan(0.97);
});

it('ingraph export --half writes it, says so, and inspect and eval read it', () => {
  const out = join(tempDir(), 'half.onnx');
  const r = runCli(['export', '--model', 'residual', '--half', '--out', out]);
  expect([r.code, r.stdout.trim()]).toEqual([
    0,
    `wrote ${out} (residual net, float16, initial weights (seed 0), opset 17)`,
  ]);
  const info = JSON.parse(runCli(['inspect', out, '--json']).stdout);
  expect(info.metadata['ingraph.precision']).toBe('float16');
  expect(info.totalParameters).toBe(
    resolveNetwork('residual')
      .create()
      .parameters()
      .reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0),
  );
  const e = runCli(['eval', '--model-file', out, '--data', mnistSlice(0, 100), '--json']);
  expect([e.code, JSON.parse(e.stdout).total]).toEqual([0, 100]);
});
