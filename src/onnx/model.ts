/** ONNX ModelProto I/O: serialise a GraphBuilder (opset 17, IR 8) and read ONNX files back. */
/* eslint-disable @typescript-eslint/no-unsafe-argument -- onnx-proto types its int64 fields with the long package, whose types are not installed */
import { onnx } from 'onnx-proto';
import { Attr, GraphBuilder, Node, ONNX_DTYPE } from './builder';
import { DType, Dim, Tensor, TensorData } from './tensor';
import { PACKAGE_VERSION } from '../version';
import { UsageError } from '../errors';

/** The ONNX opset of every graph ingraph emits. */
export const OPSET = 17;

/** The opsets an inference model can be written for (older runtimes and converters want 11 to 13)... */
export const EXPORT_OPSETS = [11, 12, 13, 14, 15, 16, 17] as const;
/** ...the IR version that goes with each (onnx/helper.py's VERSION_TABLE)... */
const IR_OF_OPSET: Record<number, number> = { 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8 };
/** ...and the ops whose inputs changed at opset 13 (axes became an input), which an older opset cannot take as built. */
const AXES_AS_INPUT_SINCE_13 = new Set(['ReduceSum', 'Squeeze', 'Unsqueeze', 'Split']);

export interface ModelInfo {
  graphName: string;
  /** The ai.onnx opset to declare, one of EXPORT_OPSETS (default OPSET); the graph must mean the same there. */
  opset?: number;
  docString?: string;
  metadata?: Record<string, string>;
}

const DTYPE_OF: Record<number, DType> = { 1: 'float32', 2: 'uint8', 7: 'int64', 9: 'bool' };

function valueInfo(t: Tensor): onnx.IValueInfoProto {
  return {
    name: t.name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[t.dtype],
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, dtype: DType, shape: readonly number[], data: TensorData): onnx.ITensorProto {
  // raw_data is little-endian by the ONNX spec; so is every platform onnxruntime-node ships for.
  return { name, dataType: ONNX_DTYPE[dtype], dims: [...shape], rawData: bytesOf(data) };
}

function attrProto(name: string, a: Attr): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: Buffer.from(a.value) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', a.dtype, a.shape, a.data) };
    case 'graph':
      return { name, type: T.GRAPH, g: graphProto(a.value.name, a.value) };
  }
}

/** A graph's nodes, inputs, outputs and the value info of its intermediate tensors (a Loop body's too). */
function graphProto(
  name: string,
  g: { nodes: readonly Node[]; inputs: readonly Tensor[]; outputs: readonly Tensor[] },
): onnx.IGraphProto {
  const declared = new Set([...g.inputs, ...g.outputs].map((t) => t.name));
  const intermediates = g.nodes.flatMap((n) => n.outputs).filter((t) => !declared.has(t.name));
  return {
    name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.op,
      input: n.inputs.map((t) => (t ? t.name : '')),
      output: n.outputs.map((t) => t.name),
      attribute: Object.keys(n.attrs)
        .sort()
        .map((k) => attrProto(k, n.attrs[k])),
    })),
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    valueInfo: intermediates.map(valueInfo),
  };
}

function checkOpset(b: GraphBuilder, opset: number, graphName: string): void {
  if (!(EXPORT_OPSETS as readonly number[]).includes(opset))
    throw new RangeError(`opset ${opset}: ingraph writes opsets ${EXPORT_OPSETS[0]} to ${OPSET}`);
  const changed = opset < 13 ? b.nodes.find((n) => AXES_AS_INPUT_SINCE_13.has(n.op)) : undefined;
  if (changed)
    throw new RangeError(
      `opset ${opset}: ${graphName} uses ${changed.op} with axes as an input, which needs opset 13 or later`,
    );
}

