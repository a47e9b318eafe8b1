"""Writes test/fixtures/torch_recipe.json: PyTorch's values for the training-recipe options, as references.

- label smoothing: loss and d loss / d logits of F.cross_entropy(..., label_smoothing=eps) in float64;
- warm-up: the learning rate of every step under SequentialLR(LinearLR(1/W -> 1 over W steps), then
  CosineAnnealingLR over the remaining steps), and under LinearLR then a constant rate.

Run once with any PyTorch (made with Debian's python3-torch 1.13): python3 tools/make_recipe_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'torch_recipe.json')


def smoothing_case(eps):
    g = torch.Generator().manual_seed(7)
    logits = (torch.randn(5, 10, generator=g, dtype=torch.float64) * 2).requires_grad_()
    labels = torch.tensor([3, 0, 9, 3, 7])
    loss = F.cross_entropy(logits, labels, label_smoothing=eps)
    loss.backward()
    return {'eps': eps, 'logits': logits.detach().flatten().tolist(), 'labels': labels.tolist(), 'loss': loss.item(), 'grad': logits.grad.flatten().tolist()}


def lrs(base, warmup, total, then):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    if then == 'cosine':
        after = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup)
    else:
        after = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [ramp, after], milestones=[warmup])
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return {'base': base, 'warmup': warmup, 'total': total, 'schedule': then, 'lrs': out}


def main():
    fixture = {
        'torch': torch.__version__,
        'smoothing': [smoothing_case(0.1), smoothing_case(0.3)],
        'warmup': [lrs(0.02, 5, 23, 'cosine'), lrs(0.01, 4, 12, 'constant')],
    }
    with open(OUT, 'w') as f:
        json.dump(fixture, f, indent=1)


if __name__ == '__main__':
    main()
