/**
 * A network imported from an ONNX classifier (a PyTorch export): its float initializers are the parameters (named as
 * PyTorch's state_dict keys), its one float image input [N,C,H,W] takes the normalised images, and its one [N,K]
 * output is the logits. Its nodes are replayed through the GraphBuilder op by op (the tables below, a few lines per
 * op), so training graphs, gradients and exports treat it as they treat the built-in nets. Values known at import
 * time (constants, and shapes with the batch as a symbol, as in PyTorch's `x.view(x.size(0), -1)`) are folded.
 *
 * Semantics are the exported function's: BatchNormalization normalises by its running statistics (kept as they
 * are), Dropout passes its input through. This is what an eval-mode export computes, and what PyTorch trains after
 * `model.eval()`.
 */
import { UsageError } from '../errors';
import { GraphBuilder } from '../onnx/builder';
import { NodeAttr, ParsedModel, ParsedNode, StoredTensor, ValueSummary } from '../onnx/model';
import { Dim, numel, Tensor } from '../onnx/tensor';
import { ImageSignature } from '../signature';
import { defineNetwork, Network } from './index';
import { BufferSpec, Forward, Module, ParamSpec, Params } from './module';

/** Where the list of ops an import takes is documented, for messages. */
export const SUPPORTED_OPS_DOC = 'docs/import.md';

/** What an imported file is: its interface, its parameters and their weights, its fixed tensors. */
export interface ImportedGraph {
  /** The file's name in messages. */
  where: string;
  input: ValueSummary;
  output: ValueSummary;
  /** [C, H, W] and K, from the input's and output's dims. */
  shape: { input: [number, number, number]; classes: number };
  params: ParamSpec[];
  weights: Params;
  /** BatchNorm's running statistics, from the file: updated by training, used by evaluation and export. */
  buffers: BufferSpec[];
  nodes: ParsedNode[];
  /** Every initializer, parameters included. */
  initializers: Map<string, StoredTensor>;
  /** The names some node or the graph's output reads: an output outside it (a Dropout mask) is not needed. */
  consumed: Set<string>;
}

/** The name of the random state a network with Dropout trains with (see BufferSpec.random). */
export const RANDOM_STATE = 'ingraph.random';

/** A value known at import time: a small int64 or float32 tensor; an int entry may be a symbolic dimension. */
interface Known {
  data: (number | string)[];
  shape: number[];
  dtype: 'int64' | 'float32';
  /** The initializer it was read from, so that a float one used as data stays an initializer of that name. */
  initializer?: StoredTensor;
}

type Value = Tensor | Known;

const isKnown = (v: Value): v is Known => !('name' in v);

/** Inputs of these ops that are settings, not data: a float initializer there is no parameter. */
const SETTING_INPUTS: Record<string, readonly number[]> = {
  BatchNormalization: [3, 4],
  Clip: [1, 2],
  Pad: [1, 2],
  Reshape: [1],
  Slice: [1, 2, 3, 4],
  Split: [1],
  Squeeze: [1],
  Unsqueeze: [1],
};

/** Reads the interface and parameters of a parsed ONNX classifier; refuses what ingraph cannot train in one line. */
export function importGraph(m: ParsedModel, where: string): ImportedGraph {
  const floats = m.inputs.filter((i) => i.dtype === 'float32');
  if (m.inputs.length !== 1 || floats.length !== 1 || floats[0].shape.length !== 4) {
    const found = m.inputs.map((i) => `"${i.name}" ${i.dtype} [${i.shape}]`).join(', ') || 'none';
    throw new UsageError(`${where}: expected one float32 image input [N,C,H,W], found ${found}`);
  }
  const [input] = floats;
  if (m.outputs.length !== 1 || m.outputs[0].shape.length !== 2 || typeof m.outputs[0].shape[1] !== 'number') {
    const found = m.outputs.map((o) => `"${o.name}" [${o.shape}]`).join(', ');
    throw new UsageError(`${where}: expected one output of logits [N,K], found ${found}`);
  }
  const [, c, h, w] = input.shape;
  if (![c, h, w].every((d) => typeof d === 'number' && d > 0))
    throw new UsageError(`${where}: input "${input.name}" [${input.shape}] needs static C, H and W`);
  const unsupported = m.nodes.find((n) => (n.domain !== '' && n.domain !== 'ai.onnx') || !(n.op in IMPORTERS));
  if (unsupported) {
    const node = `node "${unsupported.name || unsupported.outputs[0]}" (${unsupported.domain ? `${unsupported.domain}.` : ''}${unsupported.op})`;
    throw new UsageError(
      `${where}: ${node} is not an op ingraph can train; the supported ops are in ${SUPPORTED_OPS_DOC}`,
    );
  }
  const params = parameterSpecs(m);
  const weights: Params = new Map(params.map((p) => [p.name, m.initializers.get(p.name)?.data as Float32Array]));
  const shape = { input: [c, h, w] as [number, number, number], classes: m.outputs[0].shape[1] };
  const buffers = bufferSpecs(m);
  const { nodes, initializers } = m;
  const consumed = new Set([...nodes.flatMap((n) => n.inputs), m.outputs[0].name]);
  return { where, input, output: m.outputs[0], shape, params, weights, buffers, nodes, initializers, consumed };
}

