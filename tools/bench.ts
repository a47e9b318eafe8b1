/**
 * tools/bench: ingraph against PyTorch on this machine, in the same run.
 *
 *   npm run bench -- [--nets inception,residual] [--steps 100] [--warmup 10] [--repeats 3] [--threads 2]
 *                    [--json FILE] [--no-reference] [--install-reference]
 *                    [--ep cpu|cuda] [--batch 64] [--conv-weight-gradient gather|conv] [--torch-compile] [--flat-step]
 *                    [--steps-per-run K]
 *
 * With --ep cuda both sides run on the GPU (PyTorch from /usr/bin/python3, or $INGRAPH_PYTHON); --torch-compile also
 * times PyTorch's step under torch.compile(mode="reduce-overhead") (CUDA graphs), the upper anchor.
 *
 * For each net: training images/s at batch 64 (ingraph's step and PyTorch's, alternated --repeats times; medians,
 * and the median of the per-repeat ratios), inference images/s at batch 1000 (the exported model through
 * onnxruntime-node, PyTorch's eval, and onnxruntime-node on PyTorch's own export), time from command start to the
 * first training step, peak RSS of a training run, and the per-op-type share of the training step from
 * onnxruntime's profiler.
 */
import { spawnSync } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'fs';
import { tmpdir } from 'os';
import { basename, dirname, join } from 'path';
import { parseArgs } from 'util';
import * as ort from 'onnxruntime-node';
import { writeFileAtomic } from '../src/io/files';
import { TrainingPlan } from '../src/plan';
import { importModel } from '../src/api';
import { quantizeInt8 } from '../src/deploy/quantize';
import { defaultMnistDir, readDataset } from '../src/data/mnist';
import { NetworkName } from '../src/models';
import { trainConfig } from '../src/config';
import { parseModel } from '../src/onnx/model';
import { openSession } from '../src/runtime/session';
import { TrainingStep } from '../src/runtime/step';
import { gradientsFor, openTrainingSteps } from '../src/runtime/steps';
import { PROJECT_ROOT } from '../src/version';
import { runCliEvents } from './cli-run';
import { fmt, median, pairedRatio, PYTHON, table, TORCH_MALLOC } from './reference';

interface Options {
  nets: NetworkName[];
  steps: number;
  warmup: number;
  repeats: number;
  threads: number;
  json: string | null;
  reference: boolean;
  rssSteps: number;
  ep: 'cpu' | 'cuda';
  /** Training batch size. */
  batch: number;
  convWeightGradient: 'gather' | 'conv';
  torchCompile: boolean;
  /** One-session steps (1 thread, or CUDA) over the flat graph. */
  flatStep: boolean;
  /** Steps per session.run (> 1: the flat step in a Loop, one session). */
  stepsPerRun: number;
  /** Also train each net's PyTorch export, imported (test/fixtures/import/). */
  imported: boolean;
}

function batches(n: number, batch: number) {
  const train = readDataset(defaultMnistDir(), 'train', batch * n);
  return { images: train.images, labels: BigInt64Array.from(train.labels, (l) => BigInt(l)) };
}

/** The training every ingraph run plans: the seed's SGD, with the gradient formulations of `o`'s provider and flags. */
function benchPlan(net: NetworkName, o: Options, imported = false): TrainingPlan {
  const gradients = { ...gradientsFor(o.ep), convWeightGradient: o.convWeightGradient };
  const network = imported ? importModel(join(PROJECT_ROOT, 'test', 'fixtures', 'import', `${net}.onnx`)) : net;
  return new TrainingPlan({ network, optimizer: trainConfig(net), gradients });
}

/**
 * ingraph's training step, in this process, as `ingraph train --threads N` runs it (N > 1: data-parallel workers):
 * images/s over `steps` steps after `warmup`; with `stepsPerRun` > 1, the Loop graph. With `profilePrefix`: the
 * one-session step, profiled per op. With `imported`, of the net's PyTorch export (test/fixtures/import/) imported.
 */
