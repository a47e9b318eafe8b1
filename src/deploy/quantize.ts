/**
 * Static int8 quantization of an inference model in QDQ form, which onnxruntime turns into int8 kernels: weights
 * per output channel, symmetric int8 (biases int32 at the input scale times the weight scale); activations uint8
 * with ranges calibrated on training images. Every activation that enters or leaves an op onnxruntime runs in int8
 * gets one QuantizeLinear/DequantizeLinear pair right after its producer; the logits stay float.
 */
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { imageSize, Dataset } from '../data/mnist';
import { parseModel, StoredTensor } from '../onnx/model';
import { INPUTS } from '../onnx/signature';
import { openSession } from '../runtime/session';
import { METADATA } from '../metadata';

/** Ops whose inputs and outputs are quantized (onnxruntime 1.30's CPU provider has int8 forms of each). */
const QUANTIZED_OPS = new Set(['Conv', 'Gemm', 'MaxPool', 'AveragePool', 'Relu', 'Add', 'Concat', 'Flatten', 'Pad']);

/** How activation ranges are taken from the calibration images. */
export type Calibration = 'minmax';

/** How to quantize (recorded in the model's metadata). */
export interface QuantizeOptions {
  /** Calibration images (uint8, N·C·H·W). */
  images: Dataset;
  method?: Calibration;
}

interface Range {
  min: number;
  max: number;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** The activations to quantize: float tensors in or out of a quantized op, except graph outputs and the logits' producers' outputs. */
function activations(g: onnx.IGraphProto): string[] {
  const initializers = new Set((g.initializer ?? []).map((t) => t.name));
  const graphOutputs = new Set((g.output ?? []).map((o) => o.name));
  const producedBy = new Map<string, onnx.INodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producedBy.set(o, n);
  const names = new Set<string>();
  for (const n of g.node ?? []) {
    if (!QUANTIZED_OPS.has(n.opType ?? '')) continue;
    const data = n.opType === 'Conv' || n.opType === 'Gemm' ? (n.input ?? []).slice(0, 1) : (n.input ?? []);
    for (const t of [...data, ...(n.output ?? [])]) if (t && !initializers.has(t) && producedBy.has(t)) names.add(t);
  }
  // The logits stay float: Gemm outputs are not quantized, nor is anything the graph outputs.
  return [...names].filter((t) => producedBy.get(t)?.opType !== 'Gemm' && !graphOutputs.has(t));
}

/** Min and max of each tensor over the calibration images, from a copy of the model that also outputs them. */
async function calibrate(model: onnx.ModelProto, tensors: string[], images: Dataset): Promise<Map<string, Range>> {
  const probe = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const graph = probe.graph as onnx.GraphProto;
  for (const name of tensors)
    graph.output.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT } } }));
  const { session } = await openSession(onnx.ModelProto.encode(probe).finish(), { ep: 'cpu' });
  const ranges = new Map(tensors.map((t) => [t, { min: 0, max: 0 }]));
  try {
    for (let s = 0; s < images.count; s += 250) {
      const n = Math.min(250, images.count - s);
      const size = imageSize(images);
      const batch = new ort.Tensor('uint8', images.images.subarray(s * size, (s + n) * size), [n, ...images.shape]);
      const out = await session.run({ [INPUTS.images]: batch }, tensors);
      for (const t of tensors) {
        const r = ranges.get(t) as Range;
        for (const v of out[t].data as Float32Array) {
          if (v < r.min) r.min = v;
          else if (v > r.max) r.max = v;
        }
      }
    }
  } finally {
    await session.release();
  }
  return ranges;
}

/**
 * Tensors that share quantization parameters: the input and output of MaxPool, Flatten and Relu, where the input has
 * no other consumer. A shared scale lets onnxruntime run MaxPool on uint8 and drop the Q/DQ pairs around it; a Relu in
 * the group sets its lower bound to 0, so the uint8 zero point is 0 and the Relu itself is dropped (clamping at the
 * zero point is the Relu). A group's range is that of all its members.
 */
function sharedRanges(g: onnx.IGraphProto, ranges: Map<string, Range>): Map<string, Range> {
  const consumers = new Map<string, number>();
  for (const n of g.node ?? []) for (const t of n.input ?? []) consumers.set(t, (consumers.get(t) ?? 0) + 1);
  const parent = new Map<string, string>();
  const find = (t: string): string => (parent.has(t) ? find(parent.get(t) as string) : t);
  const clamped = new Set<string>();
  for (const n of g.node ?? []) {
    const [input] = n.input ?? [];
    const [output] = n.output ?? [];
    if (
      !['MaxPool', 'Flatten', 'Relu'].includes(n.opType ?? '') ||
      consumers.get(input) !== 1 ||
      !ranges.has(input) ||
      !ranges.has(output)
    )
      continue;
    parent.set(find(output), find(input));
    if (n.opType === 'Relu') clamped.add(output);
  }
  const groups = new Map<string, Range>();
  for (const [t, r] of ranges) {
    const root = find(t);
    const group = groups.get(root) ?? { min: Infinity, max: -Infinity };
    groups.set(root, { min: Math.min(group.min, r.min), max: Math.max(group.max, r.max) });
  }
  for (const t of clamped) (groups.get(find(t)) as Range).min = 0;
  return new Map([...ranges.keys()].map((t) => [t, groups.get(find(t)) as Range]));
}

/** uint8 scale and zero point of a range (0 always representable exactly, as Relu and padding need). */
function uint8Params(r: Range): { scale: number; zeroPoint: number } {
  const min = Math.min(r.min, 0);
  const max = Math.max(r.max, 0);
  const scale = max > min ? (max - min) / 255 : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-min / scale))) };
}

