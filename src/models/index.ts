/** The networks by name, and the graphs every artifact shares: preprocessing and the forward pass. */
import { OptionError, UsageError } from '../errors';
import { GraphBuilder } from '../onnx/builder';
import { INPUTS } from '../onnx/signature';
import { describeSignature, ImageSignature, imageDims, imageShape, MNIST_SIGNATURE } from '../signature';
import { Tensor } from '../onnx/tensor';
import { InceptionNet } from './inception';
import { Forward, Module, ParamSpec } from './module';
import { ResidualNet } from './residual';
import type { ImportedGraph } from './import';

/**
 * A network ingraph can train in-graph, export and evaluate: a name (recorded in every artifact) and a factory of
 * its root module for an image signature. Its forward takes the normalised images [N,C,H,W] and returns logits
 * [N,K].
 */
export interface Network {
  readonly name: string;
  /** A fresh root module for `signature` (default MNIST's) whose parameters carry their full state_dict names. */
  create(signature?: ImageSignature): Module;
  /**
   * Where the network was imported from an ONNX file (`importModel`): the file's interface, which its exported
   * model keeps, and its weights, which training starts from.
   */
  readonly imported?: ImportedGraph;
}

/** What a network written for one shape takes: its input [C,H,W] and class count. */
export interface NetworkShape {
  input: readonly [number, number, number];
  classes: number;
}

/**
 * A Network from a name and a factory of its root module, given the signature (e.g. `() => new LeNet5()`, or
 * `(s) => new MyNet(s.channels, s.classes)`). `takes` states the one shape a network is written for (default
 * MNIST's 1x28x28 images in 10 classes, when the factory takes no signature); other data is then refused.
 */
export function defineNetwork(
  name: string,
  factory: (signature: ImageSignature) => Module,
  takes?: NetworkShape,
): Network {
  if (!/^[A-Za-z][\w.-]*$/.test(name))
    throw new RangeError(`network name "${name}": use letters, digits, '_', '.', '-'`);
  const fixed =
    takes ?? (factory.length === 0 ? { input: imageShape(MNIST_SIGNATURE), classes: MNIST_SIGNATURE.classes } : null);
  return {
    name,
    create: (signature = MNIST_SIGNATURE) => {
      if (fixed && !fits(fixed, signature)) {
        const wants = `${fixed.input.join('x')} images in ${fixed.classes} classes`;
        throw new UsageError(`network ${name}: takes ${wants}, not ${describeSignature(signature)}`).about('model');
      }
      return factory(signature).bindNames();
    },
  };
}

function fits(shape: NetworkShape, s: ImageSignature): boolean {
  const [c, h, w] = shape.input;
  return c === s.channels && h === s.height && w === s.width && shape.classes === s.classes;
}

/** The seed's two networks, on any image signature. */
export const NETWORKS = {
  inception: defineNetwork('inception', (s) => new InceptionNet(s)),
  residual: defineNetwork('residual', (s) => new ResidualNet(s)),
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

/** The graph input of a batch of uint8 images of `signature`. */
export function imagesInput(g: GraphBuilder, signature: ImageSignature, batch: string | number = 'N'): Tensor {
  return g.input(INPUTS.images, 'uint8', imageDims(signature, batch));
}

/** A per-channel constant [1,C,1,1], or a scalar where one value serves every channel. */
function perChannel(g: GraphBuilder, values: readonly number[]): Tensor {
  return values.length === 1 ? g.scalar(values[0]) : g.constant([...values], [1, values.length, 1, 1], 'float32');
}

/** Normalisation in-graph, exactly as torchvision's ToTensor + Normalize(mean, std). */
export function preprocess(g: GraphBuilder, images: Tensor, signature: ImageSignature): Tensor {
  return g.scope('preprocess', () => {
    const x = g.div(images.dtype === 'float32' ? images : g.cast(images, 'float32'), g.scalar(255));
    return g.div(g.sub(x, perChannel(g, signature.mean)), perChannel(g, signature.std));
  });
}

/**
 * Logits of `net` for uint8 `images` of `signature`, parameters supplied by `bind`; a network must return [N,K].
 * With `float16`, the network runs on half-precision activations (its parameters must be float16 too) between
 * float32 preprocessing and float32 logits. A training forward puts its buffers' new values in `updates`.
 */
export function logitsOf(
  g: GraphBuilder,
  net: Module,
  images: Tensor,
  bind: (s: ParamSpec) => Tensor,
  signature: ImageSignature,
  training = false,
  float16 = false,
  updates?: Map<string, Tensor>,
): Tensor {
  const x = preprocess(g, images, signature);
  const out = net.forward(new Forward(g, bind, training, updates), float16 ? g.cast(x, 'float16') : x);
  const logits = float16 ? g.cast(out, 'float32') : out;
  const classes = signature.classes;
  if (logits.shape.length !== 2 || logits.shape[1] !== classes) {
    throw new RangeError(
      `network ${net.constructor.name}: forward returned shape [${logits.shape}], expected logits [N,${classes}]`,
    );
  }
  return logits;
}
