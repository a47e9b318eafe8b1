#!/usr/bin/env python3
"""Reference values from PyTorch in float64 for the residual net on 3x32x32 images in 10 classes (test/cifar.test.ts).

Run once with Debian's PyTorch (`apt-get install python3-torch`; /usr/bin/python3 has it):
    /usr/bin/python3 tools/make_torch_cifar_fixture.py
Writes test/fixtures/torch_step_residual_cifar.json (index) and .bin (little-endian float32 / uint8 data): the images
(deterministic pseudo-random bytes, two batches of 16), their labels, the normalisation, the initial weights (PyTorch's
default init, seed 0, rounded to float32), and the loss, every gradient after one SGD step and every parameter after
two, computed in float64 from those float32 weights.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_fixtures import ResidualNet, tensor_writer  # noqa: E402  the seed's net, as the MNIST fixtures use it

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures')
BATCH, STEPS = 16, 2
MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def main():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (BATCH * STEPS, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (BATCH * STEPS,), dtype=torch.int64)
    model = ResidualNet(in_channels=3, features=32 * 5 * 5)
    # The weights as float32 (what ingraph stores), then the arithmetic in float64.
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model = model.double()
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    x_all = (images.double() / 255 - mean) / std
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    blobs = bytearray()
    index = {'config': {'optimizer': 'sgd', 'lr': 0.01, 'momentum': 0.5, 'weightDecay': 0.0}, 'batch': BATCH,
             'mean': MEAN, 'std': STD, 'tensors': {}}

    put = tensor_writer(blobs, index)

    put('images', images, 'uint8')
    put('labels', labels.to(torch.uint8), 'uint8')
    for k, v in init.items():
        put(f'init/{k}', v)
    for step in range(STEPS):
        xb, yb = x_all[step * BATCH:(step + 1) * BATCH], labels[step * BATCH:(step + 1) * BATCH]
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        index[f'loss{step + 1}'] = loss.item()
        for k, p in model.named_parameters():
            if step == 0:
                put(f'grad1/{k}', p.grad)
            put(f'param{step + 1}/{k}', p)
    with open(os.path.join(OUT, 'torch_step_residual_cifar.bin'), 'wb') as f:
        f.write(blobs)
    with open(os.path.join(OUT, 'torch_step_residual_cifar.json'), 'w') as f:
        json.dump(index, f, indent=1)
    print('residual cifar', [round(index[f'loss{i + 1}'], 6) for i in range(STEPS)], file=sys.stderr)


if __name__ == '__main__':
    main()
