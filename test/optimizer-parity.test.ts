/**
 * The optimizers' in-graph arithmetic over many steps against PyTorch in float64: the same start and the same 20
 * gradients (tools/make_adamw_fixtures.py), so only the update's own rounding differs. ingraph's float32 update must
 * end no further from float64 PyTorch than twice PyTorch's own float32 run does (here: within 10% of it).
 */
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'fs';
import { join } from 'path';
import { GraphBuilder } from '../src/onnx/builder';
import { Tensor } from '../src/onnx/tensor';
import { ADAMW_DEFAULTS, adamw } from '../src/optim/adamw';
import { runGraph } from './helpers/graph-check';

const base = join(__dirname, 'fixtures', 'torch_adamw_20');
const index = JSON.parse(readFileSync(`${base}.json`, 'utf8'));
const bin = readFileSync(`${base}.bin`);
function tensor(key: string): Float32Array | Float64Array {
  const e = index.tensors[key];
  const count = e.shape.reduce((a: number, b: number) => a * b, 1);
  const bytes = bin.buffer.slice(
    bin.byteOffset + e.offset,
    bin.byteOffset + e.offset + count * (e.dtype === 'float64' ? 8 : 4),
  );
  return e.dtype === 'float64' ? new Float64Array(bytes) : new Float32Array(bytes);
}

/** ||a - ref|| / ||ref||, in float64. */
function relL2(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let r = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (a[i] - ref[i]) ** 2;
    r += ref[i] ** 2;
  }
  return Math.sqrt(d / r);
}

it("AdamW: 20 steps end within twice PyTorch float32's distance of float64 PyTorch", async () => {
  const { lr, weightDecay, steps, size } = index.config;
  const opt = adamw({ ...ADAMW_DEFAULTS, weightDecay });
  const g = new GraphBuilder();
  const rate = g.input('lr', 'float32', []);
  const p = g.input('w', 'float32', [size]);
  const grad = g.input('grad', 'float32', [size]);
  const states = new Map(
    [...opt.globalState(), ...opt.paramState('w', [size])].map((s) => [s.name, g.input(s.name, 'float32', s.shape)]),
  );
  const global = opt.updateGlobal(g, new Map(opt.globalState().map((s) => [s.name, states.get(s.name) as Tensor])));
  const step = opt.update(
    g,
    rate,
    'w',
    p,
    grad,
    new Map(opt.paramState('w', [size]).map((s) => [s.name, states.get(s.name) as Tensor])),
    global,
  );
  g.output(step.param, 'updated.w');
  for (const [name, t] of [...global, ...step.state]) g.output(t, `updated.${name}`);
  const feeds: Record<string, ort.Tensor> = {
    lr: new ort.Tensor('float32', Float32Array.of(lr), []),
    w: new ort.Tensor('float32', tensor('init') as Float32Array, [size]),
  };
  for (const [name, t] of states)
    feeds[name] = new ort.Tensor('float32', new Float32Array(t.shape.length ? size : 1), t.shape as number[]);
  const grads = tensor('grads') as Float32Array;
  for (let k = 0; k < steps; k++) {
    feeds.grad = new ort.Tensor('float32', grads.slice(k * size, (k + 1) * size), [size]);
    const out = await runGraph(g, feeds);
    for (const name of ['w', ...states.keys()]) feeds[name] = out[`updated.${name}`];
  }
  const final64 = tensor('final64');
  const ours = relL2(feeds.w.data as Float32Array, final64);
  const torch32 = relL2(tensor('final32'), final64);
  expect(torch32).toBeGreaterThan(0);
  // The bound is twice; with its scalar factors in float64 ingraph lands on PyTorch's float32 run (ratio
  // 1.0005), against 1.33 when they were float32 (1 - 0.999^t alone off by 1.3e-5 at t = 1).
  expect(ours).toBeLessThanOrEqual(1.1 * torch32);
});
