/**
 * The graph forms a training plan emits (plan/index.ts): the training step per tensor, over flat tensors, as a Loop
 * of steps and split for data parallelism; the eval model (parameters as inputs) and the exported inference model
 * (parameters as initializers). Each emitter takes the plan's parts, built once.
 */
import { appendGradients, GradientOptions } from '../autodiff/gradients';
import { imagesInput, logitsOf } from '../models';
import { crossEntropy } from '../models/loss';
import { BufferSpec, countParams, Forward, modelBuffers, Module, ParamSpec, Params } from '../models/module';
import type { ImportedGraph } from '../models/import';
import { GraphBuilder } from '../onnx/builder';
import { toHalf } from '../onnx/half';
import { OPSET, encodeModel } from '../onnx/model';
import { Tensor } from '../onnx/tensor';
import { Optimizer, StateSpec } from '../optim/optimizer';
import { gradient, INPUTS, OUTPUTS, updated } from '../onnx/signature';
import { describeSignature, ImageSignature, imageDims, imageShape, isMnist, signatureMetadata } from '../signature';
import { METADATA } from '../metadata';

/** A training step graph and the specs of what it takes and updates. */
export interface TrainingGraph {
  bytes: Uint8Array;
  /** [C, H, W] of the images it takes. */
  imageShape: [number, number, number];
  params: ParamSpec[];
  trainable: string[];
  states: StateSpec[];
}

/**
 * A training step over flat tensors (buildFlatTrainingModel): `params`, `trainable` and `states` name the tensors a
 * checkpoint holds, which the graph takes end to end: the trainable parameters as `flat.params`, their states as
 * `flatStates`.
 */
export interface FlatTrainingGraph extends TrainingGraph {
  flatStates: FlatState[];
}

/** Several flat steps per run (buildLoopTrainingModel): batches, labels and learning rates stacked over the steps. */
export interface LoopTrainingGraph extends FlatTrainingGraph {
  loop: true;
}

/** Frozen parameters, and whether to expose the gradients. */
export interface TrainingModelOptions {
  /** Parameters excluded from training: they stay inputs, get no gradient, no state and no update. */
  isFrozen?: (name: string) => boolean;
  /** Also output each gradient as `grad.<param>` (for tests and debugging). */
  exposeGradients?: boolean;
  /** Label smoothing of the loss (PyTorch's label_smoothing; default 0). */
  labelSmoothing?: number;
  /** Which equivalent gradient formulations to emit (by execution provider; default: the CPU's fastest). */
  gradients?: GradientOptions;
  /**
   * The per-tensor step's images as float32 pixels (0..255) and its labels as float32 one-hot [N,K], with the loss's
   * mean and the correct count in float ops: a step whose every data-path node WebGPU runs (the browser page's).
   */
  floatInputs?: boolean;
}

/** What training graphs take: parameters, the trainable ones, the optimizer's state and the module's buffers. */
export interface TrainingSpecs {
  specs: ParamSpec[];
  trainable: StateSpec[];
  globalSpecs: StateSpec[];
  /** The optimizer's state, then the module's buffers (updated by the forward pass, not by the optimizer). */
  stateSpecs: StateSpec[];
  buffers: StateSpec[];
}

/** The specs, with the graph inputs of the parameters and of the optimizer state. */
interface TrainingInputs extends TrainingSpecs {
  params: Map<string, Tensor>;
  states: Map<string, Tensor>;
}

/** The specs of a training over `specs` by `optimizer`, without the parameters `isFrozen` names. */
export function trainingSpecs(
  specs: ParamSpec[],
  optimizer: Optimizer,
  isFrozen: (name: string) => boolean,
  buffers: readonly BufferSpec[] = [],
): TrainingSpecs {
  const trainable = specs.filter((s) => !isFrozen(s.name));
  if (trainable.length === 0) throw new RangeError('training: every parameter is frozen; nothing to train');
  const globalSpecs = optimizer.globalState();
  const own = buffers.map((b) => ({ name: b.name, shape: b.shape }));
  const stateSpecs = [...globalSpecs, ...trainable.flatMap((s) => optimizer.paramState(s.name, s.shape)), ...own];
  return { specs, trainable, globalSpecs, stateSpecs, buffers: own };
}

/** What every training graph form is emitted from: a plan's network, optimizer, specs and options, built once. */
export interface PlanParts {
  /** The network's name, for the graphs' names. */
  name: string;
  module: Module;
  signature: ImageSignature;
  optimizer: Optimizer;
  specs: TrainingSpecs;
  options: TrainingModelOptions;
}

