/**
 * One gradient rule per primitive op, in one typed table: a rule takes the gradients of the node's outputs and
 * returns one entry per input (null where that input needs none). The table is keyed by OpType, so an op without an
 * entry is a compile error; ops that have no derivative say so, with the reason.
 */
import { GraphBuilder, Node, OpType } from '../onnx/builder';
import { Tensor, formatShape, isStatic, sameShape } from '../onnx/tensor';

/** Choices between equivalent gradient formulations: which is fastest depends on the execution provider. */
export interface GradientOptions {
  /**
   * Weight gradients of stride-1 convs: `gather` (default) builds the shifted inputs with one Gather and contracts
   * them with one MatMul, the faster on onnxruntime's CPU provider; `conv` computes each as one Conv whose batch is
   * the input channels and whose channels are the images, the shape cuDNN's weight-gradient kernels take.
   */
  convWeightGradient?: 'gather' | 'conv';
  /**
   * Gradients of max pools whose windows tile the input (kernel = stride, no padding): `unpool` (default) finds each
   * window's first maximum by comparing the input's phases with the pooled output and writes the gradients there
   * with MaxUnpool, about twice as fast on onnxruntime's CPU provider as `scatter`, which recomputes the pool with
   * its Indices output and routes the gradients with ScatterElements; MaxUnpool has no CUDA kernel, so CUDA graphs
   * take `scatter`. `masks` builds the same first-maximum routing from Reshape, Transpose, Equal, MatMul and Mul
   * alone (no MaxUnpool, SpaceToDepth or Indices output), for WebGPU. Other max pools always take `scatter`.
   */
  maxPoolGradient?: 'scatter' | 'unpool' | 'masks';
  /**
   * Log-softmax of the loss composed of ReduceMax, Sub, Exp, ReduceSum and Log, for providers without a LogSoftmax
   * kernel (WebGPU's); default: the LogSoftmax op.
   */
  composedLogSoftmax?: boolean;
}

export interface GradContext {
  readonly g: GraphBuilder;
  readonly options: GradientOptions;
  readonly node: Node;
  /** Gradient of each output, null where none flows back. */
  readonly dy: readonly (Tensor | null)[];
  /** Which inputs need a gradient; a rule may skip work for the others. */
  readonly needs: readonly boolean[];
}

export type GradRule = (c: GradContext) => (Tensor | null)[];

/** An op through which no gradient can pass, and why. */
export interface NotDifferentiable {
  readonly notDifferentiable: string;
}

const nd = (why: string): NotDifferentiable => ({ notDifferentiable: why });

const input = (c: GradContext, i: number): Tensor => c.node.inputs[i] as Tensor;
const output = (c: GradContext, i = 0): Tensor => c.node.outputs[i];
/** The gradient of the first output, which single-output rules may assume flows (the engine only calls with one). */
const dy0 = (c: GradContext): Tensor => c.dy[0] as Tensor;
const ifNeeded = (c: GradContext, i: number, make: () => Tensor): Tensor | null => (c.needs[i] ? make() : null);

function ints(a: { kind: string; value?: unknown } | undefined, fallback: readonly number[]): readonly number[] {
  return a && a.kind === 'ints' ? (a.value as number[]) : fallback;
}

function intAttr(n: Node, key: string, fallback: number): number {
  const a = n.attrs[key];
  return a && a.kind === 'int' ? a.value : fallback;
}

