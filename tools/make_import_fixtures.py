#!/usr/bin/env python3
"""PyTorch exports and float64 references for importing models (test/import.test.ts).

Run once with Debian's PyTorch (`apt-get install python3-torch`; /usr/bin/python3 has it):
    /usr/bin/python3 tools/make_import_fixtures.py
Writes test/fixtures/import/:
- residual.onnx, inception.onnx: the seed's two nets exported as a new user would (eval mode, input "input", output
  "logits", dynamic batch; PyTorch writes x.view(n, -1) as Shape -> Gather -> Unsqueeze -> Concat -> Reshape);
- smallnet.onnx: a 3x16x16, 4-class CNN of the ops small exports use: a depthwise conv, BatchNorm2d after a ReLU and
  BatchNorm1d after a Linear (kept as BatchNormalization nodes with their state_dict names), LeakyReLU, ReLU6 (Clip),
  Sigmoid, Tanh, a ceil-mode MaxPool, AvgPool, torch.flatten, a slice;
- folded.onnx: Conv -> BatchNorm2d -> ReLU, which the eval export folds into the conv (initializers renamed);
- smallnet_train.onnx: smallnet's weights in a training-mode export (`training=TrainingMode.TRAINING,
  do_constant_folding=False`, what onnxruntime's training artifacts required): BatchNormalization with its five
  outputs, Clip's bounds cast at run time;
- dropnet.onnx: flatten -> Dropout(0.3), a training-mode export (Dropout with its ratio and mask);
- dropfc.onnx: an MLP on 1x28x28 with Dropout(0.5) between its layers (training-mode export), to train;
- mixnet.onnx: the shape and arithmetic ops of small exports: Split, Concat, Mul/Sub/Div by constants,
  GlobalAveragePool, Squeeze, Unsqueeze, Transpose, MatMul with a parameter, LayerNorm (ReduceMean, Pow, Sqrt),
  Softmax, LogSoftmax, Gemm;
- <name>.json / .bin per model: images (uint8), labels, the normalisation, PyTorch's logits in eval mode (running
  statistics: what the file computes), and, where every initializer is a state_dict entry, the cross-entropy loss
  and each parameter's gradient in training mode (BatchNorm on the batch's statistics) and the running statistics
  after that step (momentum 0.1, unbiased variance), in float64 from the float32 weights; and after 3 SGD steps
  (lr 0.05, momentum 0.9) on 3 more batches, the parameters and running statistics in float64 and in float32.
"""
import copy
import json
import os
import sys

import onnx
import torch
from onnx import numpy_helper
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_fixtures import InceptionNet, ResidualNet, tensor_writer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'import')
BATCH = 8


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, stride=2, bias=False)
        self.pw = nn.Conv2d(8, 12, 1)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avg = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(12 * 2 * 2, 16)
        self.bn2 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        x = self.bn1(F.relu(self.conv1(x)))
        x = F.leaky_relu(self.dw(x), 0.1)
        x = F.relu6(self.pw(x))
        x = self.avg(self.pool(x))
        x = torch.flatten(x, 1)
        x = torch.tanh(self.bn2(self.fc1(x)))
        return self.fc2(x) * torch.sigmoid(x[:, :4])


class FoldedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 5)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 12 * 12, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.view(x.size(0), -1))


