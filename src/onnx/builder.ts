/**
 * GraphBuilder: one method per ONNX operator (opset 17), with attributes checked and output shapes inferred when the
 * op is built. A wrong shape fails here, naming the op, the input and the shapes, not later inside onnxruntime.
 */
import { createHash } from 'crypto';
import { DType, Dim, Shape, Tensor, TensorData, formatShape, isStatic, numel, sameShape } from './tensor';

export type OpType =
  | 'Add'
  | 'ArgMax'
  | 'AveragePool'
  | 'Cast'
  | 'Clip'
  | 'Concat'
  | 'ConstantOfShape'
  | 'Conv'
  | 'ConvTranspose'
  | 'Div'
  | 'Equal'
  | 'Exp'
  | 'Expand'
  | 'Flatten'
  | 'Gather'
  | 'Gemm'
  | 'Greater'
  | 'Identity'
  | 'LeakyRelu'
  | 'Log'
  | 'LogSoftmax'
  | 'Loop'
  | 'MatMul'
  | 'MaxPool'
  | 'MaxUnpool'
  | 'Mod'
  | 'Mul'
  | 'Neg'
  | 'Pad'
  | 'Pow'
  | 'Range'
  | 'ReduceMax'
  | 'ReduceMean'
  | 'ReduceSum'
  | 'Relu'
  | 'Reshape'
  | 'ScatterElements'
  | 'Shape'
  | 'Sigmoid'
  | 'Size'
  | 'Slice'
  | 'Softmax'
  | 'SpaceToDepth'
  | 'Split'
  | 'Sqrt'
  | 'Sub'
  | 'Tanh'
  | 'Transpose'
  | 'Unsqueeze'
  | 'Where';

export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; dtype: DType; shape: readonly number[]; data: TensorData }
  | { kind: 'graph'; value: Subgraph };

/**
 * A Loop's body: its nodes, its inputs (iteration number, condition, carried values) and outputs (condition, carried
 * values, per-iteration values). It reads the outer graph's tensors and initializers by name; it has none of its own.
 */
export interface Subgraph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
}

/** What a Loop's body gives back each iteration: the next carried values, and values stacked over the iterations. */
export interface LoopBodyResult {
  carried: Tensor[];
  scans: Tensor[];
}

