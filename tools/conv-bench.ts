/**
 * tools/conv-bench: each conv layer of the networks, timed alone against PyTorch on this machine, in the same run.
 *
 *   tools/conv-bench [--nets inception,residual] [--batch 32] [--threads 1] [--repeats 5] [--iters 10] [--json FILE]
 *                    [--no-reference]
 *
 * For every Conv of a network, at its shape in the training step: the forward Conv, the input gradient and the weight
 * gradient as ingraph's gradient rules emit them (CPU formulations), each its own onnxruntime session, against the
 * kernels PyTorch's autograd runs for them (tools/conv_bench_torch.py). The defaults are what one data-parallel worker
 * of `ingraph train --threads 2` runs: a batch-32 shard on one core. ms per call: the median over the repeats, the two
 * sides alternated; the ratio is the median of the per-repeat ratios of the layer's three times summed (above 1:
 * ingraph slower). The first conv's input gradient is never computed (its input is the images).
 */
import { spawnSync } from 'child_process';
import { join } from 'path';
import { parseArgs } from 'util';
import * as ort from 'onnxruntime-node';
import { writeFileAtomic } from '../src/io/files';
import { appendGradients } from '../src/autodiff/gradients';
import { imagesInput, logitsOf, NetworkName } from '../src/models';
import { ForwardPlan } from '../src/plan';
import { GraphBuilder, Node } from '../src/onnx/builder';
import { encodeModel } from '../src/onnx/model';
import { numel, Tensor } from '../src/onnx/tensor';
import { gradientsFor } from '../src/runtime/steps';
import { PROJECT_ROOT } from '../src/version';
import { fmt, median, pairedRatio, PYTHON, table, TORCH_MALLOC } from './reference';

/** One Conv of a network at its training shape. */
interface ConvLayer {
  name: string;
  x: number[];
  w: number[];
  /** The conv's output shape, as the graph builder inferred it. */
  y: number[];
  pads: number[];
  /** Whether training computes the gradient of its input (not for a conv on the images). */
  inputGrad: boolean;
}

type Part = 'fwd' | 'dx' | 'dw';
const PARTS: Part[] = ['fwd', 'dx', 'dw'];
type Times = Record<Part, number | null>;

/** The Convs of `net`'s forward pass at batch `batch`, named by their layer. */
function convLayers(net: NetworkName, batch: number): ConvLayer[] {
  const g = new GraphBuilder();
  const params = new Set<string>();
  const plan = new ForwardPlan(net);
  logitsOf(
    g,
    plan.module,
    imagesInput(g, plan.signature, batch),
    (s) => {
      params.add(s.name);
      return g.input(s.name, 'float32', s.shape);
    },
    plan.signature,
    true,
  );
  const dependsOnParams = new Set(params);
  for (const n of g.nodes)
    if (n.inputs.some((t) => t && dependsOnParams.has(t.name))) n.outputs.forEach((o) => dependsOnParams.add(o.name));
  return g.nodes
    .filter((n) => n.op === 'Conv')
    .map((n) => {
      const [x, w] = n.inputs as Tensor[];
      const pads = n.attrs.pads?.kind === 'ints' ? [...n.attrs.pads.value] : [0, 0, 0, 0];
      return {
        name: w.name.replace(/\.weight$/, ''),
        x: x.shape as number[],
        w: w.shape as number[],
        y: n.outputs[0].shape as number[],
        pads,
        inputGrad: dependsOnParams.has(x.name),
      };
    });
}

/** Keeps only the nodes `outputs` depend on: the graphs below time one part, not the forward pass beside it. */
function prune(g: GraphBuilder, outputs: Tensor[]): void {
  const needed = new Set(outputs.map((t) => t.name));
  const kept: Node[] = [];
  for (const n of [...g.nodes].reverse()) {
    if (!n.outputs.some((o) => needed.has(o.name))) continue;
    kept.unshift(n);
    for (const t of n.inputs) if (t) needed.add(t.name);
  }
  g.nodes.splice(0, g.nodes.length, ...kept);
}

