/**
 * Data-parallel training (runtime/parallel-step.ts) against the one-session step: the same parameters and optimizer
 * state up to float rounding, for even and uneven shards, a batch smaller than the worker count, frozen parameters
 * and both optimizers; and bit-identical results for a given worker count. The flat one-session step against the
 * per-tensor one, likewise; several flat steps in one run of a Loop graph equal as many runs of the flat step, bit
 * for bit. PyTorch parity: train-parity.test.ts.
 */
import {
  buildFlatTrainingModel,
  buildLoopTrainingModel,
  buildShardedTrainingModels,
  buildTrainingModel,
} from '../src/plan';
import { emaStart, withEma } from '../src/optim/ema';
import { initParams, Params } from '../src/models/module';
import { ADAMW_DEFAULTS, adamw } from '../src/optim/adamw';
import { Optimizer } from '../src/optim/optimizer';
import { sgd } from '../src/optim/sgd';
import { ParallelTrainingStep, shardsOf } from '../src/runtime/parallel-step';
import { StepRunner, TrainingStep } from '../src/runtime/step';
import { rawImages, rawLabels, mnistSlice } from './helpers/cli';

const data = mnistSlice(64, 0);
const images = rawImages(data, 'train-images-idx3-ubyte');
const labels = BigInt64Array.from(rawLabels(data, 'train-labels-idx1-ubyte'), (l) => BigInt(l));
const isFrozen = (name: string) => name.startsWith('conv1.');

/** `steps` steps of batch `n` from the slice (with `lr`, or lr[i] at step i); the final parameters and state. */
async function train(
  step: StepRunner,
  n: number,
  steps: number,
  lr: number | number[],
): Promise<{ params: Params; states: Params; losses: number[] }> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = (i * n) % (64 - n + 1);
    losses.push(
      (await step.run(images.subarray(start * 784), labels.subarray(start), n, typeof lr === 'number' ? lr : lr[i]))
        .loss,
    );
  }
  const result = { params: step.params(), states: step.states(), losses };
  await step.release();
  return result;
}

function maxRelDiff(a: Params, b: Params): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name) as Float32Array;
    const scale = Math.max(...Array.from(y, Math.abs), 1e-6);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  }
  return worst;
}

/**
 * AdamW divides each gradient element by its own running magnitude: where that is tiny, a rounding difference in the
 * gradient becomes a visible one in the update (as against PyTorch: train-parity.test.ts).
 */
