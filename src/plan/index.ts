/**
 * A training plan: a network, its optimizer and gradient options, built once. It holds the module, the parameter and
 * optimizer-state layout, and emits every graph form of the training (the per-tensor step, the flat step, the
 * data-parallel gradient/update pair, the Loop of steps), the eval model and the inference model. The Trainer, the
 * step runners, `ingraph graphs`, the browser page's endpoint and the benchmarks all take a plan: nothing else builds
 * a network or an optimizer.
 */
import { OptionError } from '../errors';
import { TrainConfig } from '../options';
import { Network, NetworkRef, resolveNetwork } from '../models';
import { BufferSpec, initParams, Module, ParamSpec, Params } from '../models/module';
import { OPSET } from '../onnx/model';
import { ImageSignature, MNIST_SIGNATURE } from '../signature';
import { optimizerFor, OptimizerConfig } from '../optim';
import { Optimizer, StateSpec } from '../optim/optimizer';
import {
  evalGraph,
  FlatTrainingGraph,
  flatGraph,
  inferenceGraph,
  LoopTrainingGraph,
  loopGraph,
  ForwardParts,
  PlanParts,
  Precision,
  ShardedTrainingGraphs,
  shardedGraphs,
  stepGraph,
  TrainingGraph,
  TrainingModelOptions,
  trainingSpecs,
} from './graphs';

/** What a plan is built from: the network, the optimizer (or its options) and the training graphs' options. */
export interface PlanOptions extends TrainingModelOptions {
  network: NetworkRef;
  optimizer: Optimizer | OptimizerConfig;
  /** Parameters named by these prefixes (or PREFIX.*) are not trained; each must name one. Beside `isFrozen`. */
  freeze?: readonly string[];
  /** The images and classes (default MNIST's). */
  signature?: ImageSignature;
}

/** A network's forward pass, built once: its parameters, initial weights, eval model and inference model. */
export class ForwardPlan {
  readonly network: Network;
  /** The root module: its parameters carry their state_dict names. */
  readonly module: Module;

  constructor(
    network: NetworkRef,
    /** The images the network takes and the classes it gives (default MNIST's). */
    readonly signature: ImageSignature = MNIST_SIGNATURE,
  ) {
    this.network = resolveNetwork(network);
    this.module = this.network.create(signature);
  }

  /** Every parameter, in the module's order. */
  get params(): ParamSpec[] {
    return this.module.parameters();
  }

  /** An imported network's own weights; else PyTorch's default initial weights from `seed`. */
  initialParams(seed: number): Params {
    const own = this.network.imported?.weights;
    return own ? new Map([...own].map(([name, w]) => [name, Float32Array.from(w)])) : initParams(this.params, seed);
  }

  /** The module's buffers (BatchNorm's running statistics), which training updates beside the parameters. */
  get buffers(): BufferSpec[] {
    return this.module.buffers();
  }

  /** The buffers' starting values (an imported network's: the file's); a random state's from `seed`. */
  initialBuffers(seed: number): Params {
    const start = (b: BufferSpec) =>
      b.random ? Float32Array.of(Math.floor(seed / 65536), seed % 65536, 0) : b.initial;
    return new Map(this.buffers.map((b) => [b.name, Float32Array.from(start(b))]));
  }

  /** The forward pass and loss with parameters as inputs. */
  eval(): Uint8Array {
    return evalGraph(this.forwardParts());
  }

  /** The deployable model of `params` (see `buildInferenceModel`). */
  inference(params: Params, metadata: Record<string, string> = {}, opset = OPSET, precision?: Precision): Uint8Array {
    return inferenceGraph(this.forwardParts(), params, metadata, opset, precision);
  }

  private forwardParts(): ForwardParts {
    const { name, imported } = this.network;
    return { name, module: this.module, signature: this.signature, ...(imported ? { imported } : {}) };
  }
}

/** A network's training, planned once; see the module comment. */
export class TrainingPlan extends ForwardPlan {
  readonly optimizer: Optimizer;
  private readonly parts: PlanParts;
  private perTensorStep: TrainingGraph | null = null;

  constructor(o: PlanOptions) {
    super(o.network, o.signature);
    this.optimizer = 'update' in o.optimizer ? o.optimizer : optimizerFor(o.optimizer);
    const params = this.module.parameters();
    const byPrefix = frozenMatcher(
      o.freeze ?? [],
      params.map((p) => p.name),
    );
    const isFrozen = (name: string) => byPrefix(name) || (o.isFrozen?.(name) ?? false);
    const { exposeGradients, labelSmoothing, gradients, floatInputs } = o;
    const options = { exposeGradients, labelSmoothing, gradients, ...(floatInputs ? { floatInputs } : {}) };
    const specs = trainingSpecs(params, this.optimizer, isFrozen, this.module.buffers());
    const { name } = this.network;
    this.parts = { name, module: this.module, signature: this.signature, optimizer: this.optimizer, specs, options };
  }

