/** The networks by name, and the graphs every artifact shares: preprocessing and the forward pass. */
import { OptionError } from '../errors';
import { GraphBuilder } from '../onnx/builder';
import { CLASSES, IMAGE_SHAPE, INPUTS, imageDims } from '../onnx/signature';
import { Tensor } from '../onnx/tensor';
import { InceptionNet } from './inception';
import { Forward, Module, ParamSpec } from './module';
import { ResidualNet } from './residual';

/**
 * A network ingraph can train in-graph, export and evaluate: a name (recorded in every artifact) and a factory of
 * its root module. Its forward takes the normalised images [N,1,28,28] and returns logits [N,10].
 */
export interface Network {
  readonly name: string;
  /** A fresh root module whose parameters carry their full state_dict names. */
  create(): Module;
}

/** A Network from a name and a factory of its root module (e.g. `() => new LeNet5()`). */
export function defineNetwork(name: string, factory: () => Module): Network {
  if (!/^[A-Za-z][\w.-]*$/.test(name))
    throw new RangeError(`network name "${name}": use letters, digits, '_', '.', '-'`);
  return { name, create: () => factory().bindNames() };
}

/** The seed's two networks. */
export const NETWORKS = {
  inception: defineNetwork('inception', () => new InceptionNet()),
  residual: defineNetwork('residual', () => new ResidualNet()),
} as const;

/** The names of the built-in networks. */
export type NetworkName = keyof typeof NETWORKS;

/** A built-in network by name, or a Network as given. */
export type NetworkRef = NetworkName | Network;

export function isNetworkName(s: string): s is NetworkName {
  return Object.prototype.hasOwnProperty.call(NETWORKS, s);
}

/** The built-in network named `name`; another name is a usage error. */
export function networkByName(name: string): Network {
  if (!isNetworkName(name)) throw new OptionError('model', name, `must be one of ${Object.keys(NETWORKS).join(', ')}`);
  return NETWORKS[name];
}

export function resolveNetwork(ref: NetworkRef): Network {
  return typeof ref === 'string' ? NETWORKS[ref] : ref;
}

/** MNIST normalisation in-graph, exactly as torchvision's ToTensor + Normalize((0.1307,), (0.3081,)). */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export { CLASSES, IMAGE_SHAPE };

export function imagesInput(g: GraphBuilder, batch: string | number = 'N'): Tensor {
  return g.input(INPUTS.images, 'uint8', imageDims(batch));
}

export function preprocess(g: GraphBuilder, images: Tensor): Tensor {
  return g.scope('preprocess', () => {
    const x = g.div(g.cast(images, 'float32'), g.scalar(255));
    return g.div(g.sub(x, g.scalar(MNIST_MEAN)), g.scalar(MNIST_STD));
  });
}

/**
 * Logits of `net` for uint8 `images`, parameters supplied by `bind`; a network must return [N,10]. With `float16`,
 * the network runs on half-precision activations (its parameters must be float16 too) between float32 preprocessing
 * and float32 logits.
 */
export function logitsOf(
  g: GraphBuilder,
  net: Module,
  images: Tensor,
  bind: (s: ParamSpec) => Tensor,
  training = false,
  float16 = false,
): Tensor {
  const x = preprocess(g, images);
  const out = net.forward(new Forward(g, bind, training), float16 ? g.cast(x, 'float16') : x);
  const logits = float16 ? g.cast(out, 'float32') : out;
  if (logits.shape.length !== 2 || logits.shape[1] !== CLASSES) {
    throw new RangeError(
      `network ${net.constructor.name}: forward returned shape [${logits.shape}], expected logits [N,${CLASSES}]`,
    );
  }
  return logits;
}
