/**
 * Parameters in ONNX files: checkpoints (parameters and optimizer state as initializers, metadata as
 * metadata_props) and loading state_dict-named weights from any ONNX file (`init`).
 */
import { createHash } from 'crypto';
import { ParamSpec, Params } from '../models/module';
import { GraphBuilder } from '../onnx/builder';
import { encodeModel, parseModel, ParsedModel } from '../onnx/model';
import { aboutOption, UsageError } from '../errors';
import { readFileChecked } from './files';
import { OPTIM_PREFIX } from '../optim/optimizer';
import { StateSpec } from '../optim/optimizer';
import { METADATA } from '../run/metadata';

/** The largest ONNX file ingraph reads: far above any model it trains, far below what would exhaust memory. */
export const MAX_MODEL_BYTES = 512 * 1024 * 1024;

/**
 * Reads and parses the ONNX file that `option` names (errors say "<option> <path>: ..." and carry the option); a
 * missing, hostile or oversized file is a usage error.
 */
export function readOnnxFile(path: string, option: string): ParsedModel {
  return aboutOption(option, () => parseModel(readModelBytes(path, option), `${option} ${path}`));
}

/** The bytes of an ONNX file the user named, read in bounded memory (a regular file of at most MAX_MODEL_BYTES). */
export function readModelBytes(path: string, option: string): Uint8Array {
  return aboutOption(option, () => readFileChecked(path, `${option} ${path}`, MAX_MODEL_BYTES));
}

/** The parameters named by `specs`, from the initializers of `model`; every one present and shaped right. */
export function paramsFromModel(model: ParsedModel, specs: readonly (ParamSpec | StateSpec)[], where: string): Params {
  const params: Params = new Map();
  for (const s of specs) {
    const t = model.initializers.get(s.name);
    if (!t) throw new UsageError(`${where}: parameter "${s.name}" is missing`);
    if (t.dtype !== 'float32' || t.shape.join(',') !== s.shape.join(',')) {
      throw new UsageError(`${where}: parameter "${s.name}" is ${t.dtype} [${t.shape}], expected float32 [${s.shape}]`);
    }
    params.set(s.name, t.data as Float32Array);
  }
  return params;
}

export interface Checkpoint {
  params: Params;
  states: Params;
  metadata: Record<string, string>;
}

/** SHA-256 over every tensor (name, shape, bytes) and every metadata entry but the checksum itself. */
function contentChecksum(
  tensors: Iterable<{ name: string; shape: readonly number[]; data: Float32Array }>,
  metadata: Record<string, string>,
): string {
  const h = createHash('sha256');
  for (const t of tensors) {
    h.update(`${t.name}[${t.shape.join(',')}]`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  for (const k of Object.keys(metadata)
    .filter((key) => key !== METADATA.checksum)
    .sort())
    h.update(`${k}=${metadata[k]}\n`);
  return h.digest('hex');
}

/**
 * A checkpoint is an ONNX model holding only initializers: readable by any ONNX tool, loadable as initial weights. It
 * carries the SHA-256 of its own content, so a torn or altered file is refused on resume.
 */
export function encodeCheckpoint(
  specs: readonly ParamSpec[],
  stateSpecs: readonly StateSpec[],
  c: Checkpoint,
): Uint8Array {
  const g = new GraphBuilder();
  const tensors = [...specs, ...stateSpecs].map((s) => {
    const data = (s.name.startsWith(OPTIM_PREFIX) ? c.states : c.params).get(s.name);
    if (!data) throw new Error(`checkpoint: "${s.name}" has no value`);
    g.initializer(s.name, 'float32', s.shape, data);
    return { name: s.name, shape: s.shape, data };
  });
  const metadata = { ...c.metadata, [METADATA.checksum]: contentChecksum(tensors, c.metadata) };
  return encodeModel(g, {
    graphName: 'ingraph_checkpoint',
    docString: 'ingraph training checkpoint: parameters by state_dict key, optimizer state under "optim."',
    metadata,
  });
}

/** Reads a checkpoint and verifies its checksum; a torn or altered file is a usage error naming it. */
export function readCheckpoint(path: string, option = 'checkpoint'): ParsedModel {
  const m = readOnnxFile(path, option);
  const expected = m.metadata[METADATA.checksum];
  if (!expected) throw new UsageError(`${option} ${path}: not an ingraph checkpoint (no checksum)`).about(option);
  const tensors = [...m.initializers.values()].map((t) => ({
    name: t.name,
    shape: t.shape,
    data: t.data as Float32Array,
  }));
  if (contentChecksum(tensors, m.metadata) !== expected) {
    throw new UsageError(
      `${option} ${path}: checksum mismatch: the checkpoint is damaged or was altered; refusing it`,
    ).about(option);
  }
  return m;
}