/** The float32 initializers that feed data inputs of the nodes, in the file's order: the trainable parameters. */
function parameterSpecs(m: ParsedModel): ParamSpec[] {
  const data = new Set<string>();
  for (const n of m.nodes)
    n.inputs.forEach((name, i) => {
      if (!(SETTING_INPUTS[n.op] ?? []).includes(i)) data.add(name);
    });
  return [...m.initializers.values()]
    .filter((t) => t.dtype === 'float32' && data.has(t.name))
    .map((t) => ({ name: t.name, shape: [...t.shape], fanIn: Math.max(1, numel(t.shape.slice(1))) }));
}

/** The running mean and variance of each BatchNormalization node, where the file holds them as initializers. */
function bufferSpecs(m: ParsedModel): BufferSpec[] {
  const names = m.nodes.filter((n) => n.op === 'BatchNormalization').flatMap((n) => n.inputs.slice(3, 5));
  const statistics = [...new Set(names)].flatMap((name) => {
    const t = m.initializers.get(name);
    return t && t.dtype === 'float32' ? [{ name, shape: [...t.shape], initial: t.data as Float32Array }] : [];
  });
  const dropout = m.nodes.some((n) => n.op === 'Dropout');
  const random = { name: RANDOM_STATE, shape: [3], initial: new Float32Array(3), random: true };
  return dropout ? [...statistics, random] : statistics;
}

/** The root module of an imported network: its forward replays the file's nodes. */
export class ImportedModule extends Module {
  constructor(private readonly graph: ImportedGraph) {
    super();
    for (const p of graph.params) this.param(p.name, p.shape, p.fanIn);
  }

  override buffers(): BufferSpec[] {
    return this.graph.buffers;
  }

  forward(f: Forward, x: Tensor): Tensor {
    const env = new Map<string, Value>([[this.graph.input.name, x]]);
    const buffers = this.graph.buffers.map((b) => ({ name: b.name, shape: b.shape, fanIn: 1 }));
    const specs = new Map([...this.parameters(), ...buffers].map((p) => [p.name, p]));
    const replay = new Replay(f, this.graph, env, specs);
    for (const node of this.graph.nodes) replay.run(node);
    return replay.tensor(this.graph.output.name, 'the output');
  }
}

/** One replay of a file's nodes onto a builder: the values by name, and how each op is emitted. */
class Replay {
  /** Fixed float initializers (BN statistics...) emitted as initializers of their own names, once each. */
  private readonly fixed = new Map<string, Tensor>();

  constructor(
    private readonly f: Forward,
    private readonly graph: ImportedGraph,
    private readonly env: Map<string, Value>,
    private readonly specs: Map<string, ParamSpec>,
  ) {}

  get g(): GraphBuilder {
    return this.f.g;
  }

  /** Whether this is a training forward (BatchNorm on batch statistics, its buffers updated). */
  get training(): boolean {
    return this.f.training;
  }

  /** Whether a node or the graph's output reads the value `name`. */
  reads(name: string | undefined): boolean {
    return !!name && this.graph.consumed.has(name);
  }

  /** The tensor of buffer `name` (a training forward reads the random state). */
  buffer(name: string): Tensor {
    return this.f.param(this.specs.get(name) as ParamSpec);
  }

  /** Records the new value of buffer `name` (a training forward's). */
  update(name: string, value: Tensor): void {
    if (this.specs.has(name)) this.f.updates.set(name, value);
  }

  /** The node's position in the file, which makes each Dropout's mask its own. */
  nodeIndex(node: ParsedNode): number {
    return this.graph.nodes.indexOf(node);
  }

