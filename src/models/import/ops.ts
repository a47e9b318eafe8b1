/**
 * How each ONNX op of an imported file is emitted onto the builder (IMPORTERS, a few lines per op), and which ops are
 * computed at import when their inputs are known (FOLDERS: shapes and small constants). BatchNorm and Dropout have
 * a training form and an evaluation form.
 */
import { GraphBuilder } from '../../onnx/builder';
import { Tensor } from '../../onnx/tensor';
import { UsageError } from '../../errors';
import { StoredTensor } from '../../onnx/model';
import type { Known, OpContext, Value } from './replay';

/** The name of the random state a network with Dropout trains with (see BufferSpec.random). */
export const RANDOM_STATE = 'ingraph.random';

export type Importer = (c: OpContext) => Value[];

const rankOf = (t: Tensor) => t.shape.length;
const positive = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** A per-channel vector [C] shaped to broadcast over x [N,C,...]. */
function perChannel(g: GraphBuilder, v: Tensor, x: Tensor): Tensor {
  return rankOf(x) === 2 ? v : g.reshape(v, [1, -1, ...x.shape.slice(2).map(() => 1)]);
}

/** MaxPool's ceil mode as extra end padding (padding never wins a max): the sizes ceil mode gives. */
function ceilPads(x: Tensor, kernel: number[], strides: number[], pads: number[]): number[] {
  const out = [...pads];
  kernel.forEach((k, i) => {
    const size = (x.shape[2 + i] as number) + pads[i] + pads[i + kernel.length];
    const floor = Math.floor((size - k) / strides[i]) + 1;
    let ceil = Math.ceil((size - k) / strides[i]) + 1;
    // PyTorch drops a last window that would start in the end padding.
    if ((ceil - 1) * strides[i] >= (x.shape[2 + i] as number) + pads[i]) ceil--;
    out[i + kernel.length] += (ceil - floor) * strides[i];
  });
  return out;
}

function poolSettings(c: OpContext, x: Tensor): { kernel: number[]; strides: number[]; pads: number[] } {
  const kernel = c.ints('kernel_shape') ?? c.refuse('no kernel_shape');
  if (c.string('auto_pad', 'NOTSET') !== 'NOTSET') c.refuse('auto_pad is not supported (export with explicit pads)');
  if ((c.ints('dilations') ?? []).some((d) => d !== 1)) c.refuse('dilated pooling is not supported');
  const strides = c.ints('strides') ?? kernel.map(() => 1);
  const pads = c.ints('pads') ?? [...kernel, ...kernel].map(() => 0);
  if (rankOf(x) !== 4) c.refuse(`pooling of rank-${rankOf(x)} input`);
  return { kernel, strides, pads };
}

const unary =
  (emit: (g: GraphBuilder, x: Tensor, c: OpContext) => Tensor): Importer =>
  (c) => [emit(c.g, c.x(0), c)];
const binary =
  (emit: (g: GraphBuilder, a: Tensor, b: Tensor) => Tensor): Importer =>
  (c) => [emit(c.g, c.x(0), c.x(1))];

/**
 * A reduction over its `axes` (attribute, or input 1 from opset 13/18), all axes when none are given (or none at all
 * with noop_with_empty_axes); `keepdims` 1 by default.
 */
function reduce(c: OpContext, emit: (x: Tensor, axes: number[], keep: boolean) => Tensor): Tensor {
  const x = c.x(0);
  const given = c.axes(1) ?? [];
  if (given.length === 0 && c.int('noop_with_empty_axes', 0) === 1) return x;
  const axes = (given.length ? given : x.shape.map((_, i) => i)).map((a) => positive(a, rankOf(x)));
  return emit(x, axes, c.int('keepdims', 1) === 1);
}