async function ingraphTrain(
  net: NetworkName,
  o: Options,
  profilePrefix?: string,
  imported = false,
): Promise<{ imagesPerSecond: number; stepMs: number; profile?: string }> {
  if (o.stepsPerRun > 1 && !profilePrefix) return loopTrain(net, o);
  const plan = benchPlan(net, o, imported);
  const params = plan.initialParams(0);
  const B = o.batch;
  const step = profilePrefix
    ? await TrainingStep.open(plan.step(), params, new Map(), { ep: o.ep, threads: o.threads, profilePrefix })
    : await openTrainingSteps(plan, params, new Map(), { ep: o.ep, threads: o.threads, maxBatch: B, flat: o.flatStep });
  const data = batches(8, B);
  const run = (i: number) =>
    step.run(data.images.subarray((i % 8) * B * 784), data.labels.subarray((i % 8) * B), B, 0.01);
  for (let i = 0; i < o.warmup; i++) await run(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < o.steps; i++) await run(i);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (step instanceof TrainingStep && profilePrefix) step.opened.session.endProfiling();
  await step.release();
  const profile = profilePrefix ? newestWithPrefix(profilePrefix) : undefined;
  return { imagesPerSecond: (o.steps * B) / seconds, stepMs: (1000 * seconds) / o.steps, profile };
}

/** ingraph's training with `o.stepsPerRun` steps per session.run (the Loop graph, one session): images/s and ms per step. */
async function loopTrain(net: NetworkName, o: Options): Promise<{ imagesPerSecond: number; stepMs: number }> {
  const [B, K] = [o.batch, o.stepsPerRun];
  const plan = benchPlan(net, o);
  const step = await TrainingStep.open(plan.loop(), plan.initialParams(0), new Map(), { ep: o.ep, threads: o.threads });
  const data = batches(K, B);
  const lrs = Array<number>(K).fill(0.01);
  const runs = Math.max(1, Math.round(o.steps / K));
  for (let i = 0; i < Math.max(1, Math.round(o.warmup / K)); i++) await step.runSteps(data.images, data.labels, B, lrs);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await step.runSteps(data.images, data.labels, B, lrs);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await step.release();
  return { imagesPerSecond: (runs * K * B) / seconds, stepMs: (1000 * seconds) / (runs * K) };
}

/** onnxruntime names a profile `<prefix>_<timestamp>.json`. */
function newestWithPrefix(prefix: string): string {
  const dir = dirname(prefix);
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(basename(prefix)))
    .sort();
  if (!files.length) throw new Error(`no profile written with prefix ${prefix}`);
  return join(dir, files[files.length - 1]);
}

/** What tools/bench_torch.py prints: PyTorch's figures for one net. */
interface TorchResult {
  trainImagesPerSecond: number;
  trainStepMs: number;
  evalImagesPerSecond: number;
  torch: string;
}

