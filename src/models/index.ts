/** The networks by name, and the graphs every artifact shares: preprocessing and the forward pass. */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';
import { InceptionNet } from './inception';
import { Forward, Module, ParamSpec } from './module';
import { ResidualNet } from './residual';

export const NETWORKS = {
  inception: () => new InceptionNet(),
  residual: () => new ResidualNet(),
} as const;

export type NetworkName = keyof typeof NETWORKS;

export function isNetworkName(s: string): s is NetworkName {
  return Object.prototype.hasOwnProperty.call(NETWORKS, s);
}

export function createNet(name: NetworkName): Module {
  return NETWORKS[name]().bindNames();
}

/** MNIST normalisation in-graph, exactly as torchvision's ToTensor + Normalize((0.1307,), (0.3081,)). */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export function imagesInput(g: GraphBuilder, batch: string | number = 'N'): Tensor {
  return g.input('images', 'uint8', [batch, 1, 28, 28]);
}

export function preprocess(g: GraphBuilder, images: Tensor): Tensor {
  return g.scope('preprocess', () => {
    const x = g.div(g.cast(images, 'float32'), g.scalar(255));
    return g.div(g.sub(x, g.scalar(MNIST_MEAN)), g.scalar(MNIST_STD));
  });
}

/** Logits of `net` for uint8 `images`, parameters supplied by `bind`. */
export function logitsOf(g: GraphBuilder, net: Module, images: Tensor, bind: (s: ParamSpec) => Tensor, training = false): Tensor {
  return net.forward(new Forward(g, bind, training), preprocess(g, images));
}