/** Sums `dy` over the axes along which `target` was broadcast, giving `target`'s shape. */
export function unbroadcast(g: GraphBuilder, dy: Tensor, target: Tensor): Tensor {
  if (sameShape(dy.shape, target.shape)) return dy;
  const lead = dy.shape.length - target.shape.length;
  const axes: number[] = [];
  dy.shape.forEach((d, i) => {
    if (i < lead || (target.shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const summed = axes.length ? g.reduceSum(dy, axes, true) : dy;
  if (sameShape(summed.shape, target.shape)) return summed;
  return isStatic(target.shape) ? g.reshape(summed, target.shape) : g.reshapeLike(summed, target);
}

/** Zeros shaped like `t`, for an output whose gradient does not flow. */
function zerosLike(g: GraphBuilder, t: Tensor): Tensor {
  return g.constantOfShape(g.shapeOf(t), t.shape, 0);
}

/** Output padding that makes a transposed conv give back exactly `size` (strides can leave a remainder). */
function outputPadding(size: number, out: number, k: number, p0: number, p1: number, s: number, d: number): number {
  return size - (s * (out - 1) + (k - 1) * d + 1 - p0 - p1);
}

/** Whether a pool's square windows tile `x` exactly: kernel = stride, no padding, static C, H, W divisible by it. */
function tilesInput(
  x: Tensor,
  kernel: readonly number[],
  strides: readonly number[],
  pads: readonly number[],
): boolean {
  const [k, s] = [kernel[0], strides[0]];
  const [c, h, w] = x.shape.slice(1);
  return (
    kernel[1] === k &&
    strides[1] === s &&
    k === s &&
    pads.every((p) => p === 0) &&
    [c, h, w].every((d) => typeof d === 'number') &&
    (h as number) % k === 0 &&
    (w as number) % k === 0
  );
}

/**
 * dX of a max pool of k×k windows that tile x. Phase (a, b) of x, x[:, :, k·i + a, k·j + b], has the pooled output's
 * shape; the first phase in row-major window order that equals the output is the window's first maximum (PyTorch's
 * tie rule). Its flat N·C·H·W index, the window's corner plus a·W + b, is where MaxUnpool writes the gradient.
 */
function maxPoolGradByPhases(g: GraphBuilder, x: Tensor, y: Tensor, dy: Tensor, k: number): Tensor {
  const [c, h, w] = x.shape.slice(1) as number[];
  const [ph, pw] = [h / k, w / k];
  const phases = g.split(g.spaceToDepth(x, k), 1, Array<number>(k * k).fill(c));
  const offsetOf = (p: number) => g.constant([Math.floor(p / k) * w + (p % k)], [], 'int64');
  let offset = offsetOf(k * k - 1);
  for (let p = k * k - 2; p >= 0; p--) offset = g.where(g.equal(phases[p], y), offsetOf(p), offset);
  const corners = new BigInt64Array(c * ph * pw);
  for (let ch = 0, i = 0; ch < c; ch++)
    for (let r = 0; r < ph; r++) for (let q = 0; q < pw; q++) corners[i++] = BigInt(ch * h * w + k * r * w + k * q);
  const plane = c * h * w;
  const imageStarts = g.range(g.constant([0], [], 'int64'), g.size(x), g.constant([plane], [], 'int64'), x.shape[0]);
  const corner = g.add(g.reshape(imageStarts, [-1, 1, 1, 1]), g.constant(corners, [1, c, ph, pw], 'int64'));
  return g.maxUnpool(dy, g.add(corner, offset), g.shapeOf(x), x, { kernel: [k, k], strides: [k, k] });
}

/**
 * The gradient of a k x k, stride-k max pool by masks: the input's windows laid out along a last axis of k·k
 * ([N,C,H/k,W/k,k·k], by Reshape and Transpose), each window's first maximum found by comparing with the pooled
 * output and cancelling later equal ones (an exclusive running sum as a MatMul with a constant triangle), the
 * gradient multiplied in and laid back out. The same routing as maxPoolGradByPhases, in ops WebGPU implements.
 */
function maxPoolGradByMasks(g: GraphBuilder, x: Tensor, y: Tensor, dy: Tensor, k: number): Tensor {
  const [c, h, w] = x.shape.slice(1) as number[];
  const [ph, pw, kk] = [h / k, w / k, k * k];
  const windows = g.reshape(g.transpose(g.reshape(x, [-1, c, ph, k, pw, k]), [0, 1, 2, 4, 3, 5]), [-1, c, ph, pw, kk]);
  const equal = g.cast(g.equal(windows, g.unsqueeze(y, [4])), 'float32');
  // earlier[j] = sum over i < j of equal[i]: a window's later maxima are not its first.
  const triangle = Float32Array.from({ length: kk * kk }, (_, t) => (Math.floor(t / kk) < t % kk ? 1 : 0));
  const earlier = g.matMul(equal, g.constant(triangle, [kk, kk]));
  const first = g.where(g.greater(earlier, g.scalar(0.5)), g.scalar(0), equal);
  const routed = g.mul(first, g.unsqueeze(dy, [4]));
  return g.reshape(g.transpose(g.reshape(routed, [-1, c, ph, pw, k, k]), [0, 1, 2, 4, 3, 5]), [-1, c, h, w]);
}

/**
 * dW of a Conv as one GEMM: dW^T [C·kh·kw, Co] = X_cols [C·kh·kw, OH·OW·N] · dY [OH·OW·N, Co]. X is laid out
 * channel-major ([C, H·W, N], a 2-D transpose of [N, C·H·W]) so that one Gather of N-long runs builds X_cols, the big
 * operand, already in the layout onnxruntime's GEMM streams without packing; dY, the small one, is packed once.
 * On this project's CPU it ran 1.15-1.4x faster than kh·kw batched GEMMs over a spatial-major layout.
 */
function convWeightGrad(g: GraphBuilder, x: Tensor, w: Tensor, dy: Tensor, n: Node): Tensor {
  const group = intAttr(n, 'group', 1);
  const pads = ints(n.attrs.pads, [0, 0, 0, 0]);
  const strides = ints(n.attrs.strides, [1, 1]);
  const dil = ints(n.attrs.dilations, [1, 1]);
  const [co, ci, kh, kw] = w.shape as number[];
  const [, , oh, ow] = dy.shape as number[];
  const padded = pads.some((p) => p !== 0) ? g.pad(x, [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]) : x;
  const [, , hp, wp] = padded.shape as number[];
  // Both layouts are 2-D transposes of reshaped views: onnxruntime's CPU Transpose is 2-3x faster on those than on
  // the equivalent 3-D and 4-D permutations.
  const channelMajor = g.reshape(g.transpose(g.flatten(padded, 1), [1, 0]), [ci * group, hp * wp, -1]);
  const dyRows = g.reshape(g.transpose(g.reshape(dy, [-1, oh * ow]), [1, 0]), [-1, co]);
  let cols = channelMajor;
  if (!(kh === 1 && kw === 1 && hp === oh && wp === ow)) {
    const index: number[] = [];
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++)
        for (let p = 0; p < oh; p++)
          for (let q = 0; q < ow; q++) index.push((p * strides[0] + i * dil[0]) * wp + q * strides[1] + j * dil[1]);
    cols = g.gather(channelMajor, g.constant(index, [kh * kw, oh * ow], 'int64'), 1);
  }
  if (group === 1) {
    const dwT = g.matMul(g.reshape(cols, [ci * kh * kw, -1]), dyRows);
    return g.reshape(g.transpose(dwT, [1, 0]), [co, ci, kh, kw]);
  }
  // Grouped (depthwise when ci = 1): one contraction per group, as a MatMul batched over the groups. `ci` is W's
  // channels per group here, the input's are ci·group.
  const colsByGroup = g.reshape(cols, [group, ci * kh * kw, -1]);
  const dyByGroup = g.transpose(g.reshape(dyRows, [-1, group, co / group]), [1, 0, 2]);
  const dwT = g.matMul(colsByGroup, dyByGroup);
  return g.reshape(g.transpose(dwT, [0, 2, 1]), [co, ci, kh, kw]);
}

/**
 * dW of a stride-1 conv as one Conv: dW[o,c,i,j] = sum over n, p, q of X[n,c,p+i,q+j]·dY[n,o,p,q], a correlation of
 * X^T [C,N,H,W] (images as channels) with dY^T [Co,N,OH,OW] as the kernel, giving [C,Co,kh,kw]; pads as the conv's.
 */
function convWeightGradAsConv(g: GraphBuilder, x: Tensor, dy: Tensor, pads: readonly number[]): Tensor {
  const xT = g.transpose(x, [1, 0, 2, 3]);
  const dyT = g.transpose(dy, [1, 0, 2, 3]);
  return g.transpose(g.conv(xT, dyT, null, { pads }), [1, 0, 2, 3]);
}

/**
 * dX of a stride-1 conv as a plain Conv of dY with the kernel flipped and its channel axes swapped (a "full"
 * correlation; needs pads below the kernel size). Measured on this machine's CPU at the seed's shapes: 1.3-2x faster than ConvTranspose for padded
 * convs and 15% for an unpadded one that narrows channels (88 -> 20); ConvTranspose stays for unpadded convs that
 * widen them (16 -> 32), where it measured 1.5x faster.
 */
function convInputGradAsConv(g: GraphBuilder, w: Tensor, dy: Tensor, pads: readonly number[]): Tensor {
  const [co, ci, kh, kw] = w.shape as number[];
  const reversed = Array.from({ length: kh * kw }, (_, i) => kh * kw - 1 - i);
  const swapped = g.reshape(g.transpose(w, [1, 0, 2, 3]), [ci, co, kh * kw]);
  const flipped = g.reshape(g.gather(swapped, g.constant(reversed, [kh * kw], 'int64'), 2), [ci, co, kh, kw]);
  const full = [kh - 1 - pads[0], kw - 1 - pads[1], kh - 1 - pads[2], kw - 1 - pads[3]];
  return g.conv(dy, flipped, null, { pads: full });
}

export const RULES: Record<OpType, GradRule | NotDifferentiable> = {
  Add: (c) => [
    ifNeeded(c, 0, () => unbroadcast(c.g, dy0(c), input(c, 0))),
    ifNeeded(c, 1, () => unbroadcast(c.g, dy0(c), input(c, 1))),
  ],
  Sub: (c) => [
    ifNeeded(c, 0, () => unbroadcast(c.g, dy0(c), input(c, 0))),
    ifNeeded(c, 1, () => unbroadcast(c.g, c.g.neg(dy0(c)), input(c, 1))),
  ],
  Mul: (c) => [
    ifNeeded(c, 0, () => unbroadcast(c.g, c.g.mul(dy0(c), input(c, 1)), input(c, 0))),
    ifNeeded(c, 1, () => unbroadcast(c.g, c.g.mul(dy0(c), input(c, 0)), input(c, 1))),
  ],
  Div: (c) => [
    ifNeeded(c, 0, () => unbroadcast(c.g, c.g.div(dy0(c), input(c, 1)), input(c, 0))),
    // d(a/b)/db = -(a/b)/b
    ifNeeded(c, 1, () => unbroadcast(c.g, c.g.neg(c.g.div(c.g.mul(dy0(c), output(c)), input(c, 1))), input(c, 1))),
  ],
  Pow: (c) => {
    if (c.needs[1])
      throw new RangeError(`Pow gradient: node "${c.node.name}": the exponent's gradient is not implemented`);
    const [a, b] = [input(c, 0), input(c, 1)];
    const bMinus1 = c.g.sub(b, c.g.scalar(1));
    return [unbroadcast(c.g, c.g.mul(c.g.mul(dy0(c), b), c.g.pow(a, bMinus1)), a), null];
  },
  Neg: (c) => [c.g.neg(dy0(c))],
  Identity: (c) => [dy0(c)],
  Exp: (c) => [c.g.mul(dy0(c), output(c))],
  Log: (c) => [c.g.div(dy0(c), input(c, 0))],
  Sqrt: (c) => [c.g.div(dy0(c), c.g.mul(c.g.scalar(2), output(c)))],
  Relu: (c) => [c.g.where(c.g.greater(output(c), c.g.scalar(0)), dy0(c), c.g.scalar(0))],
  LeakyRelu: (c) => {
    const alpha = c.node.attrs.alpha?.kind === 'float' ? c.node.attrs.alpha.value : 0.01;
    return [c.g.where(c.g.greater(input(c, 0), c.g.scalar(0)), dy0(c), c.g.mul(dy0(c), c.g.scalar(alpha)))];
  },
  Sigmoid: (c) => [c.g.mul(dy0(c), c.g.mul(output(c), c.g.sub(c.g.scalar(1), output(c))))],
  Tanh: (c) => [c.g.mul(dy0(c), c.g.sub(c.g.scalar(1), c.g.mul(output(c), output(c))))],
  // Strictly inside the bounds, as PyTorch's hardtanh (F.relu6) passes gradients.
  Clip: (c) => {
    const [x, min, max] = [input(c, 0), c.node.inputs[1], c.node.inputs[2]];
    let dx = dy0(c);
    if (max) dx = c.g.where(c.g.greater(max, x), dx, c.g.scalar(0));
    if (min) dx = c.g.where(c.g.greater(x, min), dx, c.g.scalar(0));
    return [dx, ...c.node.inputs.slice(1).map(() => null)];
  },
  Where: (c) => {
    const [cond, x, y] = [input(c, 0), input(c, 1), input(c, 2)];
    const zero = c.g.scalar(0);
    return [
      null,
      ifNeeded(c, 1, () => unbroadcast(c.g, c.g.where(cond, dy0(c), zero), x)),
      ifNeeded(c, 2, () => unbroadcast(c.g, c.g.where(cond, zero, dy0(c)), y)),
    ];
  },
  Cast: (c) => {
    if (input(c, 0).dtype !== 'float32')
      throw new TypeError(
        `Cast gradient: node "${c.node.name}" casts from ${input(c, 0).dtype}, which has no gradient`,
      );
    return [c.g.cast(dy0(c), 'float32')];
  },
  Expand: (c) => [unbroadcast(c.g, dy0(c), input(c, 0)), null],

  Reshape: (c) => [c.g.reshapeLike(dy0(c), input(c, 0)), null],
  Flatten: (c) => [c.g.reshapeLike(dy0(c), input(c, 0))],
  Unsqueeze: (c) => [c.g.reshapeLike(dy0(c), input(c, 0)), null],
  Transpose: (c) => {
    const perm = ints(c.node.attrs.perm, []);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [c.g.transpose(dy0(c), inverse)];
  },
  Concat: (c) => {
    const axis = intAttr(c.node, 'axis', 0);
    const sizes = c.node.inputs.map((t) => (t as Tensor).shape[axis] as number);
    return c.g.split(dy0(c), axis, sizes);
  },
  Split: (c) => {
    const axis = intAttr(c.node, 'axis', 0);
    const parts = c.node.outputs.map((o, i) => c.dy[i] ?? zerosLike(c.g, o));
    return [c.g.concat(parts, axis), null];
  },
  Slice: (c) => {
    const x = input(c, 0);
    const dy = dy0(c);
    // Pad back with zeros where the slice cut; starts/ends are the constants the builder recorded in its shapes.
    if (c.node.inputs.length > 4)
      throw new RangeError(`Slice gradient: node "${c.node.name}" has steps; only unit steps are implemented`);
    const r = x.shape.length;
    const pads = new Array<number>(2 * r).fill(0);
    const starts = sliceConst(c, 1);
    const axes = sliceConst(c, 3);
    axes.forEach((a, i) => {
      pads[a] = Math.max(starts[i], 0);
      pads[a + r] = (x.shape[a] as number) - pads[a] - (dy.shape[a] as number);
    });
    return [c.g.pad(dy, pads), null, null, null];
  },
  Pad: (c) => {
    const x = input(c, 0);
    const pads = sliceConst(c, 1);
    const r = x.shape.length;
    const axes = x.shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[i + r] !== 0);
    return [
      c.g.slice(
        dy0(c),
        axes.map((a) => pads[a]),
        axes.map((a) => pads[a] + (x.shape[a] as number)),
        axes,
      ),
      null,
    ];
  },

  ReduceSum: (c) => [expandReduced(c, reduceAxes(c, sliceConst(c, 1))), null],
  ReduceMean: (c) => {
    const x = input(c, 0);
    const spread = expandReduced(c, reduceAxes(c, ints(c.node.attrs.axes, [])));
    // Divide by the number of elements averaged, at run time: the batch dimension is symbolic.
    const count = c.g.div(c.g.cast(c.g.size(x), 'float32'), c.g.cast(c.g.size(output(c)), 'float32'));
    return [c.g.div(spread, count)];
  },
  // Each maximum takes the gradient (tied maxima each take it in full): right where maxima are unique, and where a
  // max only shifts a log-sum-exp (composed log-softmax), whose result does not depend on it.
  ReduceMax: (c) => {
    const x = input(c, 0);
    const axes = reduceAxes(c, ints(c.node.attrs.axes, []));
    const y = intAttr(c.node, 'keepdims', 1) === 0 ? c.g.unsqueeze(output(c), axes) : output(c);
    return [c.g.where(c.g.equal(x, y), expandReduced(c, axes), c.g.scalar(0))];
  },
  LogSoftmax: (c) => {
    const axis = intAttr(c.node, 'axis', -1);
    const dy = dy0(c);
    return [c.g.sub(dy, c.g.mul(c.g.exp(output(c)), c.g.reduceSum(dy, [axis], true)))];
  },
  Softmax: (c) => {
    const axis = intAttr(c.node, 'axis', -1);
    const y = output(c);
    const dy = dy0(c);
    return [c.g.mul(y, c.g.sub(dy, c.g.reduceSum(c.g.mul(dy, y), [axis], true)))];
  },

  Gemm: (c) => {
    const [a, b] = [input(c, 0), input(c, 1)];
    const tA = intAttr(c.node, 'transA', 0) === 1;
    const tB = intAttr(c.node, 'transB', 0) === 1;
    const fa = c.node.attrs.alpha;
    const fb = c.node.attrs.beta;
    const alpha = fa && fa.kind === 'float' ? fa.value : 1;
    const beta = fb && fb.kind === 'float' ? fb.value : 1;
    const dy = dy0(c);
    const opt = (transA: boolean, transB: boolean) => (alpha === 1 ? { transA, transB } : { transA, transB, alpha });
    return [
      ifNeeded(c, 0, () => (tA ? c.g.gemm(b, dy, null, opt(tB, true)) : c.g.gemm(dy, b, null, opt(false, !tB)))),
      ifNeeded(c, 1, () => (tB ? c.g.gemm(dy, a, null, opt(true, tA)) : c.g.gemm(a, dy, null, opt(!tA, false)))),
      ...(c.node.inputs.length > 2
        ? [
            ifNeeded(c, 2, () => {
              const dc = unbroadcast(c.g, dy, input(c, 2));
              return beta === 1 ? dc : c.g.mul(dc, c.g.scalar(beta));
            }),
          ]
        : []),
    ];
  },
  MatMul: (c) => {
    const [a, b] = [input(c, 0), input(c, 1)];
    const dy = dy0(c);
    const swapLast = (t: Tensor) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return c.g.transpose(t, perm);
    };
    return [
      ifNeeded(c, 0, () => unbroadcast(c.g, c.g.matMul(dy, swapLast(b)), a)),
      ifNeeded(c, 1, () => unbroadcast(c.g, c.g.matMul(swapLast(a), dy), b)),
    ];
  },

  Conv: (c) => {
    const [x, w] = [input(c, 0), input(c, 1)];
    const n = c.node;
    const dy = dy0(c);
    const pads = ints(n.attrs.pads, [0, 0, 0, 0]);
    const strides = ints(n.attrs.strides, [1, 1]);
    const dilations = ints(n.attrs.dilations, [1, 1]);
    const group = intAttr(n, 'group', 1);
    const dx = ifNeeded(c, 0, () => {
      const [kh, kw] = [w.shape[2] as number, w.shape[3] as number];
      const plain =
        strides.every((s) => s === 1) &&
        dilations.every((d) => d === 1) &&
        group === 1 &&
        pads.every((p, i) => p < [kh, kw][i % 2]);
      const [co, ci] = [w.shape[0] as number, w.shape[1] as number];
      if (plain && (pads.some((p) => p > 0) || ci > co)) return convInputGradAsConv(c.g, w, dy, pads);
      const outputPad = [0, 1].map((i) =>
        outputPadding(
          x.shape[2 + i] as number,
          dy.shape[2 + i] as number,
          [kh, kw][i],
          pads[i],
          pads[i + 2],
          strides[i],
          dilations[i],
        ),
      );
      return c.g.convTranspose(dy, w, { pads, strides, dilations, group, outputPadding: outputPad });
    });
    const asConv =
      c.options.convWeightGradient === 'conv' &&
      strides.every((s) => s === 1) &&
      dilations.every((d) => d === 1) &&
      group === 1;
    const dw = ifNeeded(c, 1, () =>
      asConv ? convWeightGradAsConv(c.g, x, dy, pads) : convWeightGrad(c.g, x, w, dy, n),
    );
    const db = n.inputs.length > 2 ? [ifNeeded(c, 2, () => c.g.reduceSum(dy, [0, 2, 3], false))] : [];
    return [dx, dw, ...db];
  },
  ConvTranspose: nd('only emitted by gradients; its own gradient is not implemented'),
  MaxPool: (c) => {
    const x = input(c, 0);
    const n = c.node;
    const kernel = ints(n.attrs.kernel_shape, []);
    const strides = ints(n.attrs.strides, kernel);
    const pads = ints(n.attrs.pads, [0, 0, 0, 0]);
    if (c.options.maxPoolGradient === 'masks' && tilesInput(x, kernel, strides, pads))
      return [maxPoolGradByMasks(c.g, x, output(c), dy0(c), kernel[0])];
    if (c.options.maxPoolGradient !== 'scatter' && tilesInput(x, kernel, strides, pads))
      return [maxPoolGradByPhases(c.g, x, output(c), dy0(c), kernel[0])];
    // The Indices output (flat positions in N·C·H·W) routes each gradient to the max that produced it; the first
    // max wins ties, as in PyTorch. Without it, the pool is recomputed with indices.
    const indices = n.outputs[1] ?? c.g.maxPoolWithIndices(x, { kernel, strides, pads })[1];
    const flat = (t: Tensor) => c.g.reshape(t, [-1]);
    const overlapping = kernel.some((k, i) => k > strides[i]);
    const zeros = zerosLike(c.g, flat(x));
    const dx = c.g.scatterElements(zeros, flat(indices), flat(dy0(c)), 0, overlapping ? 'add' : 'none');
    return [c.g.reshapeLike(dx, x)];
  },
  AveragePool: (c) => {
    const x = input(c, 0);
    const n = c.node;
    const kernel = ints(n.attrs.kernel_shape, []);
    const strides = ints(n.attrs.strides, [1, 1]);
    const pads = ints(n.attrs.pads, [0, 0, 0, 0]);
    // Without padding every window is whole and count_include_pad means nothing.
    if (pads.some((p) => p !== 0) && intAttr(n, 'count_include_pad', 0) !== 1) {
      throw new RangeError(`AveragePool gradient: node "${n.name}" needs count_include_pad=1 (PyTorch's default)`);
    }
    const ch = x.shape[1] as number;
    const dy = dy0(c);
    // A stride-1 average with centred padding ("same" size) is its own adjoint: the kernel is uniform and symmetric.
    const same = kernel.every((k, i) => strides[i] === 1 && pads[i] === (k - 1) / 2 && pads[i + 2] === pads[i]);
    if (same) return [c.g.averagePool(dy, { kernel, strides, pads, countIncludePad: true })];
    // Otherwise the adjoint is a depthwise transposed conv with the constant 1/(kh*kw) kernel.
    const weight = c.g.constant(new Float32Array(ch * kernel[0] * kernel[1]).fill(1 / (kernel[0] * kernel[1])), [
      ch,
      1,
      kernel[0],
      kernel[1],
    ]);
    const outputPad = [0, 1].map((i) =>
      outputPadding(
        x.shape[2 + i] as number,
        dy.shape[2 + i] as number,
        kernel[i],
        pads[i],
        pads[i + 2],
        strides[i],
        1,
      ),
    );
    return [c.g.convTranspose(dy, weight, { pads, strides, group: ch, outputPadding: outputPad })];
  },

  ArgMax: nd('an index'),
  Equal: nd('a comparison'),
  Greater: nd('a comparison'),
  Shape: nd('a shape'),
  Size: nd('an element count'),
  ConstantOfShape: nd('its input is a shape'),
  ScatterElements: nd('only emitted by gradients; its own gradient is not implemented'),
  MaxUnpool: nd('only emitted by gradients; its own gradient is not implemented'),
  SpaceToDepth: nd('only emitted by gradients; its own gradient is not implemented'),
  Range: nd('an index sequence'),
  Mod: nd('integer arithmetic'),
  Loop: nd('a Loop runs whole training steps; its body is differentiated when it is built'),
  Gather: nd('only emitted by gradients; its own gradient is not implemented'),
};

function sliceConst(c: GradContext, i: number): number[] {
  const t = input(c, i);
  const init = c.g.initializers.get(t.name);
  if (!init) throw new RangeError(`${c.node.op} gradient: node "${c.node.name}" needs a constant input ${i}`);
  return Array.from(init.data as BigInt64Array, Number);
}

function reduceAxes(c: GradContext, axes: readonly number[]): number[] {
  const r = input(c, 0).shape.length;
  return (axes.length ? axes : input(c, 0).shape.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
}

/** Spreads the gradient of a reduction back over the reduced axes. */
function expandReduced(c: GradContext, axes: number[]): Tensor {
  const x = input(c, 0);
  let dy = dy0(c);
  if (intAttr(c.node, 'keepdims', 1) === 0) dy = c.g.unsqueeze(dy, axes);
  return c.g.expand(dy, c.g.shapeOf(x), x.shape);
}

export function checkGradShape(node: Node, i: number, grad: Tensor): void {
  const x = node.inputs[i] as Tensor;
  const compatible =
    x.shape.length === grad.shape.length &&
    x.shape.every((d, k) => typeof d !== 'number' || typeof grad.shape[k] !== 'number' || d === grad.shape[k]);
  if (!compatible) {
    throw new RangeError(
      `gradient of ${node.op} "${node.name}" for input "${x.name}" has shape ${formatShape(grad.shape)}, expected ${formatShape(x.shape)}`,
    );
  }
}
