/**
 * An independent float64 reference of the forward ops, written from their definitions (PyTorch semantics), used to
 * check forward values and, through central finite differences, every gradient rule. Tensors are flat
 * Float64Arrays with an explicit shape.
 */
export interface T64 {
  data: Float64Array;
  shape: number[];
}

export const t64 = (data: ArrayLike<number>, shape: number[]): T64 => ({ data: Float64Array.from(data), shape });
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** PyTorch's conv2d; `group` splits the channels (depthwise: one per channel), `dilation` spreads the kernel. */
export function conv2d(
  x: T64,
  w: T64,
  b: T64 | null,
  pad: number[],
  stride: number[],
  group = 1,
  dilation = [1, 1],
): T64 {
  const [n, c, h, wd] = x.shape;
  const [m, cw, kh, kw] = w.shape;
  if (c !== cw * group || m % group !== 0) throw new Error('reference conv2d: channel mismatch');
  const oh = Math.floor((h + pad[0] + pad[2] - dilation[0] * (kh - 1) - 1) / stride[0]) + 1;
  const ow = Math.floor((wd + pad[1] + pad[3] - dilation[1] * (kw - 1) - 1) / stride[1]) + 1;
  const y = new Float64Array(n * m * oh * ow);
  for (let in_ = 0; in_ < n; in_++)
    for (let im = 0; im < m; im++)
      for (let p = 0; p < oh; p++)
        for (let q = 0; q < ow; q++) {
          let s = b ? b.data[im] : 0;
          const first = Math.floor(im / (m / group)) * cw;
          for (let ic = 0; ic < cw; ic++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const r = p * stride[0] + i * dilation[0] - pad[0];
                const col = q * stride[1] + j * dilation[1] - pad[1];
                if (r < 0 || r >= h || col < 0 || col >= wd) continue;
                s += x.data[((in_ * c + first + ic) * h + r) * wd + col] * w.data[((im * cw + ic) * kh + i) * kw + j];
              }
          y[((in_ * m + im) * oh + p) * ow + q] = s;
        }
  return { data: y, shape: [n, m, oh, ow] };
}

function pool(x: T64, k: number[], stride: number[], pad: number[], reduce: (vals: number[]) => number): T64 {
  const [n, c, h, w] = x.shape;
  const oh = Math.floor((h + pad[0] + pad[2] - k[0]) / stride[0]) + 1;
  const ow = Math.floor((w + pad[1] + pad[3] - k[1]) / stride[1]) + 1;
  const y = new Float64Array(n * c * oh * ow);
  for (let nc = 0; nc < n * c; nc++)
    for (let p = 0; p < oh; p++)
      for (let q = 0; q < ow; q++) {
        const vals: number[] = [];
        for (let i = 0; i < k[0]; i++)
          for (let j = 0; j < k[1]; j++) {
            const r = p * stride[0] + i - pad[0];
            const col = q * stride[1] + j - pad[1];
            vals.push(r < 0 || r >= h || col < 0 || col >= w ? NaN : x.data[(nc * h + r) * w + col]);
          }
        y[(nc * oh + p) * ow + q] = reduce(vals);
      }
  return { data: y, shape: [n, c, oh, ow] };
}

export const maxPool = (x: T64, k: number[], stride: number[], pad = [0, 0, 0, 0]) =>
  pool(x, k, stride, pad, (v) => Math.max(...v.filter((a) => !Number.isNaN(a))));

/** PyTorch's avg_pool2d with count_include_pad=True: padding counts as zeros in the divisor. */
export const avgPool = (x: T64, k: number[], stride: number[], pad: number[]) =>
  pool(x, k, stride, pad, (v) => v.reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0) / (k[0] * k[1]));

export const relu = (x: T64): T64 => ({ data: x.data.map((v) => Math.max(v, 0)), shape: x.shape });

export function add(a: T64, b: T64): T64 {
  // b broadcasts over a's leading axes or is the same shape
  const nb = b.data.length;
  return { data: a.data.map((v, i) => v + b.data[i % nb]), shape: a.shape };
}

export function concat(xs: T64[], axis: number): T64 {
  const outer = size(xs[0].shape.slice(0, axis));
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const inner = size(x.shape.slice(axis));
      for (let i = 0; i < inner; i++) out.push(x.data[o * inner + i]);
    }
  }
  return t64(out, shape);
}

/** y = x W^T + b (torch.nn.Linear). */
export function linear(x: T64, w: T64, b: T64): T64 {
  const [n, k] = x.shape;
  const [m] = w.shape;
  const y = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = b.data[j];
      for (let q = 0; q < k; q++) s += x.data[i * k + q] * w.data[j * k + q];
      y[i * m + j] = s;
    }
  return { data: y, shape: [n, m] };
}

export function flatten(x: T64): T64 {
  return { data: x.data, shape: [x.shape[0], size(x.shape.slice(1))] };
}

export function logSoftmax(x: T64): T64 {
  const [n, k] = x.shape;
  const y = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = x.data.subarray(i * k, (i + 1) * k);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
    for (let j = 0; j < k; j++) y[i * k + j] = row[j] - lse;
  }
  return { data: y, shape: x.shape };
}

/** torch.nn.CrossEntropyLoss (mean). */
export function crossEntropy(logits: T64, labels: number[], smoothing = 0): number {
  const lp = logSoftmax(logits);
  const k = logits.shape[1];
  const all = (i: number) => lp.data.subarray(i * k, (i + 1) * k).reduce((s, v) => s + v, 0);
  return (
    -labels.reduce((s, l, i) => s + (1 - smoothing) * lp.data[i * k + l] + (smoothing / k) * all(i), 0) / labels.length
  );
}

/** sum(f(x) * r): a scalar whose gradient with respect to f's output is r. */
export function dot(y: T64, r: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.data.length; i++) s += y.data[i] * r[i];
  return s;
}

/** Central finite differences of scalar f at x, in float64. */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  const xp = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    xp[i] = x[i] + eps;
    const up = f(xp);
    xp[i] = x[i] - eps;
    const down = f(xp);
    xp[i] = x[i];
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** A seeded generator for test data (mulberry32), independent of the code under test. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomT(shape: number[], rnd: () => number, scale = 1): T64 {
  return { data: Float64Array.from({ length: size(shape) }, () => (2 * rnd() - 1) * scale), shape };
}