function toModelProto(b: GraphBuilder, info: ModelInfo): onnx.ModelProto {
  const opset = info.opset ?? OPSET;
  checkOpset(b, opset, info.graphName);
  const graph: onnx.IGraphProto = {
    ...graphProto(info.graphName, b),
    initializer: [...b.initializers.values()].map(({ tensor, data }) =>
      tensorProto(tensor.name, tensor.dtype, tensor.shape as number[], data),
    ),
  };
  return onnx.ModelProto.create({
    irVersion: IR_OF_OPSET[opset],
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'ingraph',
    producerVersion: PACKAGE_VERSION,
    docString: info.docString ?? '',
    graph,
    metadataProps: Object.entries(info.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
}

/** Serialises a built graph as an ONNX ModelProto (opset 17, IR 8). */
export function encodeModel(b: GraphBuilder, info: ModelInfo): Uint8Array {
  return onnx.ModelProto.encode(toModelProto(b, info)).finish();
}

// ---------------------------------------------------------------- reading

/**
 * An initializer. Those of ingraph's types are decoded; any other type (int8 weights of a quantized model, float16)
 * is named (`int8`, `float16`, ...) and its data left undecoded as the stored bytes, for the runtime to read.
 */
export interface StoredTensor {
  name: string;
  /** A DType, or the name of another ONNX type. */
  dtype: string;
  shape: number[];
  data: TensorData;
}

/** ONNX TensorProto data types by number, for the types ingraph does not decode. */
const ONNX_TYPE_NAMES: Record<number, string> = {
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  8: 'string',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
  17: 'float8e4m3fn',
  18: 'float8e4m3fnuz',
  19: 'float8e5m2',
  20: 'float8e5m2fnuz',
  21: 'uint4',
  22: 'int4',
};

const typeName = (n: number): string => DTYPE_OF[n] ?? ONNX_TYPE_NAMES[n] ?? `type${n}`;

export interface ValueSummary {
  name: string;
  /** A DType, or the name of another ONNX type. */
  dtype: string;
  shape: Dim[];
}

/** A node attribute as read from a file (the kinds importers use; others are `other`). */
export type NodeAttr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: StoredTensor }
  | { kind: 'other' };

/** A node as read from a file. */
export interface ParsedNode {
  op: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, NodeAttr>;
}

/** What ingraph reads of an ONNX model. */
export interface ParsedModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producer: string;
  graphName: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  initializers: Map<string, StoredTensor>;
  metadata: Record<string, string>;
  nodes: ParsedNode[];
}

/** Raised for bytes that are not a loadable ONNX model; the CLI turns it into a one-line usage error. */
export class ModelFormatError extends UsageError {}

function num(v: number | { toString(): string } | null | undefined): number {
  return v == null ? 0 : Number(v);
}

function summary(v: onnx.IValueInfoProto): ValueSummary {
  const tt = v.type?.tensorType;
  const elem = num(tt?.elemType);
  return {
    name: v.name ?? '',
    dtype: typeName(elem),
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : num(d.dimValue))),
  };
}

const ELEMENT_BYTES: Record<DType, number> = { float32: 4, uint8: 1, int64: 8, bool: 1, float64: 8, float16: 2 };

/** How many values the tensor's data fields hold, checked against its shape before anything is allocated. */
function valuesPresent(t: onnx.ITensorProto, dtype: DType, name: string, where: string): number {
  const raw = t.rawData?.length ?? 0;
  if (raw > 0) {
    if (raw % ELEMENT_BYTES[dtype] !== 0)
      throw new ModelFormatError(
        `${where}: tensor "${name}" has ${raw} bytes of ${dtype} data, not a whole number of values`,
      );
    return raw / ELEMENT_BYTES[dtype];
  }
  return (dtype === 'float32' ? t.floatData : dtype === 'int64' ? t.int64Data : t.int32Data)?.length ?? 0;
}

