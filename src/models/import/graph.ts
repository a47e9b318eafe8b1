/**
 * What an imported ONNX classifier is: its image input, its logits output, its parameters (the float initializers
 * that feed data inputs, named as PyTorch's state_dict keys) and buffers (BatchNorm's running statistics, Dropout's
 * random state), checked once; and whether ingraph can train it.
 */
import { UsageError } from '../../errors';
import { METADATA } from '../../metadata';
import { ParsedModel, ParsedNode, StoredTensor, ValueSummary } from '../../onnx/model';
import { numel } from '../../onnx/tensor';
import { BufferSpec, ParamSpec, Params } from '../module';
import { IMPORTERS, RANDOM_STATE } from './ops';

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
  const net = m.metadata[METADATA.model];
  if (net !== undefined && m.inputs[0]?.dtype === 'uint8') {
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
