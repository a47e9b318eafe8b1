/**
 * The whole training step against PyTorch: same initial weights, same batches; loss, every gradient and every
 * updated parameter after one and after three steps (fixtures from tools/make_torch_fixtures.py). The data-parallel
 * step (2 and 3 workers: even and uneven shards) is held to the same fixtures.
 */
import * as ort from 'onnxruntime-node';
import {
  buildFlatTrainingModel,
  buildLoopTrainingModel,
  buildShardedTrainingModels,
  buildTrainingModel,
} from '../src/plan';
import { ADAMW_DEFAULTS, adamw } from '../src/optim/adamw';
import { sgd } from '../src/optim/sgd';
import { ParallelTrainingStep } from '../src/runtime/parallel-step';
import { StepRunner, TrainingStep } from '../src/runtime/step';
import { WEBGPU_GRADIENTS } from '../src/runtime/steps';
import { parseModel } from '../src/onnx/model';
import { loadTorchFixture, relError } from './helpers/torch-fixture';

/** Relative tolerance (max abs error over max abs value, per tensor) for losses, gradients and SGD's parameters. */
const REL_TOL = 1e-4;
/**
 * AdamW divides each gradient element by its own magnitude, so where |g| is near eps (1e-8) a float32 rounding
 * difference in g (well inside REL_TOL) becomes a visible difference in that element's update.
 */
const ADAMW_PARAM_TOL = 1e-3;