export interface Node {
  readonly op: OpType;
  readonly name: string;
  /** `null` marks an omitted optional input. */
  readonly inputs: readonly (Tensor | null)[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export interface Initializer {
  readonly tensor: Tensor;
  readonly data: TensorData;
}

/** Attributes of Conv and ConvTranspose, as ONNX names them. */
export interface ConvOptions {
  pads?: readonly number[];
  strides?: readonly number[];
  dilations?: readonly number[];
  group?: number;
}

/** Attributes of MaxPool and AveragePool, as ONNX names them. */
export interface PoolOptions {
  kernel: readonly number[];
  strides?: readonly number[];
  pads?: readonly number[];
}

const int = (value: number): Attr => ({ kind: 'int', value });
const ints = (value: readonly number[]): Attr => ({ kind: 'ints', value });

/** Builds one graph; node and tensor names are deterministic (a counter per base name). */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();
  private scopes: string[] = [];
  private readonly constants = new Map<string, Tensor>();
  private readonly built = new Map<string, Tensor[]>();

  /** Runs `fn` with node names prefixed by `name/`, so profiles and viewers show the module each op belongs to. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private fresh(base: string): string {
    const prefix = this.scopes.length ? `${this.scopes.join('/')}/` : '';
    const stem = prefix + base;
    let k = this.counters.get(stem) ?? 0;
    let name = `${stem}_${k}`;
    while (this.used.has(name)) name = `${stem}_${++k}`;
    this.counters.set(stem, k + 1);
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new RangeError(`GraphBuilder: the name "${name}" is already used in this graph`);
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Tensor {
    const t = { name: this.claim(name), dtype, shape };
    this.inputs.push(t);
    return t;
  }

  initializer(name: string, dtype: DType, shape: readonly number[], data: TensorData): Tensor {
    return this.store(this.claim(name), dtype, shape, data);
  }

  private store(name: string, dtype: DType, shape: readonly number[], data: TensorData): Tensor {
    if (data.length !== numel(shape)) {
      throw new RangeError(`initializer "${name}": ${data.length} values for shape ${formatShape(shape)}`);
    }
    const t = { name, dtype, shape };
    this.initializers.set(name, { tensor: t, data });
    return t;
  }

  constant(
    values: readonly number[] | TensorData,
    shape: readonly number[] = [values.length],
    dtype: DType = 'float32',
  ): Tensor {
    const data =
      values instanceof Float32Array ||
      values instanceof Float64Array ||
      values instanceof BigInt64Array ||
      values instanceof Uint8Array ||
      values instanceof Uint16Array
        ? values
        : dtype === 'int64'
          ? BigInt64Array.from(values, (v) => BigInt(v))
          : dtype === 'uint8'
            ? Uint8Array.from(values)
            : dtype === 'float64'
              ? Float64Array.from(values)
              : Float32Array.from(values);
    // Equal constants are one initializer, so the nodes that read them can be shared too (see node()).
    const key = `${dtype}|${shape.join(',')}|${createHash('sha1')
      .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      .digest('base64')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const t = this.store(this.fresh('const'), dtype, shape, data);
    this.constants.set(key, t);
    return t;
  }

  scalar(value: number): Tensor {
    return this.constant([value], []);
  }

  ints(values: readonly number[]): Tensor {
    return this.constant(values, [values.length], 'int64');
  }

  /** Marks `t` as a graph output, under `name` when given (through an Identity if `t` has another name). */
  output(t: Tensor, name?: string): Tensor {
    let out = t;
    if (name !== undefined && name !== t.name) {
      out = { name: this.claim(name), dtype: t.dtype, shape: t.shape };
      this.nodes.push({ op: 'Identity', name: this.fresh('Identity'), inputs: [t], outputs: [out], attrs: {} });
    }
    this.outputs.push(out);
    return out;
  }

  /**
   * Adds a node, or returns the outputs of an identical one already built (same op, inputs and attributes): ONNX ops
   * are pure, so e.g. the transposes that the weight gradients of sibling convs take of their shared input are made
   * once.
   */
  private node(
    op: OpType,
    inputs: (Tensor | null)[],
    outs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, Attr> = {},
  ): Tensor[] {
    const key = JSON.stringify([
      op,
      inputs.map((t) => t?.name ?? ''),
      outs.length,
      Object.keys(attrs)
        .sort()
        .map((k) => [k, attrKey(attrs[k])]),
    ]);
    const known = this.built.get(key);
    if (known) return known;
    const outputs = this.addNode(op, inputs, outs, attrs);
    this.built.set(key, outputs);
    return outputs;
  }

  private addNode(
    op: OpType,
    inputs: (Tensor | null)[],
    outs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, Attr>,
  ): Tensor[] {
    const name = this.fresh(op);
    const outputs = outs.map((o, i) => ({ name: outs.length === 1 ? `${name}:out` : `${name}:out${i}`, ...o }));
    for (const o of outputs) this.claim(o.name);
    this.nodes.push({ op, name, inputs, outputs, attrs });
    return outputs;
  }

  private one(
    op: OpType,
    inputs: (Tensor | null)[],
    dtype: DType,
    shape: Shape,
    attrs: Record<string, Attr> = {},
  ): Tensor {
    return this.node(op, inputs, [{ dtype, shape }], attrs)[0];
  }

  /**
   * A Loop of `count` (an int64 scalar; `steps` its symbolic size) iterations. `body` builds, on this builder, one
   * iteration from the iteration number and the carried values (starting as `carried`); it may read any tensor built
   * so far, and must not add graph inputs or outputs. Returns the final carried values and each scan value stacked
   * over the iterations ([steps, ...shape]).
   */
  loop(
    count: Tensor,
    steps: Dim,
    carried: readonly Tensor[],
    body: (iteration: Tensor, carried: Tensor[]) => LoopBodyResult,
  ): LoopBodyResult {
    if (count.dtype !== 'int64' || count.shape.length !== 0)
      throw new TypeError(`Loop: the trip count "${count.name}" must be an int64 scalar`);
    const start = this.nodes.length;
    const shared = new Map(this.built);
    const name = this.fresh('Loop');
    const iteration: Tensor = { name: this.claim(`${name}/iteration`), dtype: 'int64', shape: [] };
    const condition: Tensor = { name: this.claim(`${name}/condition`), dtype: 'bool', shape: [] };
    const inputs = carried.map((t, i): Tensor => ({
      name: this.claim(`${name}/carried_${i}`),
      dtype: t.dtype,
      shape: t.shape,
    }));
    const result = body(iteration, inputs);
    result.carried.forEach((t, i) => {
      if (t.dtype !== carried[i].dtype || !sameShape(t.shape, carried[i].shape)) {
        throw new RangeError(
          `Loop: carried value ${i} "${t.name}" is ${t.dtype} ${formatShape(t.shape)}, it came in as ${carried[i].dtype} ${formatShape(carried[i].shape)}`,
        );
      }
    });
    // Each body output must be a tensor of its own made in the body, not a body input, an outer value or a repeat.
    const made = new Set(this.nodes.slice(start).flatMap((n) => n.outputs.map((t) => t.name)));
    const own = (t: Tensor) => {
      const fresh = made.has(t.name) ? t : this.addNode('Identity', [t], [{ dtype: t.dtype, shape: t.shape }], {})[0];
      made.delete(fresh.name);
      return fresh;
    };
    const outputs = [
      this.addNode('Identity', [condition], [{ dtype: 'bool', shape: [] }], {})[0],
      ...result.carried.map(own),
      ...result.scans.map(own),
    ];
    const graph: Subgraph = {
      name: `${name}_body`,
      nodes: this.nodes.splice(start),
      inputs: [iteration, condition, ...inputs],
      outputs,
    };
    // Nodes of the body cannot be shared with the outer graph.
    this.built.clear();
    for (const [k, v] of shared) this.built.set(k, v);
    const outs = this.addNode(
      'Loop',
      [count, null, ...carried],
      [
        ...carried.map((t) => ({ dtype: t.dtype, shape: t.shape })),
        ...result.scans.map((t) => ({ dtype: t.dtype, shape: [steps, ...t.shape] })),
      ],
      { body: { kind: 'graph', value: graph } },
    );
    return { carried: outs.slice(0, carried.length), scans: outs.slice(carried.length) };
  }

  // ---- elementwise ----

  add(a: Tensor, b: Tensor): Tensor {
    return this.binary('Add', a, b);
  }
  sub(a: Tensor, b: Tensor): Tensor {
    return this.binary('Sub', a, b);
  }
  mul(a: Tensor, b: Tensor): Tensor {
    return this.binary('Mul', a, b);
  }
  div(a: Tensor, b: Tensor): Tensor {
    return this.binary('Div', a, b);
  }
  /** Integer remainder (ONNX Mod, fmod=0): for int64 hashing, e.g. Dropout's masks. */
  mod(a: Tensor, b: Tensor): Tensor {
    return this.binary('Mod', a, b);
  }
  pow(a: Tensor, b: Tensor): Tensor {
    return this.binary('Pow', a, b);
  }

  equal(a: Tensor, b: Tensor): Tensor {
    this.checkSameDtype('Equal', a, b);
    return this.one('Equal', [a, b], 'bool', broadcast('Equal', a, b));
  }

  greater(a: Tensor, b: Tensor): Tensor {
    this.checkSameDtype('Greater', a, b);
    return this.one('Greater', [a, b], 'bool', broadcast('Greater', a, b));
  }

  where(cond: Tensor, x: Tensor, y: Tensor): Tensor {
    if (cond.dtype !== 'bool') throw new TypeError(`Where: condition "${cond.name}" must be bool, got ${cond.dtype}`);
    this.checkSameDtype('Where', x, y);
    const shape = broadcastShapes('Where', broadcastShapes('Where', cond.shape, x.shape), y.shape);
    return this.one('Where', [cond, x, y], x.dtype, shape);
  }

  sigmoid(x: Tensor): Tensor {
    return this.one('Sigmoid', [x], x.dtype, x.shape);
  }

  tanh(x: Tensor): Tensor {
    return this.one('Tanh', [x], x.dtype, x.shape);
  }

  leakyRelu(x: Tensor, alpha: number): Tensor {
    return this.one('LeakyRelu', [x], x.dtype, x.shape, { alpha: { kind: 'float', value: alpha } });
  }

  /** Clip to [min, max] (F.relu6 is Clip(0, 6)), each a number or a scalar tensor; a bound left out is none. */
  clip(x: Tensor, min: number | Tensor | null, max: number | Tensor | null): Tensor {
    const bound = (v: number | Tensor | null) => (typeof v === 'number' ? this.constant([v], [], x.dtype) : v);
    const inputs = [x, bound(min), bound(max)];
    while (inputs[inputs.length - 1] === null) inputs.pop();
    return this.node('Clip', inputs, [{ dtype: x.dtype, shape: x.shape }], {})[0];
  }

  relu(x: Tensor): Tensor {
    return this.unary('Relu', x);
  }
  neg(x: Tensor): Tensor {
    return this.unary('Neg', x);
  }
  sqrt(x: Tensor): Tensor {
    return this.unary('Sqrt', x);
  }
  log(x: Tensor): Tensor {
    return this.one('Log', [x], x.dtype, x.shape);
  }

  exp(x: Tensor): Tensor {
    return this.unary('Exp', x);
  }

  cast(x: Tensor, to: DType): Tensor {
    return this.one('Cast', [x], to, x.shape, { to: int(ONNX_DTYPE[to]) });
  }

  // ---- shapes and layout ----

  shapeOf(x: Tensor): Tensor {
    return this.one('Shape', [x], 'int64', [x.shape.length]);
  }

  /** The element count of `x` as an int64 scalar. */
  size(x: Tensor): Tensor {
    return this.one('Size', [x], 'int64', []);
  }

  /** The int64 sequence start, start + delta, ... below `limit` (scalars); `length` is its static length, if known. */
  range(start: Tensor, limit: Tensor, delta: Tensor, length: Dim): Tensor {
    for (const t of [start, limit, delta]) {
      if (t.dtype !== 'int64' || t.shape.length !== 0)
        throw new TypeError(`Range: "${t.name}" must be an int64 scalar`);
    }
    return this.one('Range', [start, limit, delta], 'int64', [length]);
  }

  /** A float tensor of `value` with the runtime shape given by the int64 tensor `shape`; `like` gives its static shape. */
  constantOfShape(shape: Tensor, like: Shape, value = 0): Tensor {
    return this.one('ConstantOfShape', [shape], 'float32', like, {
      value: { kind: 'tensor', dtype: 'float32', shape: [1], data: Float32Array.of(value) },
    });
  }

  /** Reshape to a static target; 0 copies the input's dimension and one -1 is inferred, as in ONNX. */
  reshape(x: Tensor, target: readonly number[]): Tensor {
    const shape: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
    const inferred = shape.indexOf(-1);
    if (inferred >= 0) {
      // Symbolic dimensions are products such as "N" or "N*1440": match their symbols on both sides, and let the
      // symbols that do not stay in place fold into the inferred dimension.
      const have = factorize(x.shape);
      const keep = factorize(shape.filter((_, i) => i !== inferred));
      const rest = [...have.symbols];
      for (const sym of keep.symbols) {
        const k = rest.indexOf(sym);
        if (k < 0)
          throw new RangeError(`Reshape: cannot infer -1 of ${formatShape(target)} from ${formatShape(x.shape)}`);
        rest.splice(k, 1);
      }
      if (have.size % keep.size !== 0)
        throw new RangeError(`Reshape: cannot infer -1 of ${formatShape(target)} from ${formatShape(x.shape)}`);
      const size = have.size / keep.size;
      shape[inferred] = rest.length ? [...rest, ...(size === 1 ? [] : [size])].join('*') : size;
    }
    if (isStatic(x.shape) && isStatic(shape) && numel(x.shape) !== numel(shape)) {
      throw new RangeError(`Reshape: input "${x.name}" ${formatShape(x.shape)} cannot become ${formatShape(shape)}`);
    }
    return this.one('Reshape', [x, this.ints(target)], x.dtype, shape);
  }

  /** Reshape `x` to the runtime shape of `like` (same element count). */
  reshapeLike(x: Tensor, like: Tensor): Tensor {
    return this.one('Reshape', [x, this.shapeOf(like)], x.dtype, like.shape);
  }

  flatten(x: Tensor, axis = 1): Tensor {
    const outer = x.shape.slice(0, axis);
    const inner = x.shape.slice(axis);
    if (!isStatic(inner))
      throw new RangeError(
        `Flatten: dimensions after axis ${axis} of "${x.name}" ${formatShape(x.shape)} must be static`,
      );
    const head: Dim = outer.length === 1 ? outer[0] : isStatic(outer) ? numel(outer) : outer.join('*');
    return this.one('Flatten', [x], x.dtype, [head, numel(inner)], { axis: int(axis) });
  }

  transpose(x: Tensor, perm: readonly number[]): Tensor {
    if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      throw new RangeError(`Transpose: perm ${formatShape(perm)} does not fit "${x.name}" ${formatShape(x.shape)}`);
    }
    return this.one(
      'Transpose',
      [x],
      x.dtype,
      perm.map((p) => x.shape[p]),
      { perm: ints(perm) },
    );
  }

  unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
    const shape: Dim[] = [...x.shape];
    for (const a of [...axes].sort((p, q) => p - q)) shape.splice(a, 0, 1);
    return this.one('Unsqueeze', [x, this.ints(axes)], x.dtype, shape);
  }

  expand(x: Tensor, shape: Tensor, staticShape: Shape): Tensor {
    return this.one('Expand', [x, shape], x.dtype, broadcastShapes('Expand', x.shape, staticShape));
  }

  concat(xs: readonly Tensor[], axis: number): Tensor {
    if (xs.length === 0) throw new RangeError('Concat: needs at least one input');
    const [first] = xs;
    const rank = first.shape.length;
    let size = 0;
    for (const x of xs) {
      this.checkSameDtype('Concat', first, x);
      const ok = x.shape.length === rank && x.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!ok)
        throw new RangeError(
          `Concat: input "${x.name}" ${formatShape(x.shape)} does not match "${first.name}" ${formatShape(first.shape)} off axis ${axis}`,
        );
      const d = x.shape[axis];
      if (typeof d !== 'number') throw new RangeError(`Concat: axis ${axis} of "${x.name}" must be static`);
      size += d;
    }
    const shape = [...first.shape];
    shape[axis] = size;
    return this.one('Concat', [...xs], first.dtype, shape, { axis: int(axis) });
  }

  split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
    if (x.shape[axis] !== sizes.reduce((a, b) => a + b, 0)) {
      throw new RangeError(
        `Split: sizes ${formatShape(sizes)} do not add up to axis ${axis} of "${x.name}" ${formatShape(x.shape)}`,
      );
    }
    const outs = sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { dtype: x.dtype, shape };
    });
    return this.node('Split', [x, this.ints(sizes)], outs, { axis: int(axis) });
  }

  slice(
    x: Tensor,
    starts: readonly number[],
    ends: readonly number[],
    axes: readonly number[],
    steps?: readonly number[],
  ): Tensor {
    const shape = [...x.shape];
    axes.forEach((a, i) => {
      const d = shape[a];
      if (typeof d !== 'number') throw new RangeError(`Slice: axis ${a} of "${x.name}" must be static`);
      const step = steps ? steps[i] : 1;
      if (step < 1) throw new RangeError(`Slice: step ${step} must be positive`);
      const span = Math.min(ends[i], d) - Math.max(starts[i], 0);
      shape[a] = Math.max(0, Math.ceil(span / step));
    });
    const inputs = [x, this.ints(starts), this.ints(ends), this.ints(axes)];
    if (steps && steps.some((s) => s !== 1)) inputs.push(this.ints(steps));
    return this.one('Slice', inputs, x.dtype, shape);
  }

  /** Zero padding; `pads` as ONNX orders them: all begins, then all ends. */
  pad(x: Tensor, pads: readonly number[]): Tensor {
    const r = x.shape.length;
    if (pads.length !== 2 * r) throw new RangeError(`Pad: ${pads.length} pads for rank ${r} "${x.name}"`);
    const shape = x.shape.map((d, i) =>
      pads[i] === 0 && pads[i + r] === 0 ? d : (d as number) + pads[i] + pads[i + r],
    );
    return this.one('Pad', [x, this.ints(pads)], x.dtype, shape);
  }

  // ---- reductions ----

  reduceSum(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.one('ReduceSum', [x, this.ints(axes)], x.dtype, reducedShape(x.shape, axes, keepdims), {
      keepdims: int(keepdims ? 1 : 0),
    });
  }

  reduceMax(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.one('ReduceMax', [x], x.dtype, reducedShape(x.shape, axes, keepdims), {
      axes: ints(axes),
      keepdims: int(keepdims ? 1 : 0),
    });
  }

  reduceMean(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.one('ReduceMean', [x], x.dtype, reducedShape(x.shape, axes, keepdims), {
      axes: ints(axes),
      keepdims: int(keepdims ? 1 : 0),
    });
  }

  argMax(x: Tensor, axis: number, keepdims = false): Tensor {
    return this.one('ArgMax', [x], 'int64', reducedShape(x.shape, [axis], keepdims), {
      axis: int(axis),
      keepdims: int(keepdims ? 1 : 0),
    });
  }

  logSoftmax(x: Tensor, axis = -1): Tensor {
    return this.one('LogSoftmax', [x], x.dtype, x.shape, { axis: int(axis) });
  }

  softmax(x: Tensor, axis = -1): Tensor {
    return this.one('Softmax', [x], x.dtype, x.shape, { axis: int(axis) });
  }

  // ---- linear algebra ----

  /** Y = alpha * A' * B' + beta * C, with A' and B' optionally transposed. */
  gemm(
    a: Tensor,
    b: Tensor,
    c: Tensor | null,
    opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  ): Tensor {
    const [m, ka] = opts.transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
    const [kb, n] = opts.transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
    if (a.shape.length !== 2 || b.shape.length !== 2 || ka !== kb) {
      throw new RangeError(
        `Gemm: A "${a.name}" ${formatShape(a.shape)} and B "${b.name}" ${formatShape(b.shape)} do not multiply (transA=${!!opts.transA}, transB=${!!opts.transB})`,
      );
    }
    if (c) broadcastShapes('Gemm', c.shape, [m, n]);
    const attrs: Record<string, Attr> = {};
    if (opts.transA) attrs.transA = int(1);
    if (opts.transB) attrs.transB = int(1);
    if (opts.alpha !== undefined) attrs.alpha = { kind: 'float', value: opts.alpha };
    if (opts.beta !== undefined) attrs.beta = { kind: 'float', value: opts.beta };
    return this.one('Gemm', c ? [a, b, c] : [a, b], a.dtype, [m, n], attrs);
  }

  matMul(a: Tensor, b: Tensor): Tensor {
    const ra = a.shape.length;
    const rb = b.shape.length;
    if (ra < 2 || rb < 2 || a.shape[ra - 1] !== b.shape[rb - 2]) {
      throw new RangeError(
        `MatMul: "${a.name}" ${formatShape(a.shape)} and "${b.name}" ${formatShape(b.shape)} do not multiply`,
      );
    }
    const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.one('MatMul', [a, b], a.dtype, [...batch, a.shape[ra - 2], b.shape[rb - 1]]);
  }

  // ---- convolution and pooling ----

  conv(x: Tensor, w: Tensor, bias: Tensor | null, opts: ConvOptions = {}): Tensor {
    const { pads, strides, dilations, group } = convDefaults(opts);
    const [n, c, h, wd] = rank4('Conv', 'X', x, true);
    const [m, cg, kh, kw] = rank4('Conv', 'W', w, true);
    // A symbolic channel count is fine where X and W name the same one (a weight gradient contracts over the batch).
    const sameSymbol = group === 1 && typeof c === 'string' && c === cg;
    if ((!sameSymbol && c !== cg * group) || (m as number) % group !== 0) {
      throw new RangeError(
        `Conv: X "${x.name}" ${formatShape(x.shape)} has ${c} channels but W "${w.name}" ${formatShape(w.shape)} expects ${cg}x${group}`,
      );
    }
    if (bias && !sameShape(bias.shape, [m]))
      throw new RangeError(`Conv: bias "${bias.name}" ${formatShape(bias.shape)} should be [${m}]`);
    const oh = convOut(h, kh, pads[0], pads[2], strides[0], dilations[0]);
    const ow = convOut(wd, kw, pads[1], pads[3], strides[1], dilations[1]);
    if (oh < 1 || ow < 1)
      throw new RangeError(
        `Conv: W "${w.name}" ${kh}x${kw} kernel is larger than its padded input ${formatShape(x.shape)}`,
      );
    return this.one(
      'Conv',
      bias ? [x, w, bias] : [x, w],
      x.dtype,
      [n, m, oh, ow],
      convAttrs(w, pads, strides, dilations, group),
    );
  }

  /** Transposed convolution; `outputShape` fixes the spatial size where strides make it ambiguous. */
  convTranspose(x: Tensor, w: Tensor, opts: ConvOptions & { outputPadding?: readonly number[] } = {}): Tensor {
    const { pads, strides, dilations, group } = convDefaults(opts);
    const outPad = opts.outputPadding ?? [0, 0];
    const [n, c, h, wd] = rank4('ConvTranspose', 'X', x);
    const [cw, mg, kh, kw] = rank4('ConvTranspose', 'W', w);
    if (c !== cw)
      throw new RangeError(
        `ConvTranspose: X "${x.name}" ${formatShape(x.shape)} has ${c} channels but W "${w.name}" ${formatShape(w.shape)} has ${cw}`,
      );
    const oh = strides[0] * (h - 1) + outPad[0] + (kh - 1) * dilations[0] + 1 - pads[0] - pads[2];
    const ow = strides[1] * (wd - 1) + outPad[1] + (kw - 1) * dilations[1] + 1 - pads[1] - pads[3];
    const attrs = convAttrs(w, pads, strides, dilations, group);
    if (outPad.some((p) => p !== 0)) attrs.output_padding = ints(outPad);
    return this.one('ConvTranspose', [x, w], x.dtype, [n, mg * group, oh, ow], attrs);
  }

  maxPool(x: Tensor, opts: PoolOptions): Tensor {
    return this.node('MaxPool', [x], [{ dtype: x.dtype, shape: poolShape('MaxPool', x, opts) }], poolAttrs(opts))[0];
  }

  /** MaxPool that also returns the flat (N·C·H·W) index of each maximum, for its gradient. */
  maxPoolWithIndices(x: Tensor, opts: PoolOptions): [Tensor, Tensor] {
    const shape = poolShape('MaxPool', x, opts);
    const [y, i] = this.node(
      'MaxPool',
      [x],
      [
        { dtype: x.dtype, shape },
        { dtype: 'int64', shape },
      ],
      poolAttrs(opts),
    );
    return [y, i];
  }

  /**
   * MaxUnpool: a zero tensor of `outputShape` (whose static shape is `like`'s) with each value of `x` written at its
   * flat (N·C·H·W) index in `indices`, as MaxPool's Indices output gives them.
   */
  maxUnpool(x: Tensor, indices: Tensor, outputShape: Tensor, like: Tensor, opts: PoolOptions): Tensor {
    if (indices.dtype !== 'int64' || !sameShape(indices.shape, x.shape)) {
      throw new TypeError(`MaxUnpool: indices "${indices.name}" must be int64 shaped like X ${formatShape(x.shape)}`);
    }
    return this.one('MaxUnpool', [x, indices, outputShape], x.dtype, like.shape, poolAttrs(opts));
  }

  /** SpaceToDepth: [N, C, H, W] → [N, b·b·C, H/b, W/b]; channel (a·b + c)·C + k holds x[:, k, b·i + a, b·j + c]. */
  spaceToDepth(x: Tensor, blocksize: number): Tensor {
    const [n, c, h, w] = rank4('SpaceToDepth', 'X', x);
    if ([c, h, w].some((d) => typeof d !== 'number') || h % blocksize || w % blocksize) {
      throw new RangeError(
        `SpaceToDepth: X "${x.name}" ${formatShape(x.shape)} needs static C, H, W and H, W divisible by ${blocksize}`,
      );
    }
    const shape = [n, blocksize * blocksize * c, h / blocksize, w / blocksize];
    return this.one('SpaceToDepth', [x], x.dtype, shape, { blocksize: int(blocksize) });
  }

  /**
   * AveragePool; `countIncludePad` defaults to PyTorch's avg_pool2d (true), not ONNX's. Without padding the attribute
   * means nothing and is left out, since runtimes differ on it.
   */
  averagePool(x: Tensor, opts: PoolOptions & { countIncludePad?: boolean }): Tensor {
    const attrs = poolAttrs(opts);
    if (opts.pads?.some((p) => p !== 0)) attrs.count_include_pad = int(opts.countIncludePad === false ? 0 : 1);
    return this.one('AveragePool', [x], x.dtype, poolShape('AveragePool', x, opts), attrs);
  }

  /** Gather along `axis` with int64 `indices` (a constant index table, in the gradients that use it). */
  gather(x: Tensor, indices: Tensor, axis: number): Tensor {
    if (indices.dtype !== 'int64') throw new TypeError(`Gather: indices "${indices.name}" must be int64`);
    const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    return this.one('Gather', [x, indices], x.dtype, shape, { axis: int(axis) });
  }

  scatterElements(
    data: Tensor,
    indices: Tensor,
    updates: Tensor,
    axis: number,
    reduction: 'none' | 'add' = 'none',
  ): Tensor {
    if (indices.dtype !== 'int64') throw new TypeError(`ScatterElements: indices "${indices.name}" must be int64`);
    if (!sameShape(indices.shape, updates.shape)) {
      throw new RangeError(
        `ScatterElements: indices ${formatShape(indices.shape)} and updates ${formatShape(updates.shape)} differ`,
      );
    }
    const attrs: Record<string, Attr> = { axis: int(axis) };
    if (reduction !== 'none') attrs.reduction = { kind: 'string', value: reduction };
    return this.one('ScatterElements', [data, indices, updates], data.dtype, data.shape, attrs);
  }

  // ---- helpers ----

  private unary(op: OpType, x: Tensor): Tensor {
    return this.one(op, [x], x.dtype, x.shape);
  }

  private binary(op: OpType, a: Tensor, b: Tensor): Tensor {
    this.checkSameDtype(op, a, b);
    return this.one(op, [a, b], a.dtype, broadcast(op, a, b));
  }

  private checkSameDtype(op: string, a: Tensor, b: Tensor): void {
    if (a.dtype !== b.dtype) throw new TypeError(`${op}: "${a.name}" is ${a.dtype} but "${b.name}" is ${b.dtype}`);
  }
}

