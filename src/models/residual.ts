/** The seed's ResNet-style network: two ResidualBlocks (41,514 parameters), its listing's typos fixed. */
import { Tensor } from '../onnx/tensor';
import { ImageSignature, imageShape, MNIST_SIGNATURE } from '../signature';
import { Conv2d, flatFeatures, Forward, Linear, Module } from './module';

/** The seed's ResidualBlock: y = relu(conv1(x)); out = relu(x + conv2(y)). */
export class ResidualBlock extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;

  constructor(channels: number) {
    super();
    this.conv1 = this.add('conv1', new Conv2d(channels, channels, 3, 1));
    this.conv2 = this.add('conv2', new Conv2d(channels, channels, 3, 1));
  }

  forward(f: Forward, x: Tensor): Tensor {
    let y = f.relu(this.conv1.forward(f, x));
    y = this.conv2.forward(f, y);
    return f.relu(f.g.add(x, y));
  }
}

/**
 * The seed's residual net: conv1, ResidualBlock(16), conv2, ResidualBlock(32), fc; on MNIST 41,514 parameters (fc
 * takes 32·4·4 = 512). On other images conv1 takes their channels, fc their features and gives their classes.
 */
export class ResidualNet extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly rblock1: ResidualBlock;
  readonly rblock2: ResidualBlock;
  readonly fc: Linear;

  constructor(s: ImageSignature = MNIST_SIGNATURE, fcInputs?: number) {
    super();
    this.conv1 = this.add('conv1', new Conv2d(s.channels, 16, 5));
    this.conv2 = this.add('conv2', new Conv2d(16, 32, 5));
    this.rblock1 = this.add('rblock1', new ResidualBlock(16));
    this.rblock2 = this.add('rblock2', new ResidualBlock(32));
    const inputs = fcInputs ?? flatFeatures('residual', imageShape(s), () => new ResidualNet(s, 1));
    this.fc = this.add('fc', new Linear(inputs, s.classes));
  }

  /** Everything before fc: the flattened features. */
  features(f: Forward, x: Tensor): Tensor {
    x = f.relu(f.maxPool2d(this.conv1.forward(f, x), 2));
    x = this.rblock1.forward(f, x);
    x = f.relu(f.maxPool2d(this.conv2.forward(f, x), 2));
    x = this.rblock2.forward(f, x);
    return f.flatten(x);
  }

  forward(f: Forward, x: Tensor): Tensor {
    return this.fc.forward(f, this.features(f, x));
  }
}
