#!/usr/bin/env python3
"""Reference values from PyTorch for the 20-step AdamW test (test/optimizer-parity.test.ts).

Run once with Debian's PyTorch (`apt-get install python3-torch`; /usr/bin/python3 has it):
    /usr/bin/python3 tools/make_adamw_fixtures.py
Writes test/fixtures/torch_adamw_20.json (index) and .bin (little-endian data): P parameters (float32), 20 gradients
of them (float32; per-element magnitudes log-uniform over 1e-10..1e-1, so that eps and tiny second moments matter),
and the parameters after 20 steps of torch.optim.AdamW (lr 1e-3, weight decay 1e-2, PyTorch's betas and eps) from
the same start and gradients in float64 (stored as float64: the reference) and in float32 (PyTorch's own rounding,
the yardstick).
"""
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures')
P, STEPS, LR, WD = 1024, 20, 1e-3, 1e-2


def run(init, grads, dtype):
    p = torch.nn.Parameter(init.to(dtype).clone())
    opt = torch.optim.AdamW([p], lr=LR, weight_decay=WD)
    for g in grads:
        p.grad = g.to(dtype).clone()
        opt.step()
    return p.detach()


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    init = (0.1 * torch.randn(P, generator=gen)).to(torch.float32)
    scale = 10 ** (-10 + 9 * torch.rand(P, generator=gen, dtype=torch.float64))
    grads = [(scale * torch.randn(P, generator=gen, dtype=torch.float64)).to(torch.float32) for _ in range(STEPS)]
    final64 = run(init, grads, torch.float64)
    final32 = run(init, grads, torch.float32)
    blobs = bytearray()
    index = {'config': {'lr': LR, 'weightDecay': WD, 'steps': STEPS, 'size': P}, 'tensors': {}}

    def put(key, t, dtype):
        raw = t.contiguous().numpy().astype('<f8' if dtype == 'float64' else '<f4').tobytes()
        index['tensors'][key] = {'offset': len(blobs), 'shape': list(t.shape), 'dtype': dtype}
        blobs.extend(raw)

    put('init', init, 'float32')
    put('grads', torch.stack(grads), 'float32')
    put('final64', final64, 'float64')
    put('final32', final32, 'float32')
    dist32 = ((final32.double() - final64).norm() / final64.norm()).item()
    index['torch32RelL2'] = dist32
    with open(os.path.join(OUT, 'torch_adamw_20.bin'), 'wb') as f:
        f.write(blobs)
    with open(os.path.join(OUT, 'torch_adamw_20.json'), 'w') as f:
        json.dump(index, f, indent=1)
    print('PyTorch float32 vs float64, relative L2 after 20 steps:', dist32)


if __name__ == '__main__':
    main()