function tensor(name: string, dataType: number, dims: number[], bytes: ArrayBufferView): onnx.TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims,
    rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  });
}

/** Replaces a float weight (and its bias; values from `floats`, the decoded initializers) of a Conv or Gemm by int8 data behind DequantizeLinear nodes. */
function quantizeWeights(
  g: onnx.GraphProto,
  floats: Map<string, StoredTensor>,
  n: onnx.INodeProto,
  inputScale: number,
  added: onnx.NodeProto[],
): void {
  const byName = new Map(g.initializer.map((t, i) => [t.name, i]));
  const [, wName, bName] = n.input ?? [];
  const wIndex = byName.get(wName);
  if (wIndex === undefined)
    throw new RangeError(`quantize: the weight "${wName}" of ${n.opType} "${n.name}" is not an initializer`);
  const w = g.initializer[wIndex];
  const values = (floats.get(wName) as StoredTensor).data as Float32Array;
  const dims = (w.dims ?? []).map(Number);
  // Per output channel: axis 0 of a Conv weight [Co, C, kh, kw] and of the Gemm weight [out, in] (transB).
  const channels = dims[0];
  const per = values.length / channels;
  const scales = new Float32Array(channels);
  const q = new Int8Array(values.length);
  for (let c = 0; c < channels; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(values[i]));
    scales[c] = m > 0 ? m / 127 : 1;
    for (let i = c * per; i < (c + 1) * per; i++)
      q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scales[c])));
  }
  g.initializer[wIndex] = tensor(`${wName}.int8`, onnx.TensorProto.DataType.INT8, dims, q);
  g.initializer.push(
    tensor(`${wName}.scale`, FLOAT, [channels], scales),
    tensor(`${wName}.zero_point`, onnx.TensorProto.DataType.INT8, [channels], new Int8Array(channels)),
  );
  added.push(
    onnx.NodeProto.create({
      opType: 'DequantizeLinear',
      name: `${wName}/dq`,
      input: [`${wName}.int8`, `${wName}.scale`, `${wName}.zero_point`],
      output: [wName],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    }),
  );
  if (!bName || !byName.has(bName)) return;
  const bIndex = byName.get(bName) as number;
  const bias = (floats.get(bName) as StoredTensor).data as Float32Array;
  const bScales = scales.map((s) => s * inputScale);
  g.initializer[bIndex] = tensor(
    `${bName}.int32`,
    onnx.TensorProto.DataType.INT32,
    [channels],
    Int32Array.from(bias, (b, c) => Math.round(b / bScales[c])),
  );
  g.initializer.push(
    tensor(`${bName}.scale`, FLOAT, [channels], bScales),
    tensor(`${bName}.zero_point`, onnx.TensorProto.DataType.INT32, [channels], new Int32Array(channels)),
  );
  added.push(
    onnx.NodeProto.create({
      opType: 'DequantizeLinear',
      name: `${bName}/dq`,
      input: [`${bName}.int32`, `${bName}.scale`, `${bName}.zero_point`],
      output: [bName],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    }),
  );
}

/** The int8 QDQ model of the float inference model `bytes`; see the module comment. */
export async function quantizeInt8(bytes: Uint8Array, o: QuantizeOptions): Promise<Uint8Array> {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph as onnx.GraphProto;
  const floats = parseModel(bytes, 'quantize').initializers;
  const tensors = activations(g);
  const ranges = sharedRanges(g, await calibrate(m, tensors, o.images));
  const params = new Map(tensors.map((t) => [t, uint8Params(ranges.get(t) as Range)]));
  const nodes: onnx.NodeProto[] = [];
  const weightNodes: onnx.NodeProto[] = [];
  for (const n of g.node) {
    const rewired = onnx.NodeProto.create({ ...n, input: (n.input ?? []).map((t) => (params.has(t) ? `${t}/dq` : t)) });
    if (n.opType === 'Conv' || n.opType === 'Gemm')
      quantizeWeights(g, floats, rewired, params.get((n.input ?? [])[0])?.scale ?? 1, weightNodes);
    nodes.push(rewired);
    for (const out of n.output ?? []) {
      const p = params.get(out);
      if (!p) continue;
      g.initializer.push(
        tensor(`${out}/scale`, FLOAT, [], Float32Array.of(p.scale)),
        tensor(`${out}/zero_point`, onnx.TensorProto.DataType.UINT8, [], Uint8Array.of(p.zeroPoint)),
      );
      nodes.push(
        onnx.NodeProto.create({
          opType: 'QuantizeLinear',
          name: `${out}/q`,
          input: [out, `${out}/scale`, `${out}/zero_point`],
          output: [`${out}/q`],
        }),
        onnx.NodeProto.create({
          opType: 'DequantizeLinear',
          name: `${out}/dq`,
          input: [`${out}/q`, `${out}/scale`, `${out}/zero_point`],
          output: [`${out}/dq`],
        }),
      );
    }
  }
  g.node = [...weightNodes, ...nodes];
  m.metadataProps.push(
    onnx.StringStringEntryProto.create({
      key: METADATA.quantization,
      value: JSON.stringify({
        format: 'QDQ',
        weights: 'int8, symmetric, per output channel',
        activations: 'uint8, asymmetric',
        calibration: o.method ?? 'minmax',
        calibrationImages: o.images.count,
      }),
    }),
  );
  return onnx.ModelProto.encode(m).finish();
}