def randomise_batchnorm(model, gen):
    """Running statistics and affine parameters away from their defaults, so a wrong BN formula shows."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.3, 0.3, generator=gen)


class MixNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.w = nn.Parameter(torch.randn(4, 6) * 0.5)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        b, c = torch.split(self.conv(x), [2, 2], dim=1)
        d = torch.cat([b * 2, c - 1], dim=1)
        s = F.adaptive_avg_pool2d(d, 1).squeeze(3).squeeze(2)
        t = s.unsqueeze(1).transpose(1, 2).squeeze(2)
        m = self.norm(torch.matmul(t, self.w))
        return self.fc(torch.softmax(m, dim=1) + F.log_softmax(m, dim=1) / 3)


class DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.drop(torch.flatten(x, 1))


class DropFc(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x.view(x.size(0), -1)))))


def export_training_mode(name, model, shape):
    """Exports in training mode; the trace moves BN's running statistics, so the file gets the model's own back."""
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    path = os.path.join(OUT, f'{name}.onnx')
    torch.onnx.export(model, torch.zeros(2, *shape), path, input_names=['input'],
                      output_names=['logits'], dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    m = onnx.load(path)
    for t in m.graph.initializer:
        if t.name in buffers:
            t.CopyFrom(numpy_helper.from_array(buffers[t.name].numpy(), t.name))
    onnx.save(m, path)


STEPS, LR, MOMENTUM = 3, 0.05, 0.9


def train_steps(start, gen, shape, classes, mean, std, put, steps=STEPS, batch_size=BATCH):
    """`steps` SGD steps (momentum) in training mode from `start`'s float32 weights, in float64 and in float32."""
    images = torch.randint(0, 256, (steps * batch_size, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, classes, (steps * batch_size,), dtype=torch.int64, generator=gen)
    put('steps/images', images, 'uint8')
    put('steps/labels', labels.to(torch.uint8), 'uint8')
    for dtype, suffix in [(torch.float64, ''), (torch.float32, '_f32')]:
        model = copy.deepcopy(start).to(dtype).train()
        m = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        for k in range(steps):
            batch = slice(k * batch_size, (k + 1) * batch_size)
            opt.zero_grad()
            F.cross_entropy(model((images[batch].to(dtype) / 255 - m) / s), labels[batch]).backward()
            opt.step()
        for k, p in model.named_parameters():
            put(f'param{steps}{suffix}/{k}', p)
        for k, b in model.named_buffers():
            if 'running' in k:
                put(f'running{steps}{suffix}/{k}', b)


def write(name, model, shape, classes, mean, std, gradients):
    gen = torch.Generator().manual_seed(7)
    randomise_batchnorm(model, gen)
    if name == 'smallnet':
        export_training_mode('smallnet_train', copy.deepcopy(model), shape)
    model.eval()
    path = os.path.join(OUT, f'{name}.onnx')
    torch.onnx.export(model, torch.zeros(1, *shape), path, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=13)
    start = copy.deepcopy(model)
    images = torch.randint(0, 256, (BATCH, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, classes, (BATCH,), dtype=torch.int64, generator=gen)
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    model = model.double()
    x = (images.double() / 255 - m) / s
    with torch.no_grad():
        logits = model(x)
    model.train()
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
    blobs = bytearray()
    index = {'batch': BATCH, 'mean': mean, 'std': std, 'loss1': loss.item(), 'tensors': {}}
    put = tensor_writer(blobs, index)
    put('images', images, 'uint8')
    put('labels', labels.to(torch.uint8), 'uint8')
    put('logits', logits)
    if gradients:
        for k, p in model.named_parameters():
            put(f'grad1/{k}', p.grad)
        for k, b in model.named_buffers():
            if 'running' in k:
                put(f'running1/{k}', b)
        train_steps(start, gen, shape, classes, mean, std, put)
    with open(os.path.join(OUT, f'{name}.bin'), 'wb') as f:
        f.write(blobs)
    with open(os.path.join(OUT, f'{name}.json'), 'w') as f:
        json.dump(index, f, indent=1)
    print(name, round(loss.item(), 6), file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    write('residual', ResidualNet(), (1, 28, 28), 10, [0.1307], [0.3081], True)
    write('inception', InceptionNet(), (1, 28, 28), 10, [0.1307], [0.3081], False)
    write('smallnet', SmallNet(), (3, 16, 16), 4, [0.5, 0.45, 0.4], [0.25, 0.25, 0.3], True)
    write('folded', FoldedNet(), (1, 28, 28), 10, [0.1307], [0.3081], False)
    write('mixnet', MixNet(), (2, 8, 8), 5, [0.4, 0.6], [0.2, 0.3], True)
    export_training_mode('dropnet', DropNet(), (1, 10, 10))
    export_training_mode('dropfc', DropFc(), (1, 28, 28))


if __name__ == '__main__':
    main()