/**
 * The graph of one part of `layer`: inputs x, w and dy (the gradient of the conv's output); output `out`. The
 * gradients are those of sum(conv(x, w) · dy), so their graphs also hold the Expand and Mul (one pass over dy) that
 * turn that loss's gradient into dy.
 */
function partGraph(layer: ConvLayer, part: Part): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', layer.x);
  const w = g.input('w', 'float32', layer.w);
  const y = g.conv(x, w, null, { pads: layer.pads });
  let out = y;
  if (part !== 'fwd') {
    const dy = g.input('dy', 'float32', y.shape);
    const loss = g.reduceSum(
      g.mul(y, dy),
      y.shape.map((_, i) => i),
      false,
    );
    const wrt = part === 'dx' ? x : w;
    out = appendGradients(g, loss, [wrt], gradientsFor('cpu')).get(wrt.name) as Tensor;
    prune(g, [out]);
  }
  g.output(out, 'out');
  return encodeModel(g, { graphName: `${layer.name}_${part}` });
}

/** A session per part of each layer, with random feeds. */
async function openLayer(layer: ConvLayer, threads: number) {
  const random = (shape: number[]) =>
    new ort.Tensor(
      'float32',
      Float32Array.from({ length: numel(shape) }, () => Math.random() - 0.5),
      shape,
    );
  const feeds = { x: random(layer.x), w: random(layer.w), dy: random(layer.y) };
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  } as const;
  const parts = PARTS.filter((p) => p !== 'dx' || layer.inputGrad);
  const sessions = await Promise.all(
    parts.map(async (p) => [p, await ort.InferenceSession.create(partGraph(layer, p), options)] as const),
  );
  return sessions.map(([part, session]) => ({
    part,
    feeds: Object.fromEntries(session.inputNames.map((name) => [name, feeds[name as keyof typeof feeds]])),
    session,
  }));
}

/** ms per call of each part: the median of 7 rounds of `iters` calls after 3 warm-up calls, as the PyTorch side does. */
async function ingraphTimes(opened: Awaited<ReturnType<typeof openLayer>>, iters: number): Promise<Times> {
  const times: Times = { fwd: null, dx: null, dw: null };
  for (const { part, session, feeds } of opened) {
    for (let i = 0; i < 3; i++) await session.run(feeds);
    const rounds: number[] = [];
    for (let r = 0; r < 7; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; i++) await session.run(feeds);
      rounds.push(Number(process.hrtime.bigint() - t0) / 1e6 / iters);
    }
    times[part] = median(rounds);
  }
  return times;
}

function torchTimes(layers: ConvLayer[], threads: number, iters: number): Times[] {
  const args = [
    join(PROJECT_ROOT, 'tools', 'conv_bench_torch.py'),
    '--threads',
    String(threads),
    '--iters',
    String(iters),
    JSON.stringify(layers),
  ];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', env: { ...process.env, ...TORCH_MALLOC } });
  if (r.status !== 0) throw new Error(`conv_bench_torch.py failed: ${r.stderr.split('\n').slice(-3).join(' ')}`);
  const times = JSON.parse(r.stdout) as Times[];
  return times.map((t, i) => (layers[i].inputGrad ? t : { ...t, dx: null }));
}

