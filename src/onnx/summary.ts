/** A summary of an ONNX model, as `ingraph inspect` prints it. */
import { ParsedModel, StoredTensor } from './model';

/** A learned tensor of a model. */
export interface ParamRow {
  name: string;
  shape: number[];
  count: number;
}

/** The stored form of a quantized weight (int8) or bias (int32), beside its `.scale` and `.zero_point`. */
const QUANTIZED = /\.(int8|int32)$/;

/**
 * Learned tensors: state_dict-named float (float32 or float16) initializers, the int8/int32 ones of a quantized model
 * (named without their suffix; their scales and zero points are not counted), or (training models) float inputs
 * named like them.
 */
function parameterRows(m: ParsedModel): ParamRow[] {
  const looksLikeParam = (name: string) => /^[A-Za-z_][\w]*(\.[\w]+)+$/.test(name) && !name.startsWith('optim.');
  const stored = [...m.initializers.values()];
  const quantized = stored.filter((t) => QUANTIZED.test(t.name) && (t.dtype === 'int8' || t.dtype === 'int32'));
  const quantizedNames = new Set(quantized.map((t) => t.name.replace(QUANTIZED, '')));
  const isFloat = (t: StoredTensor) => t.dtype === 'float32' || t.dtype === 'float16';
  const fromInit = [
    ...stored.filter(
      (t) => isFloat(t) && looksLikeParam(t.name) && !quantizedNames.has(t.name.replace(/\.scale$/, '')),
    ),
    ...quantized.map((t) => ({ ...t, name: t.name.replace(QUANTIZED, '') })).filter((t) => looksLikeParam(t.name)),
  ].map((t) => ({ name: t.name, shape: t.shape }));
  const fromInputs = m.inputs
    .filter((i) => i.dtype === 'float32' && looksLikeParam(i.name) && i.shape.every((d) => typeof d === 'number'))
    .map((i) => ({ name: i.name, shape: i.shape as number[] }));
  return [...fromInit, ...fromInputs].map((r) => ({ ...r, count: r.shape.reduce((a, b) => a * b, 1) }));
}

/**
 * What a model holds: inputs, outputs, ops by count, parameters (state_dict-named float initializers, or float inputs
 * named like them in training models), optimizer state and metadata.
 */
export function summarize(m: ParsedModel, file: string) {
  const ops = new Map<string, number>();
  for (const n of m.nodes) ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
  const params = parameterRows(m);
  const optimizerState = [...m.initializers.keys(), ...m.inputs.map((i) => i.name)].filter((n) =>
    n.startsWith('optim.'),
  ).length;
  return {
    file,
    graph: m.graphName,
    producer: m.producer,
    irVersion: m.irVersion,
    opsets: m.opsets,
    inputs: m.inputs.filter((i) => !params.some((p) => p.name === i.name)),
    outputs: m.outputs,
    ops: Object.fromEntries([...ops.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    nodes: m.nodes.length,
    parameters: params,
    totalParameters: params.reduce((n, p) => n + p.count, 0),
    optimizerStateTensors: optimizerState,
    metadata: m.metadata,
  };
}