/** How each op is emitted on graph tensors. */
export const IMPORTERS: Record<string, Importer> = {
  Identity: (c) => [c.x(0)],
  Dropout: (c) => {
    if (c.replay.reads(c.node.outputs[1])) c.refuse("Dropout's mask output, read by another node, is not supported");
    const ratio = c.has(1) ? c.numbers(1)[0] : c.float('ratio', 0.5);
    return [c.replay.training && ratio > 0 ? dropout(c, ratio) : c.x(0)];
  },
  Constant: (c) => [constantOf(c)],
  Cast: (c) =>
    c.int('to', 1) === 1 ? [c.g.cast(c.x(0), 'float32')] : c.refuse('casts of tensors to other types than float'),
  Add: binary((g, a, b) => g.add(a, b)),
  Sub: binary((g, a, b) => g.sub(a, b)),
  Mul: binary((g, a, b) => g.mul(a, b)),
  Div: binary((g, a, b) => g.div(a, b)),
  Neg: unary((g, x) => g.neg(x)),
  Exp: unary((g, x) => g.exp(x)),
  Sqrt: unary((g, x) => g.sqrt(x)),
  // An integer exponent (a constant) is taken as float; an integer base is not data ingraph trains.
  Pow: (c) => {
    if (c.knows(0) ? c.known(0).dtype !== 'float32' : c.x(0).dtype !== 'float32')
      c.refuse('Pow of an integer base is not supported');
    return [c.g.pow(c.x(0), c.knows(1) ? c.g.constant(c.numbers(1), c.known(1).shape) : c.x(1))];
  },
  ReduceMean: (c) => [reduce(c, (x, axes, keep) => c.g.reduceMean(x, axes, keep))],
  ReduceSum: (c) => [reduce(c, (x, axes, keep) => c.g.reduceSum(x, axes, keep))],
  Relu: unary((g, x) => g.relu(x)),
  LeakyRelu: unary((g, x, c) => g.leakyRelu(x, c.float('alpha', 0.01))),
  Sigmoid: unary((g, x) => g.sigmoid(x)),
  Tanh: unary((g, x) => g.tanh(x)),
  Clip: (c) => {
    const bound = (i: number, attr: string) =>
      c.has(i) ? (c.knows(i) ? c.numbers(i)[0] : c.x(i)) : c.attr(attr) ? c.float(attr, 0) : null;
    return [c.g.clip(c.x(0), bound(1, 'min'), bound(2, 'max'))];
  },
  Softmax: unary((g, x, c) => g.softmax(x, c.int('axis', -1))),
  LogSoftmax: unary((g, x, c) => g.logSoftmax(x, c.int('axis', -1))),
  MatMul: binary((g, a, b) => g.matMul(a, b)),
  Gemm: (c) => [
    c.g.gemm(c.x(0), c.x(1), c.has(2) ? c.x(2) : null, {
      transA: c.int('transA', 0) === 1,
      transB: c.int('transB', 0) === 1,
      ...(c.attr('alpha') ? { alpha: c.float('alpha', 1) } : {}),
      ...(c.attr('beta') ? { beta: c.float('beta', 1) } : {}),
    }),
  ],
  Conv: (c) => {
    if (c.string('auto_pad', 'NOTSET') !== 'NOTSET') c.refuse('auto_pad is not supported (export with explicit pads)');
    const x = c.x(0);
    if (rankOf(x) !== 4) c.refuse(`a Conv of rank-${rankOf(x)} input (only 2-D convolutions)`);
    const opts = {
      ...(c.ints('pads') ? { pads: c.ints('pads') } : {}),
      ...(c.ints('strides') ? { strides: c.ints('strides') } : {}),
      ...(c.ints('dilations') ? { dilations: c.ints('dilations') } : {}),
      group: c.int('group', 1),
    };
    return [c.g.conv(x, c.x(1), c.has(2) ? c.x(2) : null, opts)];
  },
  MaxPool: (c) => {
    const x = c.x(0);
    if (c.replay.reads(c.node.outputs[1])) c.refuse("MaxPool's Indices output is not supported");
    if (c.int('storage_order', 0) !== 0) c.refuse('storage_order=1 is not supported');
    const { kernel, strides, pads } = poolSettings(c, x);
    const padded = c.int('ceil_mode', 0) === 1 ? ceilPads(x, kernel, strides, pads) : pads;
    return [c.g.maxPool(x, { kernel, strides, pads: padded })];
  },
  AveragePool: (c) => {
    const x = c.x(0);
    const { kernel, strides, pads } = poolSettings(c, x);
    if (c.int('ceil_mode', 0) === 1) c.refuse('ceil_mode=1 average pooling is not supported');
    if (pads.some((p) => p !== 0) && c.int('count_include_pad', 0) !== 1)
      c.refuse('padded average pooling without count_include_pad (PyTorch count_include_pad=False) is not supported');
    return [c.g.averagePool(x, { kernel, strides, pads, countIncludePad: true })];
  },
  GlobalAveragePool: unary((g, x) =>
    g.reduceMean(
      x,
      x.shape.slice(2).map((_, i) => i + 2),
      true,
    ),
  ),
  // In training its outputs 1 and 2 are the new running mean and variance (ONNX's training mode); the saved batch
  // statistics (outputs 3 and 4 of opsets before 14) are not made.
  BatchNormalization: (c) => {
    const read = c.node.outputs.map((o) => c.replay.reads(o));
    if (read.slice(c.replay.training ? 3 : 1).some(Boolean))
      c.refuse(
        `BatchNormalization's ${c.replay.training ? 'saved statistics' : 'statistics'} outputs are not supported`,
      );
    return c.replay.training ? batchNormTraining(c) : [batchNormInference(c)];
  },
  Flatten: unary((g, x, c) => g.flatten(x, positive(c.int('axis', 1), rankOf(x)))),
  Reshape: (c) => [reshape(c)],
  Transpose: unary((g, x, c) => g.transpose(x, c.ints('perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i))),
  Concat: (c) => [
    c.g.concat(
      c.node.inputs.map((_, i) => c.x(i)),
      positive(c.int('axis', 0), rankOf(c.x(0))),
    ),
  ],
  Split: (c) => {
    const x = c.x(0);
    const axis = positive(c.int('axis', 0), rankOf(x));
    const parts = c.node.outputs.length;
    const sizes = c.ints('split') ?? (c.has(1) ? c.numbers(1) : null);
    const even = (x.shape[axis] as number) / parts;
    return c.g.split(x, axis, sizes ?? Array.from({ length: parts }, () => even));
  },
  Slice: (c) => {
    const x = c.x(0);
    const [starts, ends] = [c.numbers(1), c.numbers(2)];
    const axes = (c.has(3) ? c.numbers(3) : starts.map((_, i) => i)).map((a) => positive(a, rankOf(x)));
    const steps = c.has(4) ? c.numbers(4) : undefined;
    if (steps?.some((s) => s < 1)) c.refuse('Slice steps below 1 (reversed slices) are not supported');
    const dim = (i: number) => x.shape[axes[i]] as number;
    const clamp = (v: number, i: number) => Math.max(0, Math.min(v < 0 ? v + dim(i) : v, dim(i)));
    return [c.g.slice(x, starts.map(clamp), ends.map(clamp), axes, steps)];
  },
  // A symbolic dim (the batch) is copied where it stays in place (0), else inferred (-1).
  Squeeze: unary((g, x, c) => {
    const axes = (c.axes(1) ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => positive(a, rankOf(x)));
    const kept = x.shape.map((d, i) => [d, i] as const).filter(([, i]) => !axes.includes(i));
    return g.reshape(
      x,
      kept.map(([d, i], j) => (typeof d === 'number' ? d : i === j ? 0 : -1)),
    );
  }),
  Unsqueeze: unary((g, x, c) => {
    const axes = c.axes(1) ?? c.refuse('no axes');
    return g.unsqueeze(
      x,
      axes.map((a) => positive(a, rankOf(x) + axes.length)),
    );
  }),
  Pad: (c) => {
    if (c.string('mode', 'constant') !== 'constant') c.refuse(`${c.string('mode', '')} padding is not supported`);
    const pads = c.ints('pads') ?? c.numbers(1);
    const value = c.has(2) ? c.numbers(2)[0] : c.float('value', 0);
    if (value !== 0) c.refuse('padding with a value other than 0 is not supported');
    return [c.g.pad(c.x(0), pads)];
  },
  Shape: (c) => [shapeOf(c)],
  Gather: (c) => c.refuse('Gather of a tensor (only of shapes, which are folded) is not supported'),
};

/** BatchNorm by its running statistics (evaluation, export): a per-channel affine map. */
function batchNormInference(c: OpContext): Tensor {
  const x = c.x(0);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => perChannel(c.g, c.x(i), x));
  const inverse = c.g.div(scale, c.g.sqrt(c.g.add(variance, c.g.scalar(c.float('epsilon', 1e-5)))));
  return c.g.add(c.g.mul(c.g.sub(x, mean), inverse), bias);
}

/**
 * BatchNorm in training, as PyTorch's: normalised by the batch's mean and biased variance over N (and H, W); the
 * running statistics move towards the batch's mean and unbiased variance by ONNX's `momentum` (PyTorch's 1 - m).
 */
function batchNormTraining(c: OpContext): Tensor[] {
  const { g } = c;
  const x = c.x(0);
  const axes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
  const mean = g.reduceMean(x, axes, true);
  const centred = g.sub(x, mean);
  const variance = g.reduceMean(g.mul(centred, centred), axes, true);
  const [scale, bias] = [1, 2].map((i) => perChannel(g, c.x(i), x));
  const eps = g.scalar(c.float('epsilon', 1e-5));
  const y = g.add(g.mul(g.div(centred, g.sqrt(g.add(variance, eps))), scale), bias);
  const m = c.float('momentum', 0.9);
  const count = g.div(g.cast(g.size(x), 'float32'), g.scalar(x.shape[1] as number));
  const unbiased = g.mul(variance, g.div(count, g.sub(count, g.scalar(1))));
  const moved = (i: number, batch: Tensor) =>
    g.add(g.mul(c.x(i), g.scalar(m)), g.mul(g.reshape(batch, [-1]), g.scalar(1 - m)));
  const [runningMean, runningVar] = [moved(3, mean), moved(4, unbiased)];
  c.replay.update(c.node.inputs[3], runningMean);
  c.replay.update(c.node.inputs[4], runningVar);
  return [y, runningMean, runningVar];
}

/** Park–Miller's prime modulus: the hash below stays in int64 (products of two values under it are below 2^62). */
const PRIME = 2147483647;

/**
 * Dropout in training: each element kept with probability 1 - ratio and scaled by 1 / (1 - ratio), as PyTorch's.
 * The mask is a hash of the element's index, the node, the run's seed and the step count (the random state, which
 * the step advances and checkpoints carry): reproducible run to run and across a resume, fresh every step.
 */
function dropout(c: OpContext, ratio: number): Tensor {
  const { g } = c;
  const x = c.x(0);
  const state = c.replay.buffer(RANDOM_STATE);
  c.replay.update(RANDOM_STATE, g.add(state, g.constant([0, 0, 1], [3])));
  const [hi, lo, step] = g.split(g.cast(state, 'int64'), 0, [1, 1, 1]);
  const int = (v: number) => g.constant([v], [], 'int64');
  const index = g.reshapeLike(g.range(int(0), g.size(x), int(1), 'N'), x);
  const salt = int(7919 * (1 + c.replay.nodeIndex(c.node)));
  const seed = g.mod(g.add(g.mul(hi, int(65536)), lo), int(PRIME));
  const mix = g.add(g.add(g.mul(seed, int(16807)), g.mul(step, int(69621))), salt);
  let h = g.mod(g.add(g.mul(index, int(48271)), mix), int(PRIME));
  for (const k of [12345, 6789]) h = g.mod(g.add(g.mul(h, h), int(k)), int(PRIME));
  const u = g.div(g.cast(h, 'float32'), g.scalar(PRIME));
  return g.where(g.greater(u, g.scalar(ratio)), g.mul(x, g.scalar(1 / (1 - ratio))), g.scalar(0));
}

/** Ops whose inputs are all known are computed at import: shapes and small constants. */
export const FOLDERS: Record<string, (c: OpContext) => Value[] | undefined> = {
  Identity: (c) => [c.known(0)],
  Cast: (c) => {
    const k = c.known(0);
    return [{ data: k.data, shape: k.shape, dtype: c.int('to', 7) === 1 ? 'float32' : 'int64' }];
  },
  Shape: (c) => [shapeOf(c)],
  Gather: (c) => {
    const [data, index] = [c.known(0), c.numbers(1)];
    if (data.shape.length !== 1) return undefined;
    const picked = index.map((i) => data.data[i < 0 ? i + data.data.length : i]);
    return [{ data: picked, shape: c.known(1).shape, dtype: data.dtype }];
  },
  Unsqueeze: (c) => {
    const k = c.known(0);
    const shape = [...k.shape];
    const axes = c.axes(1) ?? [];
    for (const a of axes.map((v) => positive(v, k.shape.length + axes.length)).sort((p, q) => p - q))
      shape.splice(a, 0, 1);
    return [{ data: k.data, shape, dtype: k.dtype }];
  },
  Squeeze: (c) => {
    const k = c.known(0);
    return [{ data: k.data, shape: k.shape.filter((d) => d !== 1), dtype: k.dtype }];
  },
  Concat: (c) => {
    const parts = c.node.inputs.map((_, i) => c.known(i));
    if (parts.some((p) => p.shape.length !== 1)) return undefined;
    return [
      {
        data: parts.flatMap((p) => p.data),
        shape: [parts.reduce((n, p) => n + p.data.length, 0)],
        dtype: parts[0].dtype,
      },
    ];
  },
  Add: (c) => arithmetic(c, (a, b) => a + b),
  Sub: (c) => arithmetic(c, (a, b) => a - b),
  Mul: (c) => arithmetic(c, (a, b) => a * b),
  Div: (c) => arithmetic(c, (a, b) => (c.known(0).dtype === 'int64' ? Math.trunc(a / b) : a / b)),
};

/** Elementwise arithmetic of known values of one length (or a scalar and a vector); symbols are not computed. */
function arithmetic(c: OpContext, op: (a: number, b: number) => number): Value[] | undefined {
  const [a, b] = [c.known(0), c.known(1)];
  const n = Math.max(a.data.length, b.data.length);
  if ([a, b].some((k) => k.data.length !== n && k.data.length !== 1)) return undefined;
  if ([a, b].some((k) => k.data.some((d) => typeof d !== 'number'))) return undefined;
  const at = (k: Known, i: number) => k.data[k.data.length === 1 ? 0 : i] as number;
  const data = Array.from({ length: n }, (_, i) => op(at(a, i), at(b, i)));
  return [{ data, shape: a.data.length === n ? a.shape : b.shape, dtype: a.dtype }];
}

/** A tensor's shape as a known value (the batch a symbol), its dims `start` to `end` (opset 15). */
function shapeOf(c: OpContext): Known {
  const dims = c.has(0) ? c.x(0).shape : [];
  const at = (v: number) => Math.max(0, Math.min(dims.length, v < 0 ? v + dims.length : v));
  const kept = dims.slice(at(c.int('start', 0)), at(c.int('end', dims.length)));
  return { data: [...kept], shape: [kept.length], dtype: 'int64' };
}

function constantOf(c: OpContext): Known {
  const a = c.attr('value');
  if (a?.kind === 'tensor') return knownOf(a.value, c.node.name);
  if (c.attr('value_float')) return { data: [c.float('value_float', 0)], shape: [], dtype: 'float32' };
  const ints = c.ints('value_ints');
  if (ints) return { data: ints, shape: [ints.length], dtype: 'int64' };
  if (c.attr('value_int')) return { data: [c.int('value_int', 0)], shape: [], dtype: 'int64' };
  return c.refuse('a Constant without a value');
}

/**
 * Reshape to a known target. A symbolic entry (the batch, from a folded Shape) that stands where the input has it
 * becomes 0 (copy that dim); an export without a dynamic batch axis writes the file's batch (1) there, read as the
 * batch too.
 */
function reshape(c: OpContext): Tensor {
  if (c.int('allowzero', 0) === 1) c.refuse('allowzero=1 is not supported (PyTorch does not write it)');
  const x = c.x(0);
  const k = c.known(1);
  const target = k.data.map((d, i) => {
    if (typeof d === 'string') return x.shape[i] === d ? 0 : c.refuse(`target [${k.data}] moves the batch dimension`);
    return i === 0 && d === c.replay.fileBatch && typeof x.shape[0] === 'string' ? 0 : d;
  });
  return c.g.reshape(x, target);
}

export function knownOf(t: StoredTensor, where: string): Known {
  if (t.dtype !== 'float32' && t.dtype !== 'int64' && t.dtype !== 'bool')
    throw new UsageError(`${where}: tensor "${t.name}" is ${t.dtype}`);
  const data = t.data instanceof BigInt64Array ? Array.from(t.data, Number) : Array.from(t.data as ArrayLike<number>);
  return { data, shape: [...t.shape], dtype: t.dtype === 'float32' ? 'float32' : 'int64' };
}