const total = (t: Times) => PARTS.reduce((a, p) => a + (t[p] ?? 0), 0);
const NONE: Times = { fwd: null, dx: null, dw: null };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nets: { type: 'string' },
      batch: { type: 'string' },
      threads: { type: 'string' },
      repeats: { type: 'string' },
      iters: { type: 'string' },
      json: { type: 'string' },
      'no-reference': { type: 'boolean' },
    },
  });
  const reference = !values['no-reference'];
  if (reference && spawnSync(PYTHON, ['-c', 'import torch']).status !== 0)
    throw new Error(
      `PyTorch reference missing (${PYTHON} cannot import torch): apt-get install python3-torch, or run with --no-reference`,
    );
  const nets = (values.nets ?? 'inception,residual').split(',') as NetworkName[];
  const [batch, threads, repeats, iters] = [
    Number(values.batch ?? 32),
    Number(values.threads ?? 1),
    Number(values.repeats ?? 5),
    Number(values.iters ?? 10),
  ];
  const layers = nets.flatMap((net) => convLayers(net, batch).map((l) => ({ ...l, net })));
  const opened = [];
  for (const l of layers) opened.push(await openLayer(l, threads));
  const runs: { ingraph: Times[]; pytorch: Times[] }[] = [];
  for (let r = 0; r < repeats; r++) {
    console.error(`conv-bench: repeat ${r + 1} of ${repeats}`);
    const pytorch = () => (reference ? torchTimes(layers, threads, iters) : layers.map(() => NONE));
    const torchFirst = r % 2 === 1 ? pytorch() : null;
    const ingraph = [];
    for (const o of opened) ingraph.push(await ingraphTimes(o, iters));
    runs.push({ ingraph, pytorch: torchFirst ?? pytorch() });
  }
  const med = (side: 'ingraph' | 'pytorch', i: number, p: Part) =>
    runs[0][side][i][p] === null ? null : median(runs.map((r) => r[side][i][p] as number));
  const ratio = (a: number[], b: number[]) => (reference ? pairedRatio(a, b) : null);
  const results = layers.map((l, i) => ({
    ...l,
    mmac: (numel(l.y) * numel(l.w.slice(1))) / 1e6,
    ingraph: Object.fromEntries(PARTS.map((p) => [p, med('ingraph', i, p)])) as Times,
    pytorch: Object.fromEntries(PARTS.map((p) => [p, med('pytorch', i, p)])) as Times,
    ratio: ratio(
      runs.map((r) => total(r.ingraph[i])),
      runs.map((r) => total(r.pytorch[i])),
    ),
  }));
  const ms = (v: number | null) => fmt(v, 2);
  const rows = [
    ['layer', 'x → w', 'M MAC', 'fwd ingraph', 'PyTorch', 'dX ingraph', 'PyTorch', 'dW ingraph', 'PyTorch', 'ratio'],
  ];
  for (const net of nets) {
    const own = results.filter((r) => r.net === net);
    const netTotal = (side: 'ingraph' | 'pytorch') =>
      runs.map((run) => layers.reduce((a, l, i) => a + (l.net === net ? total(run[side][i]) : 0), 0));
    for (const r of own)
      rows.push([
        `${net}: ${r.name}`,
        `${r.x.join('x')} → ${r.w[0]}x${r.w[2]}x${r.w[3]} pad ${r.pads[0]}`,
        fmt(r.mmac),
        ...PARTS.flatMap((p) => [ms(r.ingraph[p]), ms(r.pytorch[p])]),
        fmt(r.ratio, 2),
      ]);
    const sum = (side: 'ingraph' | 'pytorch', p: Part) =>
      own.some((r) => r[side][p] !== null) ? own.reduce((a, r) => a + (r[side][p] ?? 0), 0) : null;
    rows.push([
      `${net}: all convs`,
      '',
      fmt(own.reduce((a, r) => a + r.mmac, 0)),
      ...PARTS.flatMap((p) => [ms(sum('ingraph', p)), ms(sum('pytorch', p))]),
      fmt(ratio(netTotal('ingraph'), netTotal('pytorch')), 2),
    ]);
  }
  console.log(
    `\nms per call, batch ${batch}, ${threads} thread(s), median of ${repeats} repeats (ratio: ingraph time / PyTorch time)`,
  );
  console.log(table(rows));
  if (values.json)
    writeFileAtomic(
      values.json,
      `${JSON.stringify({ date: new Date().toISOString(), batch, threads, repeats, iters, results }, null, 2)}\n`,
    );
}

main().catch((e) => {
  console.error(`conv-bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