/** What the eval and inference models are emitted from: the network's name and module, and an imported one's file. */
export type ForwardParts = Pick<PlanParts, 'name' | 'module' | 'signature'> & { imported?: ImportedGraph };

/** A step's loss and correct count, the gradient of each trainable parameter, and the buffers' new values. */
interface LossAndGradients {
  loss: Tensor;
  correct: Tensor;
  grads: Map<string, Tensor>;
  buffers: Map<string, Tensor>;
}

/** The batch's mean loss and correct count, and the gradients of the loss (times `scale`, when given) for `trainable`. */
function lossAndGradients(
  g: GraphBuilder,
  p: PlanParts,
  batch: { images: Tensor; labels: Tensor },
  params: Map<string, Tensor>,
  trainable: readonly StateSpec[],
  scale?: Tensor,
): LossAndGradients {
  const tensorOf = (name: string) => params.get(name) as Tensor;
  const buffers = new Map<string, Tensor>();
  const logits = logitsOf(g, p.module, batch.images, (s) => tensorOf(s.name), p.signature, true, false, buffers);
  const composed = p.options.gradients?.composedLogSoftmax ?? false;
  const { loss, correct } = crossEntropy(g, logits, batch.labels, p.options.labelSmoothing ?? 0, composed);
  const wrt = trainable.map((s) => tensorOf(s.name));
  const grads = appendGradients(g, scale ? g.mul(loss, scale) : loss, wrt, p.options.gradients);
  const byName = new Map(trainable.map((s) => [s.name, grads.get(tensorOf(s.name).name) as Tensor]));
  return { loss, correct, grads: byName, buffers };
}

/** The optimizer's updated tensors by input name (global state, then each parameter and its state), and params_sq_sum. */
interface Update {
  updated: Map<string, Tensor>;
  paramsSqSum: Tensor;
}

/** The optimizer update of every trainable parameter from `grads`. */
function appendUpdate(
  g: GraphBuilder,
  optimizer: Optimizer,
  lr: Tensor,
  inputs: TrainingInputs,
  grads: Map<string, Tensor>,
): Update {
  const stateInputs = inputs.states;
  return g.scope('optimizer', () => {
    const global = optimizer.updateGlobal(
      g,
      new Map(inputs.globalSpecs.map((s) => [s.name, stateInputs.get(s.name) as Tensor])),
    );
    const updatedTensors = new Map(global);
    const squares: Tensor[] = [];
    for (const s of inputs.trainable) {
      const own = new Map(
        optimizer.paramState(s.name, s.shape).map((st) => [st.name, stateInputs.get(st.name) as Tensor]),
      );
      const step = optimizer.update(
        g,
        lr,
        s.name,
        inputs.params.get(s.name) as Tensor,
        grads.get(s.name) as Tensor,
        own,
        global,
      );
      updatedTensors.set(s.name, step.param);
      for (const [name, t] of step.state) updatedTensors.set(name, t);
      squares.push(
        g.reduceSum(
          g.mul(step.param, step.param),
          s.shape.map((_, i) => i),
          false,
        ),
      );
    }
    // One scalar that is finite exactly when every updated parameter is: the host's divergence check reads it.
    return { updated: updatedTensors, paramsSqSum: squares.reduce((a, b) => g.add(a, b)) };
  });
}

/** A batch's outputs: its mean loss and correct count. */
function outputLoss(g: GraphBuilder, step: { loss: Tensor; correct: Tensor }): void {
  g.output(step.loss, OUTPUTS.loss);
  g.output(step.correct, OUTPUTS.correct);
}

/** An update's outputs: `updated.<name>` of each updated tensor, and params_sq_sum. */
function outputUpdate(g: GraphBuilder, update: Update): void {
  for (const [name, t] of update.updated) g.output(t, updated(name));
  g.output(update.paramsSqSum, OUTPUTS.paramsSqSum);
}

/** A training step's outputs: loss, correct, then the update's. */
function outputStep(g: GraphBuilder, step: { loss: Tensor; correct: Tensor }, update: Update): void {
  outputLoss(g, step);
  outputUpdate(g, update);
}