  run(node: ParsedNode): void {
    const inputs = node.inputs.map((name) => (name === '' ? null : this.value(name, node)));
    const c = new OpContext(this, node, inputs);
    const folded = inputs.every((v) => v === null || isKnown(v)) ? FOLDERS[node.op]?.(c) : undefined;
    let outputs: Value[];
    try {
      outputs = folded ?? IMPORTERS[node.op](c);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(
        `${this.graph.where}: node "${node.name || node.outputs[0]}" (${node.op}): ${(e as Error).message}`,
      );
    }
    outputs.forEach((v, i) => node.outputs[i] && this.env.set(node.outputs[i], v));
  }

  /** A value by name: computed, a parameter, or an initializer (known, or a fixed tensor such as BN statistics). */
  value(name: string, node: ParsedNode): Value {
    const v = this.env.get(name);
    if (v) return v;
    const spec = this.specs.get(name);
    if (spec) return this.f.param(spec);
    const t = this.graph.initializers.get(name);
    if (!t)
      throw new UsageError(
        `${this.graph.where}: node "${node.name}" (${node.op}) reads "${name}", which nothing makes`,
      );
    return { ...knownOf(t, this.graph.where), initializer: t };
  }

  /** A value as a graph tensor (known values become constants). */
  tensor(name: string, what: string): Tensor {
    const v = this.env.get(name);
    if (!v) throw new UsageError(`${this.graph.where}: ${what} "${name}" is never computed`);
    return isKnown(v) ? this.constant(v) : v;
  }

  constant(k: Known): Tensor {
    if (k.data.some((d) => typeof d === 'string'))
      throw new RangeError('a shape with a symbolic dimension used as data');
    const t = k.initializer;
    if (!t || t.dtype !== 'float32') return this.g.constant(k.data as number[], k.shape, k.dtype);
    const fixed = this.fixed.get(t.name) ?? this.g.initializer(t.name, 'float32', t.shape, t.data);
    this.fixed.set(t.name, fixed);
    return fixed;
  }

  /** The batch dimension of the file's input, where it is a number (exports without a dynamic batch axis). */
  get fileBatch(): Dim {
    return this.graph.input.shape[0];
  }
}

function knownOf(t: StoredTensor, where: string): Known {
  if (t.dtype !== 'float32' && t.dtype !== 'int64' && t.dtype !== 'bool')
    throw new UsageError(`${where}: tensor "${t.name}" is ${t.dtype}`);
  const data = t.data instanceof BigInt64Array ? Array.from(t.data, Number) : Array.from(t.data as ArrayLike<number>);
  return { data, shape: [...t.shape], dtype: t.dtype === 'float32' ? 'float32' : 'int64' };
}

/** What an op's emitter sees: its node, attributes, and inputs as tensors or known values. */
class OpContext {
  constructor(
    readonly replay: Replay,
    readonly node: ParsedNode,
    private readonly inputs: (Value | null)[],
  ) {}

  get g(): GraphBuilder {
    return this.replay.g;
  }

  has(i: number): boolean {
    return this.inputs[i] !== null && this.inputs[i] !== undefined;
  }

  /** Input `i` as a tensor; known values become constants. */
  x(i = 0): Tensor {
    const v = this.inputs[i];
    if (!v) throw new RangeError(`input ${i} is missing`);
    return isKnown(v) ? this.replay.constant(v) : v;
  }

  /** Input `i` as a value known at import time (a shape, pads, axes...). */
  known(i: number): Known {
    const v = this.inputs[i];
    if (!v || !isKnown(v)) throw new RangeError(`input ${i} must be known at import time (a constant or a shape)`);
    return v;
  }

  /** Input `i` as known numbers. */
  numbers(i: number): number[] {
    const k = this.known(i);
    if (k.data.some((d) => typeof d !== 'number')) throw new RangeError(`input ${i} has a symbolic dimension`);
    return k.data as number[];
  }

  attr(name: string): NodeAttr | undefined {
    return this.node.attrs[name];
  }

  int(name: string, fallback: number): number {
    const a = this.attr(name);
    return a?.kind === 'int' ? a.value : fallback;
  }

  float(name: string, fallback: number): number {
    const a = this.attr(name);
    return a?.kind === 'float' ? a.value : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.attr(name);
    return a?.kind === 'ints' ? a.value : undefined;
  }

  string(name: string, fallback: string): string {
    const a = this.attr(name);
    return a?.kind === 'string' ? a.value : fallback;
  }

  /** Axes from the attribute (older opsets) or input `i` (opset 13 on). */
  axes(i: number): number[] | undefined {
    return this.ints('axes') ?? (this.has(i) ? this.numbers(i) : undefined);
  }

  refuse(what: string): never {
    throw new RangeError(what);
  }
}

type Importer = (c: OpContext) => Value[];

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

