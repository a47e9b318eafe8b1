/**
 * A Triton Inference Server model repository for an inference model: `<repository>/<name>/1/model.onnx` and
 * `<name>/config.pbtxt` (ModelConfig in protobuf text format, onnxruntime backend, dynamic batching). Inputs and
 * outputs come from the model itself, so any model with a leading batch dimension fits.
 */
import { join } from 'path';
import { UsageError } from '../errors';
import { ParsedModel, parseModel, ValueSummary } from '../onnx/model';
import { makeDir, writeFileAtomic } from '../io/files';

/** How Triton serves the model. */
export interface TritonOptions {
  /** The model's name in the repository (and in request URLs); letters, digits, `_`, `-`, `.`. */
  name: string;
  /** The largest batch Triton forms (dynamic batching) or accepts. */
  maxBatchSize: number;
  /** How long a request may wait for others to batch with, in microseconds. */
  maxQueueDelayMicroseconds: number;
}

/** Triton's DataType names for the ONNX element types an exported model uses. */
const TRITON_TYPES: Record<string, string> = {
  float32: 'TYPE_FP32',
  uint8: 'TYPE_UINT8',
  int64: 'TYPE_INT64',
  bool: 'TYPE_BOOL',
  int8: 'TYPE_INT8',
  int32: 'TYPE_INT32',
  float16: 'TYPE_FP16',
};

/** One input or output: dims without the batch dimension; a tensor of the batch dimension alone is reshaped from [1]. */
function tensorConfig(v: ValueSummary, where: string): string {
  const type = TRITON_TYPES[v.dtype];
  if (!type)
    throw new UsageError(`${where}: "${v.name}" is ${v.dtype}, which Triton's onnxruntime backend does not take`);
  const dims = v.shape.slice(1);
  if (v.shape.length === 0 || dims.some((d) => typeof d !== 'number')) {
    throw new UsageError(
      `${where}: "${v.name}" has shape [${v.shape}]; Triton needs a leading batch dimension and fixed dims after it`,
    );
  }
  const lines = [
    `    name: "${v.name}"`,
    `    data_type: ${type}`,
    `    dims: [ ${dims.length ? dims.join(', ') : 1} ]`,
  ];
  if (!dims.length) lines.push('    reshape: { shape: [ ] }');
  return `  {\n${lines.join('\n')}\n  }`;
}

/** The config.pbtxt of `model` (ModelConfig, model_config.proto). */
export function tritonConfig(model: ParsedModel, o: TritonOptions, where: string): string {
  const list = (vs: ValueSummary[]) => `[\n${vs.map((v) => tensorConfig(v, where)).join(',\n')}\n]`;
  return `name: "${o.name}"
backend: "onnxruntime"
max_batch_size: ${o.maxBatchSize}
input ${list(model.inputs)}
output ${list(model.outputs)}
dynamic_batching {
  max_queue_delay_microseconds: ${o.maxQueueDelayMicroseconds}
}
`;
}

/** Checks a Triton model name: it names a directory and appears in URLs. */
export function checkTritonName(name: string, where: string): string {
  if (!/^[A-Za-z0-9][\w.-]{0,127}$/.test(name))
    throw new UsageError(`${where} ${name}: use letters, digits, "_", "-" and "." (a directory and URL name)`);
  return name;
}

/**
 * Writes `model` (ONNX bytes) as version 1 of `o.name` in the repository `dir`, model first, then its config; each
 * file complete or absent. Returns the paths written.
 */
export function writeTritonRepository(
  dir: string,
  model: Uint8Array,
  o: TritonOptions,
  where = 'model',
): { model: string; config: string } {
  const config = tritonConfig(parseModel(model, where), o, where);
  const version = join(dir, o.name, '1');
  makeDir('out', version);
  const paths = { model: join(version, 'model.onnx'), config: join(dir, o.name, 'config.pbtxt') };
  writeFileAtomic(paths.model, model);
  writeFileAtomic(paths.config, config);
  return paths;
}
