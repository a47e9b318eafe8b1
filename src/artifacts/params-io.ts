/**
 * Parameters in ONNX files: checkpoints (parameters and optimizer state as initializers, metadata as
 * metadata_props) and loading state_dict-named weights from any ONNX file (`--init`).
 */
import { existsSync, readFileSync } from 'fs';
import { ParamSpec, Params } from '../models/module';
import { GraphBuilder } from '../onnx/builder';
import { encodeModel, parseModel, ParsedModel } from '../onnx/model';
import { UsageError } from '../errors';
import { OPTIM_PREFIX } from '../optim/optimizer';
import { StateSpec } from '../optim/optimizer';

export function readOnnxFile(path: string, flag: string): ParsedModel {
  if (!existsSync(path)) throw new UsageError(`${flag} ${path}: no such file`);
  return parseModel(readFileSync(path), `${flag} ${path}`);
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

/** A checkpoint is an ONNX model holding only initializers: readable by any ONNX tool, loadable by `--init`. */
export function encodeCheckpoint(specs: readonly ParamSpec[], stateSpecs: readonly StateSpec[], c: Checkpoint): Uint8Array {
  const g = new GraphBuilder();
  for (const s of [...specs, ...stateSpecs]) {
    const data = (s.name.startsWith(OPTIM_PREFIX) ? c.states : c.params).get(s.name);
    if (!data) throw new Error(`checkpoint: "${s.name}" has no value`);
    g.initializer(s.name, 'float32', s.shape, data);
  }
  return encodeModel(g, { graphName: 'ingraph_checkpoint', docString: 'ingraph training checkpoint: parameters by state_dict key, optimizer state under "optim."', metadata: c.metadata });
}
