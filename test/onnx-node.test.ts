/**
 * ONNX's own backend node tests (generated here by Debian's python3-onnx 1.12, as DESIGN.md says) for every op the
 * importer takes: each case, replayed through the importer, gives the expected outputs, and each float input's
 * gradient agrees with central finite differences of the case's own forward at its inputs and attributes. Cases
 * that use what the importer does not take (auto_pad, 1-D and 3-D convolutions, other element types, ...) are
 * refused with a reason docs/import.md states. Skipped, with a warning, without python3-onnx.
 */
import { spawnSync } from 'child_process';
import { existsSync, readdirSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import { appendGradients } from '../src/autodiff/gradients';
import { UsageError } from '../src/errors';
import { KnownInput, replayNodes } from '../src/models/import';
import { IMPORTERS } from '../src/models/import/ops';
import { Forward } from '../src/models/module';
import { GraphBuilder } from '../src/onnx/builder';
import { encodeModel, ParsedModel, parseModel, parseTensor, StoredTensor } from '../src/onnx/model';
import { Tensor } from '../src/onnx/tensor';

const DATA = join(tmpdir(), 'ingraph-onnx-node-tests');

/** Generates ONNX's backend test data once (a few seconds); false where python3-onnx is missing. */
function generated(): boolean {
  if (existsSync(join(DATA, 'node'))) return true;
  const script =
    "import numpy as np, sys; [setattr(np, a, t) for a, t in [('complex', complex), ('float', float), ('int', int), ('bool', bool), ('object', object), ('str', str)] if not hasattr(np, a)]; sys.argv = ['x', 'generate-data', '-o', sys.argv[1]]; from onnx.backend.test import cmd_tools; cmd_tools.main()";
  return spawnSync('/usr/bin/python3', ['-c', script, DATA], { encoding: 'utf8' }).status === 0;
}

const hasData = generated();
if (!hasData)
  console.warn('onnx-node.test.ts: no python3-onnx (apt-get install python3-onnx); ONNX node tests skipped');

/** What the importer does not take, as docs/import.md says; a refused case must give one of these reasons. */
const REFUSALS = [
  /auto_pad is not supported/,
  /only 2-D convolutions|pooling of rank-[35] input/,
  /is (float64|int8|uint8|int32|int16|bool|float16|bfloat16|uint16|uint32|uint64|int4|uint4|type\d+|string)\b/,
  /is not a tensor/,
  /Gather of a tensor/,
  /Slice steps below 1/,
  /allowzero=1 is not supported/,
  /Pow of an integer base/,
  /dilated pooling is not supported/,
  /ceil_mode=1 average pooling is not supported/,
  /without count_include_pad/,
  /storage_order=1/,
  /Indices output is not supported/,
  /padding is not supported|padding with a value other than 0/,
  /must be known at import time/,
  /casts of tensors to other types than float/,
  /mask output, read by another node/,
  /moves the batch dimension/,
];

interface Case {
  name: string;
  dir: string;
  model: ParsedModel;
}

/** The cases whose every node is an op the importer takes (ONNX's own domain). */
function cases(): Case[] {
  if (!hasData) return [];
  const root = join(DATA, 'node');
  return readdirSync(root)
    .sort()
    .flatMap((name) => {
      const dir = join(root, name);
      if (!existsSync(join(dir, 'test_data_set_0'))) return [];
      const model = parseModel(readFileSync(join(dir, 'model.onnx')), name);
      const ours = model.nodes.every((n) => (n.domain === '' || n.domain === 'ai.onnx') && n.op in IMPORTERS);
      return ours && model.nodes.length > 0 ? [{ name, dir, model }] : [];
    });
}

const tensorFile = (dir: string, kind: 'input' | 'output', i: number) =>
  parseTensor(readFileSync(join(dir, 'test_data_set_0', `${kind}_${i}.pb`)), `${kind}_${i}.pb`);

const toNumbers = (t: StoredTensor): number[] =>
  t.data instanceof BigInt64Array ? Array.from(t.data, Number) : Array.from(t.data as ArrayLike<number>);

/** The case's inputs: float32 tensors as graph inputs, int64 ones as settings known at import. */
function inputsOf(c: Case): { floats: [string, StoredTensor][]; known: Map<string, KnownInput> } {
  const floats: [string, StoredTensor][] = [];
  const known = new Map<string, KnownInput>();
  c.model.inputs.forEach((input, i) => {
    if (
      input.dtype === 'type0' ||
      (!/^(float|int|uint|bool|bfloat)/.test(input.dtype) &&
        input.shape.length === 0 &&
        !existsSync(join(c.dir, 'test_data_set_0', `input_${i}.pb`)))
    )
      throw new UsageError(`${c.name}: input "${input.name}" is not a tensor`);
    let t: StoredTensor;
    try {
      t = tensorFile(c.dir, 'input', i);
    } catch {
      throw new UsageError(`${c.name}: input "${input.name}" is not a tensor`);
    }
    if (t.dtype === 'float32') floats.push([input.name, t]);
    else if (t.dtype === 'int64') known.set(input.name, { data: toNumbers(t), shape: t.shape, dtype: 'int64' });
    else throw new UsageError(`${c.name}: input "${input.name}" is ${t.dtype}`);
  });
  return { floats, known };
}

/** The case's graph: its nodes replayed from graph inputs for its float inputs; with `grad`, L = sum(out0 · r) and dL/dx. */
function caseGraph(c: Case, grad: Float32Array | null): GraphBuilder {
  const { floats, known } = inputsOf(c);
  const g = new GraphBuilder();
  const inputs = new Map<string, Tensor | KnownInput>(known);
  for (const [name, t] of floats) inputs.set(name, g.input(name, 'float32', t.shape));
  const training = /training_mode/.test(c.name);
  const f = new Forward(
    g,
    () => {
      throw new RangeError('no parameters');
    },
    training,
  );
  const outs = replayNodes(f, c.model, inputs, c.name);
  outs.forEach((t, k) =>
    g.output(g.add(t, t.dtype === 'float32' ? g.scalar(0) : g.constant([0], [], t.dtype)), `out${k}`),
  );
  if (grad) {
    const y = outs[0];
    const loss = g.reduceSum(
      g.mul(y, g.constant(grad, y.shape as number[])),
      y.shape.map((_, i) => i),
      false,
    );
    const wrt = differentiated(c, floats).map(([name]) => inputs.get(name) as Tensor);
    const grads = appendGradients(g, loss, wrt);
    wrt.forEach((x) => g.output(grads.get(x.name) as Tensor, `grad_${x.name}`));
  }
  return g;
}

async function run(g: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
  const session = await ort.InferenceSession.create(encodeModel(g, { graphName: 'case' }), { intraOpNumThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

const floatFeeds = (floats: [string, StoredTensor][], replace?: [string, Float32Array]) =>
  Object.fromEntries(
    floats.map(([name, t]) => [
      name,
      new ort.Tensor('float32', replace?.[0] === name ? replace[1] : (t.data as Float32Array), t.shape),
    ]),
  );

/** max |a - b| relative to max(1, max |b|). */
function closeness(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [diff, scale] = [0, 1];
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length ? diff / scale : Infinity;
}

/**
 * The expected value of output `k`: the file's, except BatchNorm's running variance in training mode, which ONNX's
 * reference moves by the batch's biased variance and ingraph (as PyTorch) by the unbiased one.
 */
function expected(c: Case, k: number): number[] {
  const out = toNumbers(tensorFile(c.dir, 'output', k));
  const bn = c.model.nodes.find((n) => n.op === 'BatchNormalization');
  if (!bn || k !== 2 || !/training_mode/.test(c.name)) return out;
  const x = tensorFile(c.dir, 'input', 0);
  const [inputVar, m] = [
    toNumbers(tensorFile(c.dir, 'input', 4)),
    bn.attrs.momentum?.kind === 'float' ? bn.attrs.momentum.value : 0.9,
  ];
  const n = x.shape.reduce((a, b) => a * b, 1) / x.shape[1];
  return out.map((v, i) => m * inputVar[i] + ((((v - m * inputVar[i]) / (1 - m)) * n) / (n - 1)) * (1 - m));
}

/** Inputs whose gradient exports never need: Pow's exponent, Clip's bounds (constants in what PyTorch writes). */
const NOT_DIFFERENTIATED: Record<string, number[]> = { Pow: [1], Clip: [1, 2] };

/** The float inputs to differentiate: all but those NOT_DIFFERENTIATED names for the ops that read them. */
function differentiated(c: Case, floats: [string, StoredTensor][]): [string, StoredTensor][] {
  const skip = new Set(c.model.nodes.flatMap((n) => (NOT_DIFFERENTIATED[n.op] ?? []).map((i) => n.inputs[i])));
  return floats.filter(([name]) => !skip.has(name));
}

/** Central differences of L = sum(out0 · r) at a few elements of each float input, against the graph's gradients. */
async function gradientErrors(c: Case): Promise<string[]> {
  const { floats } = inputsOf(c);
  const forward = caseGraph(c, null);
  const base = await run(forward, floatFeeds(floats));
  const y = base.out0.data as Float32Array;
  const r = Float32Array.from({ length: y.length }, (_, i) => Math.sin(1.7 * i + 0.3));
  const withGrads = caseGraph(c, r);
  const grads = await run(withGrads, floatFeeds(floats));
  const lossAt = async (name: string, x: Float32Array) => {
    const out = (await run(forward, floatFeeds(floats, [name, x]))).out0.data as Float32Array;
    return out.reduce((s, v, i) => s + v * r[i], 0);
  };
  const errors: string[] = [];
  for (const [name, t] of differentiated(c, floats)) {
    const x = t.data as Float32Array;
    const g = grads[`grad_${name}`].data as Float32Array;
    const scale = Math.max(1e-3, ...Array.from(g, Math.abs));
    const picks = Array.from({ length: Math.min(8, x.length) }, (_, i) =>
      Math.floor((i * x.length) / Math.min(8, x.length)),
    );
    for (const i of picks) {
      // Two step sizes, absolute and relative to x (a kink crossed by one is rarely crossed by the other; a large x
      // needs a step float32 resolves); at a kink itself (LeakyRelu at 0) the rule's subgradient is a one-sided one.
      let ok = false;
      const at = await lossAt(name, x);
      const steps = [1e-2, 1e-3].flatMap((e) => [e, e * Math.max(1, Math.abs(x[i]))]);
      for (const eps of [...new Set(steps)]) {
        const [plus, minus] = [Float32Array.from(x), Float32Array.from(x)];
        plus[i] += eps;
        minus[i] -= eps;
        // The steps as float32 holds them (at 10000, 0.01 is 0.009766).
        const [up, down] = [plus[i] - x[i], x[i] - minus[i]];
        const [lp, lm] = [await lossAt(name, plus), await lossAt(name, minus)];
        const slopes = [(lp - lm) / (up + down), (lp - at) / up, (at - lm) / down];
        if (slopes.some((fd) => Math.abs(fd - g[i]) <= 2e-2 * scale)) ok = true;
      }
      if (!ok) errors.push(`${name}[${i}]`);
    }
  }
  return errors;
}

const ALL = cases();

const tally = { run: 0, gradients: 0, refused: [] as string[] };

(hasData ? describe : describe.skip)('ONNX backend node tests of the ops the importer takes', () => {
  afterAll(() =>
    console.log(
      `ONNX node tests: ${tally.run} cases run (${tally.gradients} with gradients checked), ${tally.refused.length} refused as documented: ${tally.refused.join(', ')}`,
    ),
  );

  it(`covers the supported ops (${ALL.length} cases)`, () => {
    const ops = new Set(ALL.flatMap((c) => c.model.nodes.map((n) => n.op)));
    for (const op of ['Conv', 'Gemm', 'MatMul', 'MaxPool', 'AveragePool', 'BatchNormalization', 'Softmax', 'Slice'])
      expect([op, ops.has(op)]).toEqual([op, true]);
  });

  it.each(ALL.map((c) => [c.name, c] as const))(
    '%s: outputs as expected, gradients by finite differences',
    async (_, c) => {
      let g: GraphBuilder;
      try {
        g = caseGraph(c, null);
      } catch (e) {
        const message = (e as Error).message;
        expect([c.name, REFUSALS.some((r) => r.test(message)) ? 'refused as documented' : message]).toEqual([
          c.name,
          'refused as documented',
        ]);
        tally.refused.push(c.name.replace(/^test_/, ''));
        return;
      }
      const out = await run(g, floatFeeds(inputsOf(c).floats));
      c.model.outputs.forEach((_o, k) => {
        const ours = Array.from(out[`out${k}`].data as ArrayLike<number | bigint>, Number);
        expect([c.name, k, closeness(ours, expected(c, k)) <= 1e-4]).toEqual([c.name, k, true]);
      });
      const floatOut = out.out0.type === 'float32';
      const differentiable =
        floatOut && differentiated(c, inputsOf(c).floats).length > 0 && !/training_mode/.test(c.name);
      tally.run++;
      if (!differentiable) return;
      expect([c.name, await gradientErrors(c)]).toEqual([c.name, []]);
      tally.gradients++;
    },
  );
});
