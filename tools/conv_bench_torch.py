#!/usr/bin/env python3
"""PyTorch half of tools/conv-bench: each conv layer's forward, input gradient and weight gradient, timed alone.

/usr/bin/python3 tools/conv_bench_torch.py --threads 1 --iters 20 LAYERS_JSON
LAYERS_JSON: a list of {"x": [N, C, H, W], "w": [Co, C, kh, kw], "pads": [top, left, bottom, right]}. Prints a JSON
list of {"fwd", "dx", "dw"} in milliseconds per call (median of 7 rounds of --iters calls), one per layer: the kernels
PyTorch's autograd runs for a Conv2d (aten::convolution_backward with one output mask each, as loss.backward() asks).
"""
import argparse
import json
import time

import torch


def timed(f, iters):
    for _ in range(3):
        f()
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(iters):
            f()
        rounds.append((time.perf_counter() - t0) / iters * 1000)
    return sorted(rounds)[3]


def layer_times(layer, iters):
    torch.manual_seed(0)
    x, w = torch.randn(*layer['x']), torch.randn(*layer['w'])
    top, left, bottom, right = layer['pads']
    assert (top, left) == (bottom, right), 'PyTorch convs pad both sides alike'
    pad = [top, left]
    y = torch.nn.functional.conv2d(x, w, padding=pad)
    dy = torch.randn_like(y)

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [1, 1], pad, [1, 1], False, [0, 0], 1, mask)

    return {
        'fwd': timed(lambda: torch.nn.functional.conv2d(x, w, padding=pad), iters),
        'dx': timed(backward([True, False, False]), iters),
        'dw': timed(backward([False, True, False]), iters),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--iters', type=int, default=20)
    ap.add_argument('layers')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with torch.no_grad():
        print(json.dumps([layer_times(layer, a.iters) for layer in json.loads(a.layers)]))


if __name__ == '__main__':
    main()