/** How each op is emitted on graph tensors. */
const IMPORTERS: Record<string, Importer> = {
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
  Relu: unary((g, x) => g.relu(x)),
  LeakyRelu: unary((g, x, c) => g.leakyRelu(x, c.float('alpha', 0.01))),
  Sigmoid: unary((g, x) => g.sigmoid(x)),
  Tanh: unary((g, x) => g.tanh(x)),
  Clip: (c) => {
    const bound = (i: number, attr: string) => (c.has(i) ? c.numbers(i)[0] : c.attr(attr) ? c.float(attr, 0) : null);
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
    if (c.node.outputs[1]) c.refuse("MaxPool's Indices output is not supported");
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
  BatchNormalization: (c) => {
    if (c.node.outputs.slice(1).some((o) => c.replay.reads(o)))
      c.refuse("BatchNormalization's statistics outputs, read by another node, are not supported");
    return [c.replay.training ? batchNormTraining(c) : batchNormInference(c)];
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
    const dim = (i: number) => x.shape[axes[i]] as number;
    const clamp = (v: number, i: number) => Math.max(0, Math.min(v < 0 ? v + dim(i) : v, dim(i)));
    return [c.g.slice(x, starts.map(clamp), ends.map(clamp), axes, steps)];
  },
  Squeeze: unary((g, x, c) => {
    const axes = (c.axes(1) ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => positive(a, rankOf(x)));
    return g.reshape(
      x,
      x.shape.flatMap((d, i) => (axes.includes(i) ? [] : [typeof d === 'number' ? d : 0])),
    );
  }),
  Unsqueeze: unary((g, x, c) => g.unsqueeze(x, c.axes(1) ?? c.refuse('no axes'))),
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
function batchNormTraining(c: OpContext): Tensor {
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
  c.replay.update(c.node.inputs[3], moved(3, mean));
  c.replay.update(c.node.inputs[4], moved(4, unbiased));
  return y;
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
const FOLDERS: Record<string, (c: OpContext) => Value[] | undefined> = {
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
    for (const a of [...(c.axes(1) ?? [])].sort((p, q) => p - q)) shape.splice(a, 0, 1);
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

function shapeOf(c: OpContext): Known {
  const v = c.has(0) ? c.x(0).shape : [];
  return { data: [...v], shape: [v.length], dtype: 'int64' };
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
  const x = c.x(0);
  const k = c.known(1);
  const target = k.data.map((d, i) => {
    if (typeof d === 'string') return x.shape[i] === d ? 0 : c.refuse(`target [${k.data}] moves the batch dimension`);
    return i === 0 && d === c.replay.fileBatch && typeof x.shape[0] === 'string' ? 0 : d;
  });
  return c.g.reshape(x, target);
}

/** The image signature part an imported network fixes: its input [C,H,W] and class count. */
export function importedShape(graph: ImportedGraph): Pick<ImageSignature, 'channels' | 'height' | 'width' | 'classes'> {
  const [channels, height, width] = graph.shape.input;
  return { channels, height, width, classes: graph.shape.classes };
}

/**
 * The network of an imported file, named `name`: it takes only the file's image shape and class count, and starts
 * from the file's weights (`imported.weights`).
 */
export function importedNetwork(graph: ImportedGraph, name: string): Network {
  const { input, classes } = graph.shape;
  return { ...defineNetwork(name, () => new ImportedModule(graph), { input, classes }), imported: graph };
}

/** What ingraph can train in a file: an importable classifier's parameters and buffers, or why not. */
export type Trainability =
  | { trainable: true; parameters: number; tensors: number; batchNorm: number; dropout: boolean }
  | {
      trainable: false;
      reason: string;
      /** An ingraph export's network, which trains on from its weights. */
      network?: string;
    };

/** Whether an import of `m` can be trained, and what it would train. */
export function trainability(m: ParsedModel, where: string): Trainability {
  if (m.metadata['ingraph.model'] !== undefined && m.inputs[0]?.dtype === 'uint8') {
    const net = m.metadata['ingraph.model'];
    return { trainable: false, reason: `an ingraph export of the ${net} net`, network: net };
  }
  try {
    const graph = importGraph(m, where);
    const parameters = graph.params.reduce((n, p) => n + numel(p.shape), 0);
    const batchNorm = graph.buffers.filter((b) => !b.random).length / 2;
    const dropout = graph.buffers.some((b) => b.random);
    return { trainable: true, parameters, tensors: graph.params.length, batchNorm, dropout };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return {
      trainable: false,
      reason: e.message.startsWith(`${where}: `) ? e.message.slice(where.length + 2) : e.message,
    };
  }
}