/** What a training graph of `specs` takes and updates, beside its bytes. */
function trainingGraph(bytes: Uint8Array, p: PlanParts): TrainingGraph {
  const { specs } = p;
  const trainable = specs.trainable.map((s) => s.name);
  return { bytes, imageShape: imageShape(p.signature), params: specs.specs, trainable, states: specs.stateSpecs };
}

/** A float graph input for each spec, by name. */
function floatInputs(g: GraphBuilder, specs: readonly StateSpec[]): Map<string, Tensor> {
  return new Map(specs.map((s) => [s.name, g.input(s.name, 'float32', s.shape)]));
}

/** A flat optimizer state, and the per-parameter states (in trainable order) it holds end to end. */
export interface FlatState {
  name: string;
  parts: string[];
}

/**
 * The update over one flat tensor `flat.params` [P] of all trainable parameters end to end: its specs (the
 * optimizer's global state, and its per-parameter state over the flat tensor), and how each flat state maps to the
 * per-parameter ones.
 */
function flatUpdate(
  specs: TrainingSpecs,
  optimizer: Optimizer,
): { flat: StateSpec; flatSpecs: TrainingSpecs; flatStates: FlatState[] } {
  const flat: StateSpec = { name: FLAT.params, shape: [countParams(specs.trainable)] };
  const flatSpecs = {
    ...specs,
    trainable: [flat],
    stateSpecs: [...specs.globalSpecs, ...optimizer.paramState(flat.name, flat.shape)],
  };
  const perParam = specs.trainable.map((s) => optimizer.paramState(s.name, s.shape));
  const flatStates = optimizer
    .paramState(flat.name, flat.shape)
    .map((f, j) => ({ name: f.name, parts: perParam.map((states) => states[j].name) }));
  return { flat, flatSpecs, flatStates };
}

/** Names of the update graph's flat inputs: all trainable parameters end to end, and each shard's gradients. */
export const FLAT = { params: 'flat.params', grads: (shard: number) => `flat.grads.${shard}` } as const;

/** The training step split for data parallelism: each shard's gradients, and the optimizer update of their sum. */
export interface ShardedTrainingGraphs {
  /**
   * Inputs: images, labels, `loss_scale` (the shard's share of the batch) and every parameter. Outputs: the shard's
   * mean loss, correct, and `grad.<name>` of loss_scale · loss for each trainable parameter: the shards' gradients
   * sum to the gradient of the whole batch's mean loss.
   */
  gradient: Uint8Array;
  /**
   * The update over one flat buffer (a few elementwise kernels instead of several per tensor). Inputs: lr,
   * `flat.params` [P] (the trainable parameters end to end, in TrainingGraph.trainable order), `flat.grads.<k>` [P]
   * for each of the K shards (summed in-graph in shard order), the optimizer's global state and its flat
   * per-parameter state. Outputs: `updated.<input>` for the flat parameters and every state, and params_sq_sum.
   */
  update: Uint8Array;
  /** Each flat optimizer state, and the per-parameter states (trainable order) it holds end to end. */
  flatStates: FlatState[];
  /** K: the shards each batch is split into. */
  shards: number;
}

/**
 * Networks with buffers (BatchNorm's running statistics, Dropout's random state) train in one session of the
 * per-tensor step: shards would each see part of the batch, and BatchNorm's statistics would be theirs, not the
 * batch's.
 */
function onePerTensorStep(p: PlanParts, form: string): void {
  if (p.specs.buffers.length)
    throw new RangeError(
      `${form}: the ${p.name} net has buffers (BatchNorm, Dropout); it trains with the per-tensor step`,
    );
}

/**
 * The graph inputs of a batch: uint8 images [N,C,H,W] and int64 labels [N]; with `floats`, float32 pixels (0..255)
 * and float32 one-hot labels [N,K], so that no integer tensor lies on the data path (WebGPU has no uint8 Cast and
 * runs int64 comparisons on the CPU).
 */
function batchInputs(g: GraphBuilder, signature: ImageSignature, floats = false): { images: Tensor; labels: Tensor } {
  if (floats) {
    const images = g.input(INPUTS.images, 'float32', imageDims(signature, 'N'));
    return { images, labels: g.input(INPUTS.labels, 'float32', ['N', signature.classes]) };
  }
  return { images: imagesInput(g, signature), labels: g.input(INPUTS.labels, 'int64', ['N']) };
}

