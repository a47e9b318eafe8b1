/**
 * The graphs ingraph emits for a network: the training step, the eval model (both with parameters as inputs) and
 * the exported inference model (parameters as initializers).
 */
import { appendGradients } from '../autodiff/gradients';
import { NetworkRef, createNet, imagesInput, logitsOf, resolveNetwork } from '../models';
import { crossEntropy } from '../models/loss';
import { ParamSpec, Params } from '../models/module';
import { GraphBuilder } from '../onnx/builder';
import { OPSET, encodeModel } from '../onnx/model';
import { Tensor } from '../onnx/tensor';
import { Optimizer, StateSpec } from '../optim/optimizer';
import { INPUTS, OUTPUTS, updated } from '../onnx/signature';


/** A training step graph and the specs of what it takes and updates. */
export interface TrainingGraph {
  bytes: Uint8Array;
  params: ParamSpec[];
  trainable: string[];
  states: StateSpec[];
}

/** Frozen parameters, and whether to expose the gradients. */
export interface TrainingModelOptions {
  /** Parameters excluded from training: they stay inputs, get no gradient, no state and no update. */
  isFrozen?: (name: string) => boolean;
  /** Also output each gradient as `grad.<param>` (for tests and debugging). */
  exposeGradients?: boolean;
}

/**
 * One training step as an ONNX graph: forward, loss, backward and the optimizer update. Inputs: images, labels, lr,
 * every parameter and optimizer state; outputs: loss, correct, `updated.<name>` for each, params_sq_sum.
 */
export function buildTrainingModel(model: NetworkRef, optimizer: Optimizer, o: TrainingModelOptions = {}): TrainingGraph {
  const isFrozen = o.isFrozen ?? (() => false);
  const g = new GraphBuilder();
  const net = createNet(model);
  const specs = net.parameters();
  const images = imagesInput(g);
  const labels = g.input(INPUTS.labels, 'int64', ['N']);
  const lr = g.input(INPUTS.lr, 'float32', []);
  const paramInputs = new Map(specs.map((s) => [s.name, g.input(s.name, 'float32', s.shape)]));
  const trainable = specs.filter((s) => !isFrozen(s.name));
  if (trainable.length === 0) throw new RangeError('training: every parameter is frozen; nothing to train');
  const globalSpecs = optimizer.globalState();
  const stateSpecs = [...globalSpecs, ...trainable.flatMap((s) => optimizer.paramState(s.name, s.shape))];
  const stateInputs = new Map(stateSpecs.map((s) => [s.name, g.input(s.name, 'float32', s.shape)]));

  const logits = logitsOf(g, net, images, (s) => paramInputs.get(s.name) as Tensor, true);
  const { loss, correct } = crossEntropy(g, logits, labels);
  const grads = appendGradients(g, loss, trainable.map((s) => paramInputs.get(s.name) as Tensor));

  g.output(loss, OUTPUTS.loss);
  g.output(correct, OUTPUTS.correct);
  if (o.exposeGradients) for (const [name, t] of grads) g.output(t, `grad.${name}`);
  g.scope('optimizer', () => {
    const global = optimizer.updateGlobal(g, new Map(globalSpecs.map((s) => [s.name, stateInputs.get(s.name) as Tensor])));
    for (const [name, t] of global) g.output(t, updated(name));
    const squares: Tensor[] = [];
    for (const s of trainable) {
      const own = new Map(optimizer.paramState(s.name, s.shape).map((st) => [st.name, stateInputs.get(st.name) as Tensor]));
      const step = optimizer.update(g, lr, paramInputs.get(s.name) as Tensor, grads.get(s.name) as Tensor, own, global);
      g.output(step.param, updated(s.name));
      for (const [name, t] of step.state) g.output(t, updated(name));
      squares.push(g.reduceSum(g.mul(step.param, step.param), s.shape.map((_, i) => i), false));
    }
    // One scalar that is finite exactly when every updated parameter is: the host's divergence check reads it.
    g.output(squares.reduce((a, b) => g.add(a, b)), OUTPUTS.paramsSqSum);
  });
  const name = resolveNetwork(model).name;
  const bytes = encodeModel(g, { graphName: `${name}_training_step`, docString: `One ${optimizer.kind} training step of the ${name} net.` });
  return { bytes, params: specs, trainable: trainable.map((s) => s.name), states: stateSpecs };
}

/** Forward pass and loss with parameters as inputs: outputs loss, correct and logits. */
export function buildEvalModel(model: NetworkRef): Uint8Array {
  const g = new GraphBuilder();
  const net = createNet(model);
  const images = imagesInput(g);
  const labels = g.input(INPUTS.labels, 'int64', ['N']);
  const params = new Map(net.parameters().map((s) => [s.name, g.input(s.name, 'float32', s.shape)]));
  const logits = logitsOf(g, net, images, (s) => params.get(s.name) as Tensor);
  const { loss, correct } = crossEntropy(g, logits, labels);
  g.output(loss, OUTPUTS.loss);
  g.output(correct, OUTPUTS.correct);
  g.output(logits, OUTPUTS.logits);
  const name = resolveNetwork(model).name;
  return encodeModel(g, { graphName: `${name}_eval`, docString: `Forward pass and loss of the ${name} net.` });
}

/**
 * The deployable model: uint8 images [N,1,28,28] in; logits, probabilities and label out; weights as initializers,
 * so any ONNX runtime loads it with no custom ops; written for `opset` (one of EXPORT_OPSETS, default 17).
 */
export function buildInferenceModel(model: NetworkRef, params: Params, metadata: Record<string, string>, opset = OPSET): Uint8Array {
  const g = new GraphBuilder();
  const net = createNet(model);
  const images = imagesInput(g);
  const weights = new Map<string, Tensor>();
  for (const s of net.parameters()) {
    const data = params.get(s.name);
    if (!data) throw new RangeError(`inference model: parameter "${s.name}" is missing`);
    weights.set(s.name, g.initializer(s.name, 'float32', s.shape, data));
  }
  const logits = logitsOf(g, net, images, (s) => weights.get(s.name) as Tensor);
  g.output(logits, OUTPUTS.logits);
  g.output(g.softmax(logits, 1), OUTPUTS.probabilities);
  g.output(g.argMax(logits, 1, false), OUTPUTS.label);
  const name = resolveNetwork(model).name;
  return encodeModel(g, { graphName: `${name}_inference`, docString: `The ${name} net of ingraph, for MNIST digits.`, metadata: { 'ingraph.model': name, ...metadata }, opset });
}