describe.each([
  ['residual', 'sgd'],
  ['residual', 'adamw'],
  ['inception', 'sgd'],
  ['inception', 'adamw'],
] as const)('%s net, %s: one training step equals PyTorch', (net, optName) => {
  const fx = loadTorchFixture(net, optName);
  const optimizer =
    fx.config.optimizer === 'sgd'
      ? sgd({ momentum: fx.config.momentum ?? 0, weightDecay: fx.config.weightDecay })
      : adamw({ ...ADAMW_DEFAULTS, weightDecay: fx.config.weightDecay });
  const graph = buildTrainingModel(net, optimizer, { exposeGradients: true });
  const init = new Map(graph.params.map((p) => [p.name, fx.get(`init/${p.name}`)]));
  const images = fx.images();
  const labels = fx.labels();
  const B = fx.batch;

  it('matches loss and every gradient after step 1, and every parameter after steps 1 and 3', async () => {
    expect(fx.keys('init/').sort()).toEqual(graph.params.map((p) => p.name).sort());
    const step = await TrainingStep.open(graph, init, new Map(), { ep: 'cpu', threads: 1 });
    // Step 1 is run through the session directly too, to read the exposed gradients.
    const feeds: Record<string, ort.Tensor> = {
      images: new ort.Tensor('uint8', images.slice(0, B * 784), [B, 1, 28, 28]),
      labels: new ort.Tensor('int64', labels.slice(0, B), [B]),
      lr: new ort.Tensor('float32', Float32Array.of(fx.config.lr), []),
    };
    for (const p of graph.params) feeds[p.name] = new ort.Tensor('float32', init.get(p.name) as Float32Array, p.shape);
    for (const s of graph.states)
      feeds[s.name] = new ort.Tensor('float32', new Float32Array(s.shape.reduce((a, b) => a * b, 1)), s.shape);
    const out = await step.opened.session.run(feeds);
    for (const p of graph.params) {
      const err = relError(out[`grad.${p.name}`].data as Float32Array, fx.get(`grad1/${p.name}`));
      if (err >= REL_TOL) throw new Error(`gradient of ${p.name}: relative error ${err}`);
    }

    await expectThreeSteps(step);
  });

  it('with conv weight gradients computed as Convs (the formulation for cuDNN), three steps match as well', async () => {
    const asConv = buildTrainingModel(net, optimizer, { gradients: { convWeightGradient: 'conv' } });
    expect(asConv.bytes).not.toEqual(graph.bytes);
    await expectThreeSteps(await TrainingStep.open(asConv, init, new Map(), { ep: 'cpu', threads: 1 }));
  });

  it('with the WebGPU forms (max-pool gradient by masks, composed log-softmax) on the CPU provider, three steps match as well', async () => {
    const webgpu = buildTrainingModel(net, optimizer, { gradients: WEBGPU_GRADIENTS });
    const ops = new Set(parseModel(webgpu.bytes).nodes.map((n) => n.op));
    expect(['MaxUnpool', 'LogSoftmax', 'SpaceToDepth', 'ScatterElements'].filter((op) => ops.has(op))).toEqual([]);
    await expectThreeSteps(await TrainingStep.open(webgpu, init, new Map(), { ep: 'cpu', threads: 1 }));
  });

  it('the WebGPU page’s step (float32 pixels and one-hot labels, WebGPU forms) matches as well, run by hand', async () => {
    const webgpu = buildTrainingModel(net, optimizer, { gradients: WEBGPU_GRADIENTS, floatInputs: true });
    const session = await ort.InferenceSession.create(webgpu.bytes, { intraOpNumThreads: 1 });
    const feeds: Record<string, ort.Tensor> = { lr: new ort.Tensor('float32', Float32Array.of(fx.config.lr), []) };
    for (const p of webgpu.params)
      feeds[p.name] = new ort.Tensor('float32', Float32Array.from(init.get(p.name) as Float32Array), p.shape);
    for (const st of webgpu.states)
      feeds[st.name] = new ort.Tensor('float32', new Float32Array(st.shape.reduce((a, b) => a * b, 1)), st.shape);
    const losses: number[] = [];
    for (let k = 0; k < 3; k++) {
      feeds.images = new ort.Tensor('float32', Float32Array.from(images.subarray(k * B * 784, (k + 1) * B * 784)), [
        B,
        1,
        28,
        28,
      ]);
      const oneHot = new Float32Array(B * 10);
      for (let i = 0; i < B; i++) oneHot[i * 10 + Number(labels[k * B + i])] = 1;
      feeds.labels = new ort.Tensor('float32', oneHot, [B, 10]);
      const out = await session.run(feeds);
      for (const name of [...webgpu.trainable, ...webgpu.states.map((st) => st.name)])
        feeds[name] = out[`updated.${name}`];
      losses.push((out.loss.data as Float32Array)[0]);
      if (k === 2)
        for (const p of webgpu.params) {
          const err = relError(feeds[p.name].data as Float32Array, fx.get(`param3/${p.name}`));
          if (err >= (optName === 'adamw' ? ADAMW_PARAM_TOL : REL_TOL))
            throw new Error(`${p.name} after step 3: relative error ${err}`);
        }
    }
    await session.release();
    losses.forEach((l, k) => expect(Math.abs(l - fx.losses[k]) / fx.losses[k]).toBeLessThan(REL_TOL));
  });

  it('the flat one-session step (buildFlatTrainingModel) matches as well', async () => {
    await expectThreeSteps(
      await TrainingStep.open(buildFlatTrainingModel(net, optimizer), init, new Map(), { ep: 'cpu', threads: 1 }),
    );
  });

  it('three steps in one run of the Loop graph (buildLoopTrainingModel) match as well', async () => {
    const step = await TrainingStep.open(buildLoopTrainingModel(net, optimizer), init, new Map(), {
      ep: 'cpu',
      threads: 1,
    });
    const results = await step.runSteps(images, labels, B, [fx.config.lr, fx.config.lr, fx.config.lr]);
    results.forEach((r, k) => expect(Math.abs(r.loss - fx.losses[k]) / fx.losses[k]).toBeLessThan(REL_TOL));
    const params = step.params();
    for (const p of graph.params) {
      const err = relError(params.get(p.name) as Float32Array, fx.get(`param3/${p.name}`));
      if (err >= (optName === 'adamw' ? ADAMW_PARAM_TOL : REL_TOL))
        throw new Error(`${p.name} after step 3: relative error ${err}`);
    }
    await step.release();
  });

  it.each([2, 3])('the data-parallel step with %i workers matches as well', async (k) => {
    const sharded = buildShardedTrainingModels(net, optimizer, k);
    await expectThreeSteps(await ParallelTrainingStep.open(graph, sharded, init, new Map(), B));
  });

  /** Three steps on the fixture's batches: losses, and every parameter after steps 1 and 3, as PyTorch has them. */
  async function expectThreeSteps(step: StepRunner): Promise<void> {
    const losses: number[] = [];
    for (let k = 0; k < 3; k++) {
      const r = await step.run(
        images.subarray(k * B * 784, (k + 1) * B * 784),
        labels.subarray(k * B, (k + 1) * B),
        B,
        fx.config.lr,
      );
      losses.push(r.loss);
      if (k === 0 || k === 2) {
        const params = step.params();
        for (const p of graph.params) {
          const err = relError(params.get(p.name) as Float32Array, fx.get(`param${k + 1}/${p.name}`));
          if (err >= (optName === 'adamw' ? ADAMW_PARAM_TOL : REL_TOL))
            throw new Error(`${p.name} after step ${k + 1}: relative error ${err}`);
        }
      }
    }
    losses.forEach((l, k) => expect(Math.abs(l - fx.losses[k]) / fx.losses[k]).toBeLessThan(REL_TOL));
    await step.release();
  }
});
