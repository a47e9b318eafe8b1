/**
 * A minimal module system in PyTorch's image: modules own named parameters (named as `state_dict` keys) and a
 * `forward` that emits ONNX ops through a Forward context. Where the parameter tensors come from (graph inputs for
 * training, initializers for export) is the context's business, not the module's.
 */
import { GraphBuilder } from '../onnx/builder';
import { numel, Tensor } from '../onnx/tensor';
import { UsageError } from '../errors';
import { Rng } from '../data/rng';

/** A parameter: its state_dict name, shape and the fan-in of its default initialisation. */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** Fan-in used by PyTorch's default init of Conv2d and Linear: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
  fanIn: number;
}

/** Parameter values by state_dict name. */
export type Params = Map<string, Float32Array>;

/**
 * A tensor a module keeps beside its parameters, which training updates by a rule of its own rather than by
 * gradient: BatchNorm's running mean and variance. Its state_dict name, shape and starting value.
 */
export interface BufferSpec {
  name: string;
  shape: number[];
  initial: Float32Array;
  /**
   * A random state [seed high 16 bits, seed low 16 bits, step] (Dropout's masks): read by training graphs only, so
   * not part of an exported model, and started from the run's seed.
   */
  random?: boolean;
}

/** The buffers an exported or evaluated model keeps: all but random states. */
export function modelBuffers(m: Module): BufferSpec[] {
  return m.buffers().filter((b) => !b.random);
}

/** What a module's forward sees: the builder, and the tensor standing for each parameter. */
export class Forward {
  constructor(
    readonly g: GraphBuilder,
    private readonly bind: (spec: ParamSpec) => Tensor,
    /**
     * Training graphs keep AveragePool's own padding, whose gradient rule is simpler, and normalise BatchNorm by the
     * batch's statistics.
     */
    readonly training = false,
    /** Where a training forward puts the new value of each buffer it updates (by buffer name). */
    readonly updates = new Map<string, Tensor>(),
  ) {}

  param(spec: ParamSpec): Tensor {
    return this.bind(spec);
  }

  relu(x: Tensor): Tensor {
    return this.g.relu(x);
  }

  maxPool2d(x: Tensor, k: number): Tensor {
    return this.g.maxPool(x, { kernel: [k, k], strides: [k, k] });
  }

  /**
   * F.avg_pool2d with PyTorch's count_include_pad=True. Inference graphs spell the padding as an explicit Pad before an
   * unpadded AveragePool, the form PyTorch's exporter uses: runtimes differ on AveragePool's own padding (OpenCV's DNN
   * module ignores count_include_pad). Training graphs keep the padded op, whose gradient rule is simpler.
   */
  avgPool2d(x: Tensor, k: number, stride: number, padding: number): Tensor {
    const opts = { kernel: [k, k], strides: [stride, stride] };
    if (this.training || padding === 0)
      return this.g.averagePool(x, { ...opts, pads: [padding, padding, padding, padding], countIncludePad: true });
    return this.g.averagePool(this.g.pad(x, [0, 0, padding, padding, 0, 0, padding, padding]), opts);
  }

  cat(xs: Tensor[], dim: number): Tensor {
    return this.g.concat(xs, dim);
  }

  /** x.view(in_size, -1) */
  flatten(x: Tensor): Tensor {
    return this.g.flatten(x, 1);
  }
}

/**
 * A module as in PyTorch: register children with `add` and parameters with `param` in the constructor, emit ops in
 * `forward`. Parameter names become state_dict keys (`conv1.weight`) once the root's `bindNames` runs.
 */
export abstract class Module {
  private readonly children: [string, Module][] = [];
  protected readonly ownParams: ParamSpec[] = [];
  protected prefix = '';

  protected add<M extends Module>(name: string, m: M): M {
    this.children.push([name, m]);
    return m;
  }