describe.each([
  ['sgd with momentum', () => sgd({ momentum: 0.9, weightDecay: 1e-4 }), 0.05, 1e-5],
  ['adamw', () => adamw(ADAMW_DEFAULTS), 0.001, 1e-3],
] as [string, () => Optimizer, number, number][])('%s', (_, optimizer, lr, tolerance) => {
  const graph = buildTrainingModel('residual', optimizer(), { isFrozen });
  const sharded = (k: number) => buildShardedTrainingModels('residual', optimizer(), k, { isFrozen });
  const init = initParams(graph.params, 3);

  it.each([
    [2, 16],
    [3, 16],
    [3, 2],
  ])('%i workers, batches of %i: parameters and state equal the one-session step up to rounding', async (k, n) => {
    const one = await train(await TrainingStep.open(graph, init, new Map(), { ep: 'cpu', threads: 1 }), n, 6, lr);
    const many = await train(await ParallelTrainingStep.open(graph, sharded(k), init, new Map(), n), n, 6, lr);
    expect([...many.params.keys()].sort()).toEqual(graph.params.map((p) => p.name).sort());
    expect([...many.states.keys()]).toEqual(graph.states.map((s) => s.name));
    expect(maxRelDiff(many.params, one.params)).toBeLessThan(tolerance);
    expect(maxRelDiff(many.states, one.states)).toBeLessThan(10 * tolerance);
    many.losses.forEach((l, i) => expect(Math.abs(l - one.losses[i])).toBeLessThan(1e-5));
    for (const [name, value] of many.params) if (isFrozen(name)) expect(value).toEqual(init.get(name));
    expect(maxRelDiff(new Map([['fc.weight', init.get('fc.weight') as Float32Array]]), many.params)).toBeGreaterThan(
      100 * tolerance,
    );
  });

  it('the flat one-session step (buildFlatTrainingModel) equals the per-tensor one up to rounding, and resumes exactly', async () => {
    const flatGraph = buildFlatTrainingModel('residual', withEma(optimizer(), 0.9), { isFrozen });
    const perTensor = buildTrainingModel('residual', withEma(optimizer(), 0.9), { isFrozen });
    const start = emaStart(init, perTensor.trainable);
    const one = await train(await TrainingStep.open(perTensor, init, start, { ep: 'cpu', threads: 1 }), 16, 6, lr);
    const flat = await train(await TrainingStep.open(flatGraph, init, start, { ep: 'cpu', threads: 1 }), 16, 6, lr);
    expect([...flat.params.keys()].sort()).toEqual(perTensor.params.map((p) => p.name).sort());
    expect([...flat.states.keys()].sort()).toEqual(perTensor.states.map((s) => s.name).sort());
    expect(maxRelDiff(flat.params, one.params)).toBeLessThan(tolerance);
    expect(maxRelDiff(flat.states, one.states)).toBeLessThan(10 * tolerance);
    for (const [name, value] of flat.params) if (isFrozen(name)) expect(value).toEqual(init.get(name));
    const half = await train(await TrainingStep.open(flatGraph, init, start, { ep: 'cpu', threads: 1 }), 16, 3, lr);
    const again = await TrainingStep.open(flatGraph, half.params, half.states, { ep: 'cpu', threads: 1 });
    for (let i = 3; i < 6; i++)
      await again.run(images.subarray(((i * 16) % 49) * 784), labels.subarray((i * 16) % 49), 16, lr);
    const resumed = { params: again.params(), states: again.states() };
    await again.release();
    expect(maxRelDiff(resumed.params, flat.params)).toBe(0);
    expect(maxRelDiff(resumed.states, flat.states)).toBe(0);
  });

  it('steps in a Loop (buildLoopTrainingModel): 4 + 2 steps in two runs equal 6 flat steps bit for bit', async () => {
    const options = { isFrozen };
    const start = emaStart(init, graph.trainable);
    const flat = await train(
      await TrainingStep.open(buildFlatTrainingModel('residual', withEma(optimizer(), 0.9), options), init, start, {
        ep: 'cpu',
        threads: 1,
      }),
      16,
      6,
      lr,
    );
    const loop = await TrainingStep.open(
      buildLoopTrainingModel('residual', withEma(optimizer(), 0.9), options),
      init,
      start,
      { ep: 'cpu', threads: 1 },
    );
    const lrs = [lr, lr / 2, lr, lr / 3, lr, lr / 4];
    const stacked = (from: number, to: number) => {
      const starts = Array.from({ length: to - from }, (_, k) => ((from + k) * 16) % 49);
      const im = new Uint8Array(starts.length * 16 * 784);
      const lb = new BigInt64Array(starts.length * 16);
      starts.forEach(
        (s, k) => (
          im.set(images.subarray(s * 784, (s + 16) * 784), k * 16 * 784),
          lb.set(labels.subarray(s, s + 16), k * 16)
        ),
      );
      return [im, lb] as const;
    };
    const flatVaried = await train(
      await TrainingStep.open(buildFlatTrainingModel('residual', withEma(optimizer(), 0.9), options), init, start, {
        ep: 'cpu',
        threads: 1,
      }),
      16,
      6,
      lrs,
    );
    const results = [
      ...(await loop.runSteps(...stacked(0, 4), 16, lrs.slice(0, 4))),
      ...(await loop.runSteps(...stacked(4, 6), 16, lrs.slice(4))),
    ];
    expect(results.map((r) => r.loss)).toEqual(flatVaried.losses);
    expect(maxRelDiff(loop.params(), flatVaried.params)).toBe(0);
    expect(maxRelDiff(loop.states(), flatVaried.states)).toBe(0);
    expect(maxRelDiff(flatVaried.params, flat.params)).toBeGreaterThan(0);
    await loop.release();
  });

  it('resumes from its own params() and states() exactly, and repeats bit for bit', async () => {
    const straight = await train(await ParallelTrainingStep.open(graph, sharded(2), init, new Map(), 16), 16, 6, lr);
    const first = await train(await ParallelTrainingStep.open(graph, sharded(2), init, new Map(), 16), 16, 3, lr);
    const again = await ParallelTrainingStep.open(graph, sharded(2), first.params, first.states, 16);
    const losses: number[] = [];
    for (let i = 3; i < 6; i++)
      losses.push(
        (await again.run(images.subarray(((i * 16) % 49) * 784), labels.subarray((i * 16) % 49), 16, lr)).loss,
      );
    const resumed = { params: again.params(), states: again.states() };
    await again.release();
    expect(maxRelDiff(resumed.params, straight.params)).toBe(0);
    expect(maxRelDiff(resumed.states, straight.states)).toBe(0);
    expect(losses).toEqual(straight.losses.slice(3));
  });
});

it('shards: contiguous, as equal as can be, none empty', () => {
  expect(shardsOf(64, 2)).toEqual([
    { start: 0, n: 32 },
    { start: 32, n: 32 },
  ]);
  expect(shardsOf(7, 3)).toEqual([
    { start: 0, n: 3 },
    { start: 3, n: 2 },
    { start: 5, n: 2 },
  ]);
  expect(shardsOf(2, 3)).toEqual([
    { start: 0, n: 1 },
    { start: 1, n: 1 },
  ]);
});
