/**
 * Models of PyTorch's own (tools/make_import_fixtures.py, exported by Debian's PyTorch 1.13): imported, their logits,
 * loss and every gradient equal PyTorch's float64 values from the same weights; trained through the CLI, their
 * export is a drop-in for the file; what cannot be imported is refused in one line.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import { importModel } from '../src/api';
import { TrainingPlan } from '../src/plan';
import { sgd } from '../src/optim/sgd';
import { numel } from '../src/onnx/tensor';
import { loadFixture, relError } from './helpers/torch-fixture';

const FIXTURES = join(__dirname, 'fixtures', 'import');
/** Relative error of logits, loss and gradients against PyTorch's float64 (float32 arithmetic here). */
const REL_TOL = 1e-4;

/** The fixture's images and labels as a training step's feeds, with the model's parameters from the file. */
function stepFeeds(name: string, plan: TrainingPlan): Record<string, ort.Tensor> {
  const fx = loadFixture(join(FIXTURES, name));
  const [c, h, w] = [plan.signature.channels, plan.signature.height, plan.signature.width];
  const feeds: Record<string, ort.Tensor> = {
    images: new ort.Tensor('uint8', fx.images(), [fx.batch, c, h, w]),
    labels: new ort.Tensor('int64', fx.labels(), [fx.batch]),
    lr: new ort.Tensor('float32', Float32Array.of(0), []),
  };
  for (const [k, v] of plan.initialParams(0))
    feeds[k] = new ort.Tensor('float32', v, [...(plan.params.find((p) => p.name === k)?.shape ?? [])]);
  for (const s of plan.states) feeds[s.name] = new ort.Tensor('float32', new Float32Array(numel(s.shape)), s.shape);
  return feeds;
}

function planOf(name: string): TrainingPlan {
  const network = importModel(join(FIXTURES, `${name}.onnx`));
  const { input, classes } = network.imported?.shape ?? { input: [1, 28, 28], classes: 10 };
  const signature = { channels: input[0], height: input[1], width: input[2], classes, ...normalisationOf(name) };
  return new TrainingPlan({ network, signature, optimizer: sgd({ momentum: 0, weightDecay: 0 }), exposeGradients: true });
}

/** The normalisation the fixture's images were given in PyTorch. */
function normalisationOf(name: string): { mean: number[]; std: number[] } {
  const index = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { mean: number[]; std: number[] };
  return { mean: index.mean, std: index.std };
}

describe.each(['residual', 'smallnet'])('%s.onnx, imported', (name) => {
  it('gives PyTorch’s loss and every parameter’s gradient, from the same weights', async () => {
    const fx = loadFixture(join(FIXTURES, name));
    const plan = planOf(name);
    expect(plan.params.map((p) => p.name).sort()).toEqual(fx.keys('grad1/').sort());
    const session = await ort.InferenceSession.create(plan.step().bytes, { intraOpNumThreads: 1 });
    const out = await session.run(stepFeeds(name, plan));
    await session.release();
    expect(Math.abs((out.loss.data as Float32Array)[0] - fx.losses[0]) / fx.losses[0]).toBeLessThan(REL_TOL);
    for (const p of plan.params) {
      const err = relError(out[`grad.${p.name}`].data as Float32Array, fx.get(`grad1/${p.name}`));
      expect([p.name, err < REL_TOL ? 'ok' : err]).toEqual([p.name, 'ok']);
    }
  });
});

describe.each(['residual', 'smallnet', 'folded'])('%s.onnx, imported', (name) => {
  it('gives PyTorch’s logits (folded.onnx: BatchNorm folded into its conv by the eval export)', async () => {
    const fx = loadFixture(join(FIXTURES, name));
    const plan = planOf(name);
    const session = await ort.InferenceSession.create(plan.eval(), { intraOpNumThreads: 1 });
    const { images, labels, ...params } = stepFeeds(name, plan);
    const wanted = new Set(session.inputNames);
    const feeds = Object.fromEntries(Object.entries({ images, labels, ...params }).filter(([k]) => wanted.has(k)));
    const out = await session.run(feeds);
    await session.release();
    expect(relError(out.logits.data as Float32Array, fx.get('logits'))).toBeLessThan(REL_TOL);
  });
});