function storedTensor(t: onnx.ITensorProto, where: string): StoredTensor {
  const name = t.name ?? '';
  const dtype = DTYPE_OF[num(t.dataType)];
  const shape = (t.dims ?? []).map(num);
  // A hostile file can claim any shape: the element count must be a sane integer matching the values present.
  const count = shape.reduce((a, b) => a * b, 1);
  const sane = shape.every((d) => Number.isSafeInteger(d) && d >= 0) && Number.isSafeInteger(count);
  if (num(t.dataLocation) === Number(onnx.TensorProto.DataLocation.EXTERNAL) || (t.externalData?.length ?? 0) > 0) {
    throw new ModelFormatError(
      `${where}: tensor "${name}" keeps its data in an external file; ingraph reads only self-contained models`,
    );
  }
  if (!dtype) {
    if (!sane) throw new ModelFormatError(`${where}: tensor "${name}" has the impossible shape [${shape}]`);
    return { name, dtype: typeName(num(t.dataType)), shape, data: new Uint8Array(t.rawData ?? []) };
  }
  const present = valuesPresent(t, dtype, name, where);
  if (!sane || count !== present) {
    throw new ModelFormatError(`${where}: tensor "${name}" holds ${present} values for shape [${shape}]`);
  }
  let data: TensorData;
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const copy = new Uint8Array(raw); // aligned copy, detached from the protobuf buffer
    data =
      dtype === 'float32' ? new Float32Array(copy.buffer) : dtype === 'int64' ? new BigInt64Array(copy.buffer) : copy;
  } else if (dtype === 'float32') {
    data = Float32Array.from(t.floatData ?? []);
  } else if (dtype === 'int64') {
    data = BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(String(v))));
  } else {
    data = Uint8Array.from(t.int32Data ?? []);
  }
  return { name, dtype, shape, data };
}

/** A serialised TensorProto (as ONNX's test data stores inputs and outputs), checked as initializers are. */
export function parseTensor(bytes: Uint8Array, where: string): StoredTensor {
  let t: onnx.TensorProto;
  try {
    t = onnx.TensorProto.decode(bytes);
  } catch (e) {
    throw new ModelFormatError(`${where}: not an ONNX tensor (${(e as Error).message})`);
  }
  return storedTensor(t, where);
}

/** Parses ONNX bytes, refusing what is not a sane, self-contained model with a ModelFormatError naming `where`. */
export function parseModel(bytes: Uint8Array, where = 'model'): ParsedModel {
  let m: onnx.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    // Messages nested deeper than the stack allows (a crafted file) end the recursive decoder with a RangeError.
    const why = e instanceof RangeError && /call stack/.test(e.message) ? 'nested too deeply' : (e as Error).message;
    throw new ModelFormatError(`${where}: not an ONNX model (${why})`);
  }
  const g = m.graph;
  if (!g || !m.opsetImport?.length || (g.node?.length ?? 0) + (g.initializer?.length ?? 0) === 0) {
    throw new ModelFormatError(`${where}: not an ONNX model (no graph)`);
  }
  const initializers = new Map<string, StoredTensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', storedTensor(t, where));
  const metadata: Record<string, string> = {};
  for (const p of m.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  return {
    irVersion: num(m.irVersion),
    opsets: m.opsetImport.map((o) => ({ domain: o.domain ?? '', version: num(o.version) })),
    producer: `${m.producerName ?? ''} ${m.producerVersion ?? ''}`.trim(),
    graphName: g.name ?? '',
    inputs: (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(summary),
    outputs: (g.output ?? []).map(summary),
    initializers,
    metadata,
    nodes: (g.node ?? []).map((n) => ({
      op: n.opType ?? '',
      domain: n.domain ?? '',
      name: n.name ?? '',
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs: Object.fromEntries((n.attribute ?? []).map((a) => [a.name ?? '', nodeAttr(a, where)])),
    })),
  };
}

const ATTR = onnx.AttributeProto.AttributeType;

function nodeAttr(a: onnx.IAttributeProto, where: string): NodeAttr {
  switch (a.type) {
    case ATTR.INT:
      return { kind: 'int', value: num(a.i) };
    case ATTR.INTS:
      return { kind: 'ints', value: (a.ints ?? []).map(num) };
    case ATTR.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case ATTR.FLOATS:
      return { kind: 'floats', value: [...(a.floats ?? [])] };
    case ATTR.STRING:
      return { kind: 'string', value: new TextDecoder().decode(a.s ?? new Uint8Array()) };
    case ATTR.TENSOR:
      return a.t ? { kind: 'tensor', value: storedTensor(a.t, where) } : { kind: 'other' };
    default:
      return { kind: 'other' };
  }
}