function attrKey(a: Attr): unknown {
  if (a.kind === 'graph') return a.value.name;
  return a.kind === 'tensor' ? [a.dtype, a.shape, Array.from(a.data as ArrayLike<number | bigint>, String)] : a.value;
}

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, uint8: 2, int64: 7, bool: 9, float16: 10, float64: 11 };

/** A shape's element count as its symbols times a static size: [N, 3, "M*4"] is N·M·12. */
function factorize(dims: Shape): { symbols: string[]; size: number } {
  const symbols: string[] = [];
  let size = 1;
  for (const d of dims) {
    for (const part of String(d).split('*')) {
      if (/^\d+$/.test(part)) size *= Number(part);
      else symbols.push(part);
    }
  }
  return { symbols: symbols.sort(), size };
}

function broadcast(op: string, a: Tensor, b: Tensor): Shape {
  try {
    return broadcastShapes(op, a.shape, b.shape);
  } catch {
    throw new RangeError(
      `${op}: "${a.name}" ${formatShape(a.shape)} and "${b.name}" ${formatShape(b.shape)} do not broadcast`,
    );
  }
}

/** Numpy-style broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): Shape {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new RangeError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
  }
  return out;
}

function reducedShape(s: Shape, axes: readonly number[], keepdims: boolean): Shape {
  const norm = axes.map((a) => (a < 0 ? a + s.length : a));
  if (norm.some((a) => a < 0 || a >= s.length))
    throw new RangeError(`reduce: axes ${formatShape(axes)} out of range for ${formatShape(s)}`);
  return keepdims ? s.map((d, i) => (norm.includes(i) ? 1 : d)) : s.filter((_, i) => !norm.includes(i));
}

function rank4(op: string, role: string, t: Tensor, symbolicChannels = false): [Dim, number, number, number] {
  if (t.shape.length !== 4)
    throw new RangeError(`${op}: ${role} "${t.name}" must be rank 4 (NCHW), got ${formatShape(t.shape)}`);
  for (const d of t.shape.slice(symbolicChannels ? 2 : 1)) {
    if (typeof d !== 'number')
      throw new RangeError(
        `${op}: ${role} "${t.name}" ${formatShape(t.shape)} needs static ${symbolicChannels ? 'H, W' : 'C, H, W'}`,
      );
  }
  return t.shape as [Dim, number, number, number];
}

function convDefaults(o: ConvOptions) {
  const pads = o.pads ?? [0, 0, 0, 0];
  const strides = o.strides ?? [1, 1];
  const dilations = o.dilations ?? [1, 1];
  const group = o.group ?? 1;
  if (pads.length !== 4 || strides.length !== 2 || dilations.length !== 2)
    throw new RangeError('Conv: pads need 4 values, strides and dilations 2');
  if ([...pads].some((p) => p < 0) || [...strides, ...dilations].some((s) => s < 1) || group < 1) {
    throw new RangeError(
      `Conv: invalid pads ${formatShape(pads)}, strides ${formatShape(strides)}, dilations ${formatShape(dilations)} or group ${group}`,
    );
  }
  return { pads, strides, dilations, group };
}

function convAttrs(
  w: Tensor,
  pads: readonly number[],
  strides: readonly number[],
  dilations: readonly number[],
  group: number,
): Record<string, Attr> {
  const attrs: Record<string, Attr> = {
    kernel_shape: ints(w.shape.slice(2) as number[]),
    pads: ints(pads),
    strides: ints(strides),
  };
  if (dilations.some((d) => d !== 1)) attrs.dilations = ints(dilations);
  if (group !== 1) attrs.group = int(group);
  return attrs;
}

function convOut(size: number, k: number, p0: number, p1: number, s: number, d: number): number {
  return Math.floor((size + p0 + p1 - d * (k - 1) - 1) / s) + 1;
}

function poolShape(op: string, x: Tensor, o: PoolOptions): Shape {
  const [n, c, h, w] = rank4(op, 'X', x);
  const s = o.strides ?? o.kernel;
  const p = o.pads ?? [0, 0, 0, 0];
  if (o.kernel.length !== 2 || s.length !== 2 || p.length !== 4)
    throw new RangeError(`${op}: kernel and strides need 2 values, pads 4`);
  if (p[0] >= o.kernel[0] || p[1] >= o.kernel[1])
    throw new RangeError(`${op}: pads ${formatShape(p)} must be smaller than kernel ${formatShape(o.kernel)}`);
  const out: Shape = [n, c, convOut(h, o.kernel[0], p[0], p[2], s[0], 1), convOut(w, o.kernel[1], p[1], p[3], s[1], 1)];
  if ((out[2] as number) < 1 || (out[3] as number) < 1)
    throw new RangeError(
      `${op}: X "${x.name}" ${formatShape(x.shape)} is smaller than its ${formatShape(o.kernel)} kernel`,
    );
  return out;
}

function poolAttrs(o: PoolOptions): Record<string, Attr> {
  return { kernel_shape: ints(o.kernel), strides: ints(o.strides ?? o.kernel), pads: ints(o.pads ?? [0, 0, 0, 0]) };
}
