/** The seed's GoogLeNet-style network: two InceptionA blocks (97,298 parameters). */
import { Tensor } from '../onnx/tensor';
import { ImageSignature, imageShape, MNIST_SIGNATURE } from '../signature';
import { Conv2d, flatFeatures, Forward, Linear, Module } from './module';

/** The seed's InceptionA block: four branches concatenated to 88 channels, no activation inside. */
export class InceptionA extends Module {
  readonly branch1x1: Conv2d;
  readonly branch5x5_1: Conv2d;
  readonly branch5x5_2: Conv2d;
  readonly branch3x3_1: Conv2d;
  readonly branch3x3_2: Conv2d;
  readonly branch3x3_3: Conv2d;
  readonly branch_pool: Conv2d;

  constructor(inChannels: number) {
    super();
    this.branch1x1 = this.add('branch1x1', new Conv2d(inChannels, 16, 1));
    this.branch5x5_1 = this.add('branch5x5_1', new Conv2d(inChannels, 16, 1));
    this.branch5x5_2 = this.add('branch5x5_2', new Conv2d(16, 24, 5, 2));
    this.branch3x3_1 = this.add('branch3x3_1', new Conv2d(inChannels, 16, 1));
    this.branch3x3_2 = this.add('branch3x3_2', new Conv2d(16, 24, 3, 1));
    this.branch3x3_3 = this.add('branch3x3_3', new Conv2d(24, 24, 3, 1));
    this.branch_pool = this.add('branch_pool', new Conv2d(inChannels, 24, 1));
  }

  forward(f: Forward, x: Tensor): Tensor {
    const branch1x1 = this.branch1x1.forward(f, x);
    let branch5x5 = this.branch5x5_1.forward(f, x);
    branch5x5 = this.branch5x5_2.forward(f, branch5x5);
    let branch3x3 = this.branch3x3_1.forward(f, x);
    branch3x3 = this.branch3x3_2.forward(f, branch3x3);
    branch3x3 = this.branch3x3_3.forward(f, branch3x3);
    let branchPool = f.avgPool2d(x, 3, 1, 1);
    branchPool = this.branch_pool.forward(f, branchPool);
    return f.cat([branch1x1, branch5x5, branch3x3, branchPool], 1);
  }
}

/**
 * The seed's inception net: conv1, InceptionA(10), conv2, InceptionA(20), fc; on MNIST 97,298 parameters (fc takes
 * 88·4·4 = 1408, found as the seed found it). On other images conv1 takes their channels, fc their features and gives
 * their classes.
 */
export class InceptionNet extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly incep1: InceptionA;
  readonly incep2: InceptionA;
  readonly fc: Linear;

  constructor(s: ImageSignature = MNIST_SIGNATURE, fcInputs?: number) {
    super();
    this.conv1 = this.add('conv1', new Conv2d(s.channels, 10, 5));
    this.conv2 = this.add('conv2', new Conv2d(88, 20, 5));
    this.incep1 = this.add('incep1', new InceptionA(10));
    this.incep2 = this.add('incep2', new InceptionA(20));
    const inputs = fcInputs ?? flatFeatures('inception', imageShape(s), () => new InceptionNet(s, 1));
    this.fc = this.add('fc', new Linear(inputs, s.classes));
  }

  /** Everything before fc: the flattened features. */
  features(f: Forward, x: Tensor): Tensor {
    x = f.relu(f.maxPool2d(this.conv1.forward(f, x), 2));
    x = this.incep1.forward(f, x);
    x = f.relu(f.maxPool2d(this.conv2.forward(f, x), 2));
    x = this.incep2.forward(f, x);
    return f.flatten(x);
  }

  forward(f: Forward, x: Tensor): Tensor {
    return this.fc.forward(f, this.features(f, x));
  }
}