/** The gradient and update graphs of data-parallel training over `shards` workers (see ShardedTrainingGraphs). */
export function shardedGraphs(p: PlanParts, shards: number): ShardedTrainingGraphs {
  onePerTensorStep(p, 'data-parallel training');
  const { flat, flatSpecs, flatStates } = flatUpdate(p.specs, p.optimizer);
  const u = new GraphBuilder();
  const lr = u.input(INPUTS.lr, 'float32', []);
  const inputs = { ...flatSpecs, params: floatInputs(u, [flat]), states: floatInputs(u, flatSpecs.stateSpecs) };
  // Adds, not a ReduceSum over a [K,P] stack: onnxruntime reduces the leading axis of such a stack far slower.
  const sum = Array.from({ length: shards }, (_, k) => u.input(FLAT.grads(k), 'float32', flat.shape)).reduce((a, b) =>
    u.add(a, b),
  );
  outputUpdate(u, appendUpdate(u, p.optimizer, lr, inputs, new Map([[flat.name, sum]])));
  const update = encodeModel(u, {
    graphName: `${p.name}_update`,
    docString: `The ${p.optimizer.kind} update of the ${p.name} net from its shards' gradients.`,
  });
  return { gradient: shardGradientGraph(p), update, flatStates, shards };
}

/** One shard's loss, correct count and gradients of loss_scale · loss (ShardedTrainingGraphs.gradient). */
function shardGradientGraph(p: PlanParts): Uint8Array {
  const g = new GraphBuilder();
  const batch = batchInputs(g, p.signature);
  const scale = g.input(INPUTS.lossScale, 'float32', []);
  const step = lossAndGradients(g, p, batch, floatInputs(g, p.specs.specs), p.specs.trainable, scale);
  outputLoss(g, step);
  for (const [param, t] of step.grads) g.output(t, gradient(param));
  return encodeModel(g, {
    graphName: `${p.name}_shard_gradients`,
    docString: `Gradients of one shard of a batch of the ${p.name} net.`,
  });
}

/**
 * One training step as an ONNX graph: forward, loss, backward and the optimizer update. Inputs: images, labels, lr,
 * every parameter and optimizer state; outputs: loss, correct, `updated.<name>` for each, params_sq_sum.
 */
export function stepGraph(p: PlanParts): TrainingGraph {
  const g = new GraphBuilder();
  const batch = batchInputs(g, p.signature, p.options.floatInputs);
  const lr = g.input(INPUTS.lr, 'float32', []);
  const inputs = { ...p.specs, params: floatInputs(g, p.specs.specs), states: floatInputs(g, p.specs.stateSpecs) };
  const bound = new Map([
    ...inputs.params,
    ...p.specs.buffers.map((b) => [b.name, inputs.states.get(b.name)] as const),
  ]);
  const step = lossAndGradients(g, p, batch, bound as Map<string, Tensor>, p.specs.trainable);
  const update = appendUpdate(g, p.optimizer, lr, inputs, step.grads);
  for (const b of p.specs.buffers)
    update.updated.set(b.name, step.buffers.get(b.name) ?? (inputs.states.get(b.name) as Tensor));
  outputStep(g, step, update);
  if (p.options.exposeGradients) for (const [name, t] of step.grads) g.output(t, gradient(name));
  const bytes = encodeModel(g, {
    graphName: `${p.name}_training_step`,
    docString: `One ${p.optimizer.kind} training step of the ${p.name} net.`,
  });
  return trainingGraph(bytes, p);
}

/**
 * One training step over flat tensors: the trainable parameters arrive end to end as `flat.params` [P] (one Split
 * and a Reshape each give the network its tensors), their gradients leave the backward pass concatenated, and the
 * optimizer updates the flat tensor and its flat state with a few kernels. Inputs: images, labels, lr, `flat.params`,
 * each frozen parameter, the optimizer's global state and its flat states; outputs: loss, correct,
 * `updated.<input>` for the flat parameters and every state, params_sq_sum. Fewer tensors in and out of every run
 * and fewer nodes than the per-tensor step (residual net, SGD: 225 against 312), with the same arithmetic.
 */
