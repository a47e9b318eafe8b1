/**
 * torchvision's resnet18(num_classes=10) on 3x32x32, a training-mode export with its 20 BatchNorm layers: two SGD
 * steps from the same weights on the same batches reach PyTorch's float64 parameters and running statistics as
 * near as PyTorch's float32 does (tools/make_resnet18_reference.py writes the export and the reference; 45 MB, so it
 * runs where Debian's python3-torch and python3-torchvision are installed, and is skipped, with a warning, elsewhere).
 */
import { spawnSync } from 'child_process';
import { join } from 'path';
import { importModel } from '../src/api';
import { sgd } from '../src/optim/sgd';
import { TrainingPlan } from '../src/plan';
import { TrainingStep } from '../src/runtime/step';
import { ROOT, tempDir } from './helpers/cli';
import { fartherThanTorch32, loadFixture } from './helpers/torch-fixture';

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision, onnx']).status === 0;
if (!hasTorch)
  console.warn('resnet18.test.ts: no python3-torch and python3-torchvision; the resnet18 check is skipped');

(hasTorch ? describe : describe.skip)('torchvision resnet18, imported', () => {
  it('trains two SGD steps to PyTorch float64’s parameters and running statistics, as near as PyTorch float32', async () => {
    const dir = tempDir('ingraph-resnet18-');
    const made = spawnSync('/usr/bin/python3', [join(ROOT, 'tools', 'make_resnet18_reference.py'), dir], {
      encoding: 'utf8',
    });
    expect(made.status).toBe(0);
    const fx = loadFixture(join(dir, 'resnet18'));
    const network = importModel(join(dir, 'resnet18.onnx'));
    const signature = {
      channels: 3,
      height: 32,
      width: 32,
      classes: 10,
      mean: [0.49, 0.48, 0.45],
      std: [0.25, 0.24, 0.26],
    };
    const plan = new TrainingPlan({ network, signature, optimizer: sgd({ momentum: 0.9, weightDecay: 0 }) });
    const step = await TrainingStep.open(plan.step(), plan.initialParams(0), plan.initialBuffers(0), { ep: 'cpu' });
    const [images, labels] = [fx.uint8('steps/images'), BigInt64Array.from(fx.uint8('steps/labels'), BigInt)];
    const B = fx.batch;
    for (let k = 0; k < 2; k++) await step.run(images.subarray(k * B * 3072), labels.subarray(k * B), B, 0.05);
    const ours = new Map([...step.params(), ...step.states()]);
    await step.release();
    const { far, compared } = fartherThanTorch32(fx, 2, ours);
    expect([far, compared]).toEqual([[], 62 + 40]);
  }, 300000);
});