  protected param(name: string, shape: number[], fanIn: number): ParamSpec {
    const spec = { name, shape, fanIn };
    this.ownParams.push(spec);
    return spec;
  }

  /** Parameters in registration order, named like PyTorch's state_dict keys once the root is bound. */
  parameters(): ParamSpec[] {
    return [...this.ownParams, ...this.children.flatMap(([, m]) => m.parameters())];
  }

  /** Buffers (BatchNorm's running statistics), which a training step updates beside the parameters; none here. */
  buffers(): BufferSpec[] {
    return this.children.flatMap(([, m]) => m.buffers());
  }

  /** Fixes the full names of this module's parameters; called once on the root. */
  bindNames(prefix = ''): this {
    this.prefix = prefix;
    for (const p of this.ownParams) p.name = prefix + p.name;
    for (const [n, m] of this.children) m.bindNames(`${prefix}${n}.`);
    return this;
  }

  abstract forward(f: Forward, x: Tensor): Tensor;
}

/** nn.Conv2d(inChannels, outChannels, kernelSize, padding): stride 1, with bias; parameters `weight`, `bias`. */
export class Conv2d extends Module {
  readonly weight: ParamSpec;
  readonly bias: ParamSpec;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly padding = 0,
  ) {
    super();
    const fanIn = inChannels * kernelSize * kernelSize;
    this.weight = this.param('weight', [outChannels, inChannels, kernelSize, kernelSize], fanIn);
    this.bias = this.param('bias', [outChannels], fanIn);
  }

  forward(f: Forward, x: Tensor): Tensor {
    const p = this.padding;
    return f.g.scope(this.prefix.replace(/\.$/, ''), () =>
      f.g.conv(x, f.param(this.weight), f.param(this.bias), { pads: [p, p, p, p] }),
    );
  }
}

/** nn.Linear(inFeatures, outFeatures) with bias; parameters `weight` [out, in] and `bias`. */
export class Linear extends Module {
  readonly weight: ParamSpec;
  readonly bias: ParamSpec;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures], inFeatures);
    this.bias = this.param('bias', [outFeatures], inFeatures);
  }

  forward(f: Forward, x: Tensor): Tensor {
    return f.g.scope(this.prefix.replace(/\.$/, ''), () =>
      f.g.gemm(x, f.param(this.weight), f.param(this.bias), { transB: true }),
    );
  }
}

/** PyTorch's default init for Conv2d and Linear (kaiming_uniform with a=sqrt(5) gives the same bound as the bias). */
export function initParams(specs: readonly ParamSpec[], seed: number): Params {
  const rng = new Rng(seed);
  const params: Params = new Map();
  for (const s of specs) {
    const bound = 1 / Math.sqrt(s.fanIn);
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (2 * rng.next() - 1) * bound;
    params.set(s.name, data);
  }
  return params;
}

/** The number of scalars in `specs`. */
export function countParams(specs: readonly { shape: readonly number[] }[]): number {
  return specs.reduce((n, s) => n + numel(s.shape), 0);
}

/**
 * The features a network's `fc` layer takes, found as the seed found 1408: by shape inference over its feature
 * layers, here on a scratch graph. `features` runs those layers of a throwaway instance whose parameters are bound
 * to their state_dict names, so an input too small for a layer is refused with one line naming it.
 */
export function flatFeatures(
  name: string,
  input: readonly [number, number, number],
  instance: () => Module & { features(f: Forward, x: Tensor): Tensor },
): number {
  const net = instance().bindNames();
  const g = new GraphBuilder();
  const f = new Forward(g, (spec) => g.input(spec.name, 'float32', spec.shape));
  let shape: readonly (number | string)[];
  try {
    shape = net.features(f, g.input('images', 'float32', [1, ...input])).shape;
  } catch (e) {
    const problem = (e as Error).message;
    throw new UsageError(`network ${name}: ${input.join('x')} images are too small for its layers (${problem})`);
  }
  return numel(shape.slice(1));
}
