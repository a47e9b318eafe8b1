/** Runs small graphs through onnxruntime-node and checks forward values and gradients against the float64 reference. */
import * as ort from 'onnxruntime-node';
import { appendGradients, GradientOptions } from '../../src/autodiff/gradients';
import { GraphBuilder } from '../../src/onnx/builder';
import { encodeModel } from '../../src/onnx/model';
import { Tensor } from '../../src/onnx/tensor';
import { T64, dot, finiteDiff } from './reference';

export interface Input {
  name: string;
  value: T64;
}

/** Rounds to float32, so the reference sees exactly the values the graph sees. */
export function f32(t: T64): T64 {
  return { data: t.data.map((v) => Math.fround(v)), shape: t.shape };
}

export async function runGraph(
  g: GraphBuilder,
  feeds: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.ReturnType> {
  const session = await ort.InferenceSession.create(encodeModel(g, { graphName: 'test' }), { intraOpNumThreads: 1 });
  const out = await session.run(feeds);
  await session.release();
  return out;
}

export interface GradCheckResult {
  y: Float32Array;
  grads: Float32Array[];
  fd: Float64Array[];
  /** Indices checked per input (all, or a sample for large inputs). */
  checked: number[][];
}

/**
 * Builds y = forward(inputs), the scalar L = sum(y * r) with a fixed random r, and appends dL/d(inputs).
 * Returns the graph's y and gradients, and finite differences of L computed through `reference`.
 */
export async function gradCheck(
  inputs: Input[],
  forward: (g: GraphBuilder, xs: Tensor[]) => Tensor,
  reference: (xs: T64[]) => T64,
  r: (n: number) => Float64Array,
  sample = Infinity,
  options: GradientOptions = {},
): Promise<GradCheckResult> {
  const values = inputs.map((i) => f32(i.value));
  const g = new GraphBuilder();
  const xs = inputs.map((i, k) => g.input(i.name, 'float32', values[k].shape));
  const y = forward(g, xs);
  const rv = r(y.shape.reduce<number>((a, b) => a * (b as number), 1)).map((v) => Math.fround(v));
  const loss = g.reduceSum(
    g.mul(y, g.constant(Float32Array.from(rv), y.shape as number[])),
    y.shape.map((_, i) => i),
    false,
  );
  const grads = appendGradients(g, loss, xs, options);
  g.output(y, 'y');
  xs.forEach((x) => g.output(grads.get(x.name) as Tensor, `grad_${x.name}`));
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach(
    (i, k) => (feeds[i.name] = new ort.Tensor('float32', Float32Array.from(values[k].data), values[k].shape)),
  );
  const out = await runGraph(g, feeds);

  const fd: Float64Array[] = [];
  const checked: number[][] = [];
  values.forEach((v, k) => {
    const idx =
      v.data.length <= sample
        ? [...v.data.keys()]
        : Array.from({ length: sample }, (_, i) => Math.floor((i * v.data.length) / sample));
    checked.push(idx);
    const f = (x: Float64Array) =>
      dot(reference(values.map((w, j) => (j === k ? { data: x, shape: w.shape } : w))), rv);
    const full = new Float64Array(v.data.length);
    // Finite differences only at the checked indices.
    const picked = finiteDiffAt(f, v.data, idx);
    idx.forEach((i, n) => (full[i] = picked[n]));
    fd.push(full);
  });
  return {
    y: out.y.data as Float32Array,
    grads: xs.map((x) => out[`grad_${x.name}`].data as Float32Array),
    fd,
    checked,
  };
}

function finiteDiffAt(f: (x: Float64Array) => number, x: Float64Array, idx: number[]): Float64Array {
  if (idx.length === x.length) return finiteDiff(f, x);
  const eps = 1e-6;
  const xp = Float64Array.from(x);
  return Float64Array.from(idx, (i) => {
    xp[i] = x[i] + eps;
    const up = f(xp);
    xp[i] = x[i] - eps;
    const down = f(xp);
    xp[i] = x[i];
    return (up - down) / (2 * eps);
  });
}

/** max |a - b| over `idx`, relative to max |b| over them. */
export function relErrAt(a: ArrayLike<number>, b: ArrayLike<number>, idx: number[]): number {
  let diff = 0;
  let scale = 0;
  for (const i of idx) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}