  /** The names of the parameters that train, in the module's order. */
  get trainable(): string[] {
    return this.parts.specs.trainable.map((s) => s.name);
  }

  /** The optimizer's state tensors: its global state, then each trainable parameter's. */
  get states(): StateSpec[] {
    return this.parts.specs.stateSpecs;
  }

  /** The training step with an input and an output per parameter and state (emitted once, then kept). */
  step(): TrainingGraph {
    return (this.perTensorStep ??= stepGraph(this.parts));
  }

  /** The training step over flat tensors of the trainable parameters and their states. */
  flat(): FlatTrainingGraph {
    return flatGraph(this.parts);
  }

  /** The step split for data parallelism over `shards` workers: each shard's gradients, and the update. */
  sharded(shards: number): ShardedTrainingGraphs {
    return shardedGraphs(this.parts, shards);
  }

  /** Several flat steps per run: a Loop over stacked batches. */
  loop(): LoopTrainingGraph {
    return loopGraph(this.parts);
  }
}

/** The plan of a training `config` (its optimizer, frozen prefixes and label smoothing) of `network` on `signature`. */
export function planOf(
  network: NetworkRef,
  signature: ImageSignature,
  config: TrainConfig,
  gradients?: TrainingModelOptions['gradients'],
): TrainingPlan {
  const { freeze, labelSmoothing } = config;
  return new TrainingPlan({ network, signature, optimizer: config, freeze, labelSmoothing, gradients });
}

/** A frozen-prefix matcher; each prefix must name at least one parameter. */
export function frozenMatcher(prefixes: readonly string[], names: readonly string[]): (name: string) => boolean {
  const matches = (p: string, n: string) => n === p || n.startsWith(p.endsWith('.') ? p : `${p}.`);
  for (const p of prefixes) {
    if (!names.some((n) => matches(p, n))) {
      throw new OptionError('freeze', p, `matches no parameter (names look like ${names[0]})`);
    }
  }
  return (n) => prefixes.some((p) => matches(p, n));
}

/**
 * One training step as an ONNX graph: forward, loss, backward and the optimizer update. Inputs: images, labels, lr,
 * every parameter and optimizer state; outputs: loss, correct, `updated.<name>` for each, params_sq_sum.
 */
export function buildTrainingModel(
  model: NetworkRef,
  optimizer: Optimizer,
  o: TrainingModelOptions = {},
): TrainingGraph {
  return new TrainingPlan({ ...o, network: model, optimizer }).step();
}

/** The training step over flat tensors (TrainingPlan.flat). */
export function buildFlatTrainingModel(
  model: NetworkRef,
  optimizer: Optimizer,
  o: TrainingModelOptions = {},
): FlatTrainingGraph {
  return new TrainingPlan({ ...o, network: model, optimizer }).flat();
}

/** S flat training steps in one run, as a Loop (TrainingPlan.loop). */
export function buildLoopTrainingModel(
  model: NetworkRef,
  optimizer: Optimizer,
  o: TrainingModelOptions = {},
): LoopTrainingGraph {
  return new TrainingPlan({ ...o, network: model, optimizer }).loop();
}

/** The data-parallel gradient and update graphs over `shards` workers (TrainingPlan.sharded). */
export function buildShardedTrainingModels(
  model: NetworkRef,
  optimizer: Optimizer,
  shards: number,
  o: TrainingModelOptions = {},
): ShardedTrainingGraphs {
  return new TrainingPlan({ ...o, network: model, optimizer }).sharded(shards);
}

/** Forward pass and loss with parameters as inputs: outputs loss, correct and logits. */
export function buildEvalModel(model: NetworkRef): Uint8Array {
  return new ForwardPlan(model).eval();
}

/**
 * The deployable model: uint8 images in; logits, probabilities and label out; weights as initializers, so any ONNX
 * runtime loads it with no custom ops; written for `opset` (one of EXPORT_OPSETS, default 17). With `float16`
 * precision the weights are stored and the network runs in half precision (rounded to nearest even); preprocessing,
 * logits and probabilities stay float32.
 */
export function buildInferenceModel(
  model: NetworkRef,
  params: Params,
  metadata: Record<string, string>,
  opset = OPSET,
  precision: Precision = 'float32',
): Uint8Array {
  return new ForwardPlan(model).inference(params, metadata, opset, precision);
}

export type {
  FlatState,
  FlatTrainingGraph,
  LoopTrainingGraph,
  Precision,
  ShardedTrainingGraphs,
  TrainingGraph,
  TrainingModelOptions,
} from './graphs';
export { FLAT } from './graphs';