function torchBench(net: NetworkName, o: Options, exportTo?: string, compiled = false): TorchResult {
  const args = [
    join(PROJECT_ROOT, 'tools', 'bench_torch.py'),
    '--net',
    net,
    '--steps',
    String(o.steps),
    '--warmup',
    String(o.warmup),
    '--threads',
    String(o.threads),
    '--device',
    o.ep,
    '--batch',
    String(o.batch),
  ];
  if (exportTo) args.push('--export', exportTo);
  if (compiled) args.push('--compile');
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', env: { ...process.env, ...TORCH_MALLOC } });
  if (r.status !== 0) throw new Error(`bench_torch.py failed: ${r.stderr.split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as TorchResult;
}

/**
 * Images/s of a model through onnxruntime-node at batch `batch` (MNIST test images; sine noise for a float input,
 * as PyTorch's export takes), over `images` images after one warm-up run.
 */
async function ortImagesPerSecond(
  model: Uint8Array,
  threads: number,
  batch = 1000,
  images = 5000,
  ep: 'cpu' | 'cuda' = 'cpu',
): Promise<number> {
  const { session } = await openSession(model, { ep, threads });
  const [name] = session.inputNames;
  const floatInput = parseModel(model).inputs[0].dtype === 'float32';
  const x = floatInput
    ? new ort.Tensor(
        'float32',
        Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i)),
        [batch, 1, 28, 28],
      )
    : new ort.Tensor('uint8', readDataset(defaultMnistDir(), 'test', batch).images, [batch, 1, 28, 28]);
  await session.run({ [name]: x });
  const runs = Math.ceil(images / batch);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await session.run({ [name]: x });
  await session.release();
  return (runs * batch) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** The int8 export (`export --quantize int8`, calibrated on 1,000 training images) against the float one, alternated. */
async function int8Bench(model: Uint8Array, o: Options) {
  const quantized = await quantizeInt8(model, { images: readDataset(defaultMnistDir(), 'train', 1000) });
  const at = { float1000: [] as number[], int81000: [] as number[], float1: [] as number[], int81: [] as number[] };
  for (let r = 0; r < o.repeats; r++) {
    at.float1000.push(await ortImagesPerSecond(model, o.threads));
    at.int81000.push(await ortImagesPerSecond(quantized, o.threads));
    at.float1.push(await ortImagesPerSecond(model, o.threads, 1, 300));
    at.int81.push(await ortImagesPerSecond(quantized, o.threads, 1, 300));
  }
  const [f1000, q1000, f1, q1] = [median(at.float1000), median(at.int81000), median(at.float1), median(at.int81)];
  return {
    batch1000: { float: f1000, int8: q1000, ratio: pairedRatio(at.int81000, at.float1000) },
    batch1: { float: f1, int8: q1, ratio: pairedRatio(at.int81, at.float1) },
    bytes: { float: model.length, int8: quantized.length },
  };
}

/** Wall time from spawning `ingraph train` to its first training step, and its peak RSS. */
async function cliRun(
  net: NetworkName,
  o: Options,
  steps: number,
): Promise<{ firstStepSeconds: number; peakRssMB: number }> {
  const out = mkdtempSync(join(tmpdir(), 'ingraph-bench-'));
  const t0 = process.hrtime.bigint();
  let first = 0;
  let peakRssMB: number | null = null;
  const args = [
    'train',
    '--model',
    net,
    '--max-steps',
    String(steps),
    '--log-every',
    '1',
    '--test-limit',
    '1000',
    '--json',
    '--ep',
    o.ep,
    '--threads',
    String(o.threads),
    '--out',
    out,
  ];
  const code = await runCliEvents(args, (e) => {
    if (e.type === 'log' && !first) first = Number(process.hrtime.bigint() - t0) / 1e9;
    if (e.type === 'done') peakRssMB = Number(e.peakRssMB);
  });
  if (code !== 0 || peakRssMB === null) throw new Error(`ingraph train exited ${code}`);
  return { firstStepSeconds: first, peakRssMB };
}

/** Share of the step's kernel time by op type, from an onnxruntime profile. */
function opShares(profileFile: string): { op: string; share: number; ms: number }[] {
  const events = JSON.parse(readFileSync(profileFile, 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  const byOp = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args?.op_name) continue;
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + e.dur);
  }
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  return [...byOp.entries()]
    .map(([op, us]) => ({ op, share: us / total, ms: us / 1000 }))
    .sort((a, b) => b.share - a.share);
}

async function benchNet(net: NetworkName, o: Options) {
  const train: number[] = [];
  const torchTrain: number[] = [];
  const torchCompiled: number[] = [];
  const torchEval: number[] = [];
  let torchVersion: string | null = null;
  const dir = mkdtempSync(join(tmpdir(), 'ingraph-bench-'));
  const torchExport = join(dir, `${net}.torch.onnx`);
  const importedTrain: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    const ours = async () => {
      const builtIn = async () => train.push((await ingraphTrain(net, o)).imagesPerSecond);
      const imported = async () => importedTrain.push((await ingraphTrain(net, o, undefined, true)).imagesPerSecond);
      if (o.imported && r % 2 === 1) await imported();
      await builtIn();
      if (o.imported && r % 2 === 0) await imported();
    };
    const theirs = () => {
      const t = torchBench(net, o, r === 0 ? torchExport : undefined);
      torchTrain.push(t.trainImagesPerSecond);
      torchEval.push(t.evalImagesPerSecond);
      torchVersion = t.torch;
      if (o.torchCompile) torchCompiled.push(torchBench(net, o, undefined, true).trainImagesPerSecond);
    };
    // Alternate who goes first, so that a steady drift favours neither side.
    if (o.reference && r % 2 === 1) theirs();
    await ours();
    if (o.reference && r % 2 === 0) theirs();
  }
  const plan = benchPlan(net, o);
  const model = plan.inference(plan.initialParams(0));
  const evals: number[] = [];
  const ortOnTorchRuns: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    evals.push(await ortImagesPerSecond(model, o.threads, 1000, 5000, o.ep));
    if (o.reference && existsSync(torchExport))
      ortOnTorchRuns.push(await ortImagesPerSecond(readFileSync(torchExport), o.threads, 1000, 5000, o.ep));
  }
  const ortOnTorch = ortOnTorchRuns.length ? median(ortOnTorchRuns) : null;
  const int8 = await int8Bench(model, o);
  const profiled = await ingraphTrain(net, { ...o, steps: 20, warmup: 5 }, join(dir, `${net}-profile`));
  const cli = await cliRun(net, o, o.rssSteps);
  const m = (xs: number[]) => (xs.length ? median(xs) : null);
  return {
    net,
    torch: torchVersion,
    train: {
      ingraph: m(train),
      pytorch: m(torchTrain),
      ratio: o.reference ? pairedRatio(train, torchTrain) : null,
      pytorchCompiled: m(torchCompiled),
      ratioToCompiled: torchCompiled.length ? pairedRatio(train, torchCompiled) : null,
      samples: { ingraph: train, pytorch: torchTrain, pytorchCompiled: torchCompiled, imported: importedTrain },
      imported: m(importedTrain),
      importedRatio: importedTrain.length ? pairedRatio(importedTrain, train) : null,
    },
    inference: {
      ingraph: m(evals),
      pytorch: m(torchEval),
      ortOnPytorchExport: ortOnTorch,
      ratio: o.reference ? median(evals) / median(torchEval) : null,
      ratioToOrtOnPytorchExport: ortOnTorch ? pairedRatio(evals, ortOnTorchRuns) : null,
    },
    int8,
    firstStepSeconds: cli.firstStepSeconds,
    peakRssMB: cli.peakRssMB,
    peakRssSteps: o.rssSteps,
    opShares: opShares(profiled.profile as string).slice(0, 12),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nets: { type: 'string' },
      steps: { type: 'string' },
      warmup: { type: 'string' },
      repeats: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'string' },
      'no-reference': { type: 'boolean' },
      'install-reference': { type: 'boolean' },
      'rss-steps': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      ep: { type: 'string' },
      batch: { type: 'string' },
      'conv-weight-gradient': { type: 'string' },
      'torch-compile': { type: 'boolean' },
      'flat-step': { type: 'boolean' },
      'steps-per-run': { type: 'string' },
      imported: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(`usage: tools/bench [--nets inception,residual] [--steps 100] [--warmup 10] [--repeats 3] [--threads 2]
                   [--rss-steps 300] [--json FILE] [--no-reference] [--install-reference]
                   [--ep cpu|cuda] [--batch 64] [--conv-weight-gradient gather|conv] [--torch-compile] [--flat-step]
                   [--steps-per-run K] [--imported]
ingraph against PyTorch (Debian's python3-torch) on this machine, in one run: training and inference images/s with
ratios, time to the first training step, peak RSS, and the op-type shares of the training step. --imported also
trains each net's PyTorch export (test/fixtures/import/), imported, beside the built-in net (alternating which
goes first).`);
    return;
  }
  if (values['install-reference']) {
    const r = spawnSync(
      'bash',
      ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch'],
      { stdio: 'inherit' },
    );
    if (r.status !== 0) throw new Error('apt-get install python3-torch failed');
  }
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  const reference = !values['no-reference'] && hasTorch;
  if (!values['no-reference'] && !hasTorch) {
    console.error(
      'bench: PyTorch reference missing (/usr/bin/python3 cannot import torch); run with --install-reference, or --no-reference. Measuring ingraph alone.',
    );
  }
  const o: Options = {
    nets: (values.nets ?? 'inception,residual').split(',') as NetworkName[],
    steps: Number(values.steps ?? 100),
    warmup: Number(values.warmup ?? 10),
    repeats: Number(values.repeats ?? 3),
    threads: Number(values.threads ?? 2),
    json: values.json ?? null,
    reference,
    rssSteps: Number(values['rss-steps'] ?? 300),
    ep: values.ep === 'cuda' ? 'cuda' : 'cpu',
    batch: Number(values.batch ?? 64),
    convWeightGradient: values['conv-weight-gradient'] === 'conv' ? 'conv' : 'gather',
    torchCompile: !!values['torch-compile'],
    flatStep: !!values['flat-step'],
    stepsPerRun: Number(values['steps-per-run'] ?? 1),
    imported: !!values.imported,
  };
  const results = [];
  for (const net of o.nets) {
    console.error(`bench: ${net}...`);
    results.push(await benchNet(net, o));
  }
  for (const r of results) {
    console.log(`\n${r.net}: op-type share of the training step (onnxruntime profiler)`);
    console.log(r.opShares.map((s) => `  ${s.op.padEnd(18)} ${(100 * s.share).toFixed(1).padStart(5)}%`).join('\n'));
  }
  const rows = [
    ['', ...results.map((r) => r.net)],
    [`train img/s, batch ${o.batch}: ingraph`, ...results.map((r) => fmt(r.train.ingraph))],
    [`train img/s, batch ${o.batch}: PyTorch`, ...results.map((r) => fmt(r.train.pytorch))],
    ['train ratio ingraph/PyTorch', ...results.map((r) => fmt(r.train.ratio, 2))],
    ...(o.imported
      ? [
          [`train img/s, batch ${o.batch}: its PyTorch export, imported`, ...results.map((r) => fmt(r.train.imported))],
          ['train ratio imported/built-in', ...results.map((r) => fmt(r.train.importedRatio, 2))],
        ]
      : []),
    ...(o.torchCompile
      ? [
          [`train img/s, batch ${o.batch}: PyTorch compiled`, ...results.map((r) => fmt(r.train.pytorchCompiled))],
          ['train ratio ingraph/PyTorch compiled', ...results.map((r) => fmt(r.train.ratioToCompiled, 2))],
        ]
      : []),
    ['infer img/s, batch 1000: ingraph export', ...results.map((r) => fmt(r.inference.ingraph))],
    ['infer img/s, batch 1000: PyTorch eval', ...results.map((r) => fmt(r.inference.pytorch))],
    ['infer img/s: ORT on PyTorch export', ...results.map((r) => fmt(r.inference.ortOnPytorchExport))],
    ['infer ratio ingraph/PyTorch', ...results.map((r) => fmt(r.inference.ratio, 2))],
    ['infer ratio ingraph/ORT-on-PyTorch-export', ...results.map((r) => fmt(r.inference.ratioToOrtOnPytorchExport, 2))],
    [
      'int8 export / float, img/s at batch 1000',
      ...results.map(
        (r) => `${fmt(r.int8.batch1000.int8)} / ${fmt(r.int8.batch1000.float)} = ${fmt(r.int8.batch1000.ratio, 2)}x`,
      ),
    ],
    [
      'int8 export / float, img/s at batch 1',
      ...results.map(
        (r) => `${fmt(r.int8.batch1.int8)} / ${fmt(r.int8.batch1.float)} = ${fmt(r.int8.batch1.ratio, 2)}x`,
      ),
    ],
    [
      'int8 export / float, model bytes',
      ...results.map((r) => `${fmt(r.int8.bytes.int8)} / ${fmt(r.int8.bytes.float)}`),
    ],
    ['time to first step (s)', ...results.map((r) => fmt(r.firstStepSeconds, 2))],
    [`peak RSS, ${o.rssSteps}-step run (MB)`, ...results.map((r) => fmt(r.peakRssMB))],
  ];
  console.log(
    `\n${o.ep}, ${o.threads} threads, conv weight gradients by ${o.convWeightGradient}${o.flatStep ? ', flat step' : ''}${o.stepsPerRun > 1 ? `, ${o.stepsPerRun} steps per run (Loop)` : ''}, ${o.steps} steps after ${o.warmup} warm-up, median of ${o.repeats}${reference ? `, PyTorch ${results[0].torch}` : ', no PyTorch reference'}`,
  );
  console.log(table(rows));
  if (o.json)
    writeFileAtomic(o.json, `${JSON.stringify({ date: new Date().toISOString(), options: o, results }, null, 2)}\n`);
}

main().catch((e) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