export function flatGraph(p: PlanParts): FlatTrainingGraph {
  onePerTensorStep(p, 'the flat step');
  const g = new GraphBuilder();
  const { flat, flatSpecs, flatStates } = flatUpdate(p.specs, p.optimizer);
  const batch = batchInputs(g, p.signature);
  const lr = g.input(INPUTS.lr, 'float32', []);
  const flatParams = g.input(flat.name, 'float32', flat.shape);
  const frozen = frozenInputs(g, p.specs);
  const step = flatStep(g, p, flatSpecs, batch, lr, flatParams, frozen, floatInputs(g, flatSpecs.stateSpecs));
  outputStep(g, step, step);
  const bytes = encodeModel(g, {
    graphName: `${p.name}_flat_training_step`,
    docString: `One ${p.optimizer.kind} training step of the ${p.name} net, over flat tensors.`,
  });
  return { ...trainingGraph(bytes, p), flatStates };
}

/** Graph inputs for the parameters that are not trained. */
function frozenInputs(g: GraphBuilder, specs: TrainingSpecs): Map<string, Tensor> {
  const trainable = new Set(specs.trainable.map((s) => s.name));
  return floatInputs(
    g,
    specs.specs.filter((s) => !trainable.has(s.name)),
  );
}

/**
 * One step over flat tensors: one Split and a Reshape each give the network its trainable parameters, their
 * gradients leave the backward pass concatenated, and the optimizer updates the flat tensor and its flat states.
 */
function flatStep(
  g: GraphBuilder,
  p: PlanParts,
  flatSpecs: TrainingSpecs,
  batch: { images: Tensor; labels: Tensor },
  lr: Tensor,
  flatParams: Tensor,
  frozen: Map<string, Tensor>,
  states: Map<string, Tensor>,
): LossAndGradients & Update {
  const params = new Map(frozen);
  const trainable = p.specs.trainable;
  const parts = g.split(
    flatParams,
    0,
    trainable.map((s) => countParams([s])),
  );
  trainable.forEach((s, i) => params.set(s.name, g.reshape(parts[i], s.shape)));
  const step = lossAndGradients(g, p, batch, params, trainable);
  const flatGrad = g.concat(
    trainable.map((s) => g.reshape(step.grads.get(s.name) as Tensor, [-1])),
    0,
  );
  const flatName = flatSpecs.trainable[0].name;
  const inputs = { ...flatSpecs, params: new Map([[flatName, flatParams]]), states };
  const update = appendUpdate(g, p.optimizer, lr, inputs, new Map([[flatName, flatGrad]]));
  return { ...step, ...update };
}

/**
 * S training steps in one run: the flat step as the body of a Loop over a stack of batches, so the parameters and
 * optimizer state cross into and out of the runtime once per S steps, not every step. Inputs: images [S, N, C, H, W],
 * labels [S, N], lr [S] (one per step), and the flat step's parameters and states; outputs: loss, correct and
 * params_sq_sum of each step ([S]), and `updated.<input>` after the last step. The same arithmetic as S runs of the
 * flat step.
 */
export function loopGraph(p: PlanParts): LoopTrainingGraph {
  onePerTensorStep(p, 'the Loop of steps');
  const g = new GraphBuilder();
  const { flat, flatSpecs, flatStates } = flatUpdate(p.specs, p.optimizer);
  const images = g.input(INPUTS.images, 'uint8', ['S', ...imageDims(p.signature, 'N')]);
  const labels = g.input(INPUTS.labels, 'int64', ['S', 'N']);
  const lrs = g.input(INPUTS.lr, 'float32', ['S']);
  const flatParams = g.input(flat.name, 'float32', flat.shape);
  const frozen = frozenInputs(g, p.specs);
  const stateInputs = floatInputs(g, flatSpecs.stateSpecs);
  const carriedNames = [flat.name, ...stateInputs.keys()];
  const loop = g.loop(g.size(lrs), 'S', [flatParams, ...stateInputs.values()], (i, [params, ...states]) => {
    const batch = { images: g.gather(images, i, 0), labels: g.gather(labels, i, 0) };
    const stateMap = new Map(flatSpecs.stateSpecs.map((s, k) => [s.name, states[k]]));
    const step = flatStep(g, p, flatSpecs, batch, g.gather(lrs, i, 0), params, frozen, stateMap);
    return {
      carried: carriedNames.map((n) => step.updated.get(n) as Tensor),
      scans: [step.loss, step.correct, step.paramsSqSum],
    };
  });
  const [loss, correct, paramsSqSum] = loop.scans;
  const updatedTensors = new Map(carriedNames.map((n, k) => [n, loop.carried[k]]));
  outputStep(g, { loss, correct }, { updated: updatedTensors, paramsSqSum });
  const bytes = encodeModel(g, {
    graphName: `${p.name}_loop_training_steps`,
    docString: `S ${p.optimizer.kind} training steps of the ${p.name} net in one run.`,
  });
  return { ...trainingGraph(bytes, p), flatStates, loop: true };
}

