/**
 * LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as a user would define a network of their own: modules
 * registered in the constructor, a `forward` that reads like PyTorch's. 61,706 parameters.
 */
import { Conv2d, Forward, Linear, Module, Tensor, defineNetwork } from 'ingraph';

export class LeNet5 extends Module {
  conv1 = this.add('conv1', new Conv2d(1, 6, 5, 2)); // 28x28 -> 28x28
  conv2 = this.add('conv2', new Conv2d(6, 16, 5)); // 14x14 -> 10x10
  fc1 = this.add('fc1', new Linear(16 * 5 * 5, 120));
  fc2 = this.add('fc2', new Linear(120, 84));
  fc3 = this.add('fc3', new Linear(84, 10));

  forward(f: Forward, x: Tensor): Tensor {
    x = f.maxPool2d(f.relu(this.conv1.forward(f, x)), 2);
    x = f.maxPool2d(f.relu(this.conv2.forward(f, x)), 2);
    x = f.flatten(x);
    x = f.relu(this.fc1.forward(f, x));
    x = f.relu(this.fc2.forward(f, x));
    return this.fc3.forward(f, x);
  }
}

/** The network as ingraph trains, exports and evaluates it; its name is recorded in every artifact. */
export const lenet5 = defineNetwork('lenet5', () => new LeNet5());
