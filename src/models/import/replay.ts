/**
 * The replay of an imported file's nodes onto a GraphBuilder: the values by name (graph tensors, or values known at
 * import time), and the context each op's emitter sees (ops.ts).
 */
import { UsageError } from '../../errors';
import { GraphBuilder } from '../../onnx/builder';
import { NodeAttr, ParsedModel, ParsedNode, StoredTensor } from '../../onnx/model';
import { Dim, Tensor } from '../../onnx/tensor';
import { BufferSpec, Forward, Module, ParamSpec } from '../module';
import { ImportedGraph } from './graph';
import { FOLDERS, IMPORTERS, knownOf } from './ops';

/** A value known at import time: a small int64 or float32 tensor; an int entry may be a symbolic dimension. */
export interface Known {
  data: (number | string)[];
  shape: number[];
  dtype: 'int64' | 'float32';
  /** The initializer it was read from, so that a float one used as data stays an initializer of that name. */
  initializer?: StoredTensor;
}

export type Value = Tensor | Known;

export const isKnown = (v: Value): v is Known => !('name' in v);

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
export class Replay {
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

/** What an op's emitter sees: its node, attributes, and inputs as tensors or known values. */
export class OpContext {
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

  /** Whether input `i` is known at import time (a constant, a shape). */
  knows(i: number): boolean {
    const v = this.inputs[i];
    return !!v && isKnown(v);
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

/** A value a caller of `replayNodes` knows at import time: a setting such as a shape, axes or pads. */
export interface KnownInput {
  data: number[];
  shape: number[];
  dtype: 'int64' | 'float32';
}

/**
 * The outputs of `m`'s nodes replayed onto the forward `f` from `inputs` (graph tensors, or values known at import
 * time): how ONNX's backend node tests run each op through the importer (test/onnx-node.test.ts). `where` names the
 * model in errors.
 */
export function replayNodes(
  f: Forward,
  m: ParsedModel,
  inputs: Map<string, Tensor | KnownInput>,
  where: string,
): Tensor[] {
  const consumed = new Set([...m.nodes.flatMap((n) => n.inputs), ...m.outputs.map((o) => o.name)]);
  const graph: ImportedGraph = {
    where,
    input: m.inputs[0] ?? { name: '', dtype: 'float32', shape: [] },
    output: m.outputs[0],
    shape: { input: [1, 1, 1], classes: 1 },
    params: [],
    weights: new Map(),
    buffers: [],
    nodes: m.nodes,
    initializers: m.initializers,
    consumed,
  };
  const replay = new Replay(f, graph, new Map(inputs), new Map());
  for (const node of m.nodes) replay.run(node);
  return m.outputs.map((o) => replay.tensor(o.name, 'output'));
}