/** Forward pass and loss with parameters as inputs: outputs loss, correct and logits. */
export function evalGraph(f: ForwardParts): Uint8Array {
  const g = new GraphBuilder();
  const { images, labels } = batchInputs(g, f.signature);
  const params = floatInputs(g, [...f.module.parameters(), ...modelBuffers(f.module)]);
  const logits = logitsOf(g, f.module, images, (s) => params.get(s.name) as Tensor, f.signature);
  outputLoss(g, crossEntropy(g, logits, labels));
  g.output(logits, OUTPUTS.logits);
  return encodeModel(g, { graphName: `${f.name}_eval`, docString: `Forward pass and loss of the ${f.name} net.` });
}

/** The arithmetic of an inference model: float32, or float16 weights and activations (for GPUs). */
export type Precision = 'float32' | 'float16';

/**
 * The deployable model: uint8 images [N,C,H,W] in; logits, probabilities and label out; weights as initializers,
 * so any ONNX runtime loads it with no custom ops; written for `opset` (one of EXPORT_OPSETS, default 17). With
 * `float16` precision the weights are stored and the network runs in half precision (rounded to nearest even);
 * preprocessing, logits and probabilities stay float32.
 */
export function inferenceGraph(
  f: ForwardParts,
  params: Params,
  metadata: Record<string, string>,
  opset = OPSET,
  precision: Precision = 'float32',
): Uint8Array {
  if (f.imported) return importedInferenceGraph(f, f.imported, params, metadata, opset, precision);
  const g = new GraphBuilder();
  const images = imagesInput(g, f.signature);
  const half = precision === 'float16';
  const weights = new Map<string, Tensor>();
  for (const s of [...f.module.parameters(), ...modelBuffers(f.module)]) {
    const data = params.get(s.name);
    if (!data) throw new RangeError(`inference model: parameter "${s.name}" is missing`);
    const w = half
      ? g.initializer(s.name, 'float16', s.shape, toHalf(data))
      : g.initializer(s.name, 'float32', s.shape, data);
    weights.set(s.name, w);
  }
  const logits = logitsOf(g, f.module, images, (s) => weights.get(s.name) as Tensor, f.signature, false, half);
  g.output(logits, OUTPUTS.logits);
  g.output(g.softmax(logits, 1), OUTPUTS.probabilities);
  g.output(g.argMax(logits, 1, false), OUTPUTS.label);
  return encodeModel(g, {
    graphName: `${f.name}_inference`,
    docString: `The ${f.name} net of ingraph, for ${isMnist(f.signature) ? 'MNIST digits' : describeSignature(f.signature)}.`,
    metadata: { [METADATA.model]: f.name, ...signatureMetadata(f.signature), ...metadata },
    opset,
  });
}

/**
 * The inference model of an imported network, a drop-in for its file: the file's input (float32 [N,C,H,W],
 * normalised by the caller) and output names and shapes, the parameters under their names, and ingraph's metadata
 * with the signature, whose mean and std say how to normalise.
 */
function importedInferenceGraph(
  f: ForwardParts,
  file: ImportedGraph,
  params: Params,
  metadata: Record<string, string>,
  opset: number,
  precision: Precision,
): Uint8Array {
  if (precision !== 'float32')
    throw new RangeError(`${file.where}: a ${precision} export of an imported model is not supported`);
  const g = new GraphBuilder();
  const x = g.input(file.input.name, 'float32', file.input.shape);
  const weights = new Map<string, Tensor>();
  for (const s of [...f.module.parameters(), ...modelBuffers(f.module)]) {
    const data = params.get(s.name);
    if (!data) throw new RangeError(`inference model: parameter "${s.name}" is missing`);
    weights.set(s.name, g.initializer(s.name, 'float32', s.shape, data));
  }
  const logits = f.module.forward(new Forward(g, (s) => weights.get(s.name) as Tensor), x);
  g.output(logits, file.output.name);
  return encodeModel(g, {
    graphName: `${f.name}_inference`,
    docString: `${file.where}, trained by ingraph, for ${describeSignature(f.signature)}.`,
    metadata: { [METADATA.model]: f.name, [METADATA.signature]: JSON.stringify(f.signature), ...metadata },
    opset,
  });
}
