/** The seed's ResNet-style network: two ResidualBlocks (41,514 parameters), its listing's typos fixed. */
import { Tensor } from '../onnx/tensor';
import { Conv2d, Forward, Linear, Module } from './module';

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

/** The seed's residual net: conv1, ResidualBlock(16), conv2, ResidualBlock(32), fc (41,514 parameters). */
export class ResidualNet extends Module {
  conv1 = this.add('conv1', new Conv2d(1, 16, 5));
  conv2 = this.add('conv2', new Conv2d(16, 32, 5));
  rblock1 = this.add('rblock1', new ResidualBlock(16));
  rblock2 = this.add('rblock2', new ResidualBlock(32));
  fc = this.add('fc', new Linear(512, 10));

  forward(f: Forward, x: Tensor): Tensor {
    x = f.relu(f.maxPool2d(this.conv1.forward(f, x), 2));
    x = this.rblock1.forward(f, x);
    x = f.relu(f.maxPool2d(this.conv2.forward(f, x), 2));
    x = this.rblock2.forward(f, x);
    x = f.flatten(x);
    return this.fc.forward(f, x);
  }
}
