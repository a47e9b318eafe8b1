#!/usr/bin/env python3
"""torchvision's resnet18(num_classes=10) on 3x32x32 and PyTorch's reference of a few training steps, into a directory.

Used by test/resnet18.test.ts where Debian's python3-torch and python3-torchvision are installed (too large to
commit: the export is 45 MB). Writes DIR/resnet18.onnx (a training-mode export, BatchNorm kept, as onnxruntime's
artifacts wanted) and DIR/resnet18.json / .bin (tools/make_torch_fixtures.py's format): the batches, and after STEPS
SGD steps (make_import_fixtures.train_steps: lr 0.05, momentum 0.9) in training mode the parameters and running
statistics, in float64 and in float32.
    /usr/bin/python3 tools/make_resnet18_reference.py DIR
"""
import copy
import json
import os
import sys

import onnx
import torch
import torchvision
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_import_fixtures import LR, MOMENTUM, train_steps  # noqa: E402
from make_torch_fixtures import tensor_writer  # noqa: E402

BATCH, STEPS = 8, 2
MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def main(out):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    start = copy.deepcopy(model)
    path = os.path.join(out, 'resnet18.onnx')
    model.train()
    torch.onnx.export(model, torch.zeros(2, 3, 32, 32), path, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=13,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    # The trace moved BatchNorm's running statistics: the file gets the starting ones back.
    m = onnx.load(path)
    state = start.state_dict()
    for t in m.graph.initializer:
        if t.name in state:
            t.CopyFrom(numpy_helper.from_array(state[t.name].numpy(), t.name))
    onnx.save(m, path)
    gen = torch.Generator().manual_seed(1)
    blobs = bytearray()
    index = {'batch': BATCH, 'steps': STEPS, 'lr': LR, 'momentum': MOMENTUM, 'mean': MEAN, 'std': STD, 'tensors': {}}
    train_steps(start, gen, (3, 32, 32), 10, MEAN, STD, tensor_writer(blobs, index), STEPS, BATCH)
    with open(os.path.join(out, 'resnet18.bin'), 'wb') as f:
        f.write(blobs)
    with open(os.path.join(out, 'resnet18.json'), 'w') as f:
        json.dump(index, f)


if __name__ == '__main__':
    main(sys.argv[1])
