#!/usr/bin/env python3
"""PyTorch half of tools/bench: the seed's networks and training step, timed the same way as ingraph's.

/usr/bin/python3 tools/bench_torch.py --net residual --steps 100 --warmup 10 --threads 2 [--export FILE]
                                      [--device cpu|cuda] [--batch 64] [--compile]
Prints one JSON object: training images/s at --batch (the seed's SGD step on random MNIST-shaped data, reading the
loss every step as ingraph does), eval images/s at batch 1000, and, with --export, writes PyTorch's own ONNX export
of the net (weights as initializers). --compile times the step under torch.compile(mode="reduce-overhead"), which
replays CUDA graphs on a GPU: the upper anchor for a launch-bound step.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_fixtures import InceptionNet, ResidualNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--net', choices=['inception', 'residual'], required=True)
    ap.add_argument('--steps', type=int, default=100)
    ap.add_argument('--warmup', type=int, default=10)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--eval-batches', type=int, default=5)
    ap.add_argument('--export')
    ap.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--compile', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = (InceptionNet() if a.net == 'inception' else ResidualNet()).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(a.batch, 1, 28, 28, generator=g).to(dev), torch.randint(0, 10, (a.batch,), generator=g).to(dev)) for _ in range(8)]

    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = torch.compile(train_step, mode='reduce-overhead') if a.compile else train_step

    def sync():
        if a.device == 'cuda':
            torch.cuda.synchronize()

    for i in range(a.warmup):
        run(*batches[i % len(batches)]).item()
    sync()
    t0 = time.perf_counter()
    for i in range(a.steps):
        run(*batches[i % len(batches)]).item()
    sync()
    train_s = time.perf_counter() - t0

    model.eval()
    xe = torch.randn(1000, 1, 28, 28, generator=g).to(dev)
    with torch.no_grad():
        model(xe)
        sync()
        t0 = time.perf_counter()
        for _ in range(a.eval_batches):
            model(xe).argmax(1)
        sync()
        eval_s = time.perf_counter() - t0
    if a.export:
        torch.onnx.export(model.cpu(), xe[:1].cpu(), a.export, input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, opset_version=17)
    print(json.dumps({
        'torch': torch.__version__,
        'threads': a.threads,
        'device': a.device,
        'batch': a.batch,
        'compiled': a.compile,
        'trainImagesPerSecond': a.steps * a.batch / train_s,
        'trainStepMs': 1000 * train_s / a.steps,
        'evalImagesPerSecond': a.eval_batches * 1000 / eval_s,
    }))


if __name__ == '__main__':
    main()
