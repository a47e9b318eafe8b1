/** ONNX files a user names (bounded, hostile-input checked) and state_dict-named weights loaded from them. */
import { ParamSpec, Params } from '../models/module';
import { parseModel, ParsedModel } from '../onnx/model';
import { aboutOption, UsageError } from '../errors';
import { readFileChecked } from './files';
import { StateSpec } from '../optim/optimizer';

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
