/** The graph builder: build-time shape checks, serialisation round trip, deterministic bytes. */
import { buildEvalModel, buildInferenceModel, buildTrainingModel } from '../src/plan';
import { resolveNetwork } from '../src/models';
import { initParams } from '../src/models/module';
import { GraphBuilder } from '../src/onnx/builder';
import { encodeModel, parseModel, OPSET } from '../src/onnx/model';
import { sgd } from '../src/optim/sgd';
import * as ort from 'onnxruntime-node';
import { runGraph } from './helpers/graph-check';

describe('shape checks at build time name the op, the input and the shapes', () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['N', 3, 8, 8]);

  it('Conv with a weight of the wrong input channels', () => {
    const w = g.input('w', 'float32', [4, 2, 3, 3]);
    expect(() => g.conv(x, w, null)).toThrow(
      new RangeError('Conv: X "x" [N,3,8,8] has 3 channels but W "w" [4,2,3,3] expects 2x1'),
    );
  });

  it('Add of shapes that do not broadcast', () => {
    const y = g.input('y', 'float32', [5]);
    expect(() => g.add(x, y)).toThrow(/^Add: "x" \[N,3,8,8\] and "y" \[5\] do not broadcast$/);
  });

  it('Gemm of mismatched inner dimensions', () => {
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 5]);
    expect(() => g.gemm(a, b, null)).toThrow(/^Gemm: A "a" \[2,3\] and B "b" \[4,5\] do not multiply/);
  });

  it('Concat of inputs that differ off the axis', () => {
    const z = g.input('z', 'float32', ['N', 3, 4, 4]);
    expect(() => g.concat([x, z], 1)).toThrow(
      /^Concat: input "z" \[N,3,4,4\] does not match "x" \[N,3,8,8\] off axis 1$/,
    );
  });

  it('mixed dtypes', () => {
    const i = g.input('i', 'int64', ['N']);
    expect(() => g.mul(x, i)).toThrow(TypeError);
  });
});

describe('Loop', () => {
  it('carries values across iterations, stacks scan values, reads outer tensors, and keeps body nodes out of the outer graph', async () => {
    const g = new GraphBuilder();
    const steps = g.input('steps', 'float32', ['S']);
    const x = g.input('x', 'float32', [2]);
    const twice = g.mul(x, g.scalar(2));
    const loop = g.loop(g.size(steps), 'S', [x, x], (i, [sum, same]) => {
      // sum += steps[i] · 2x (an outer tensor); `same` passes through unchanged; the scan is 2x built again (shared).
      const next = g.add(sum, g.mul(g.gather(steps, i, 0), g.mul(x, g.scalar(2))));
      return { carried: [next, same], scans: [g.mul(x, g.scalar(2)), g.cast(i, 'float32')] };
    });
    expect(loop.scans[0].shape).toEqual(['S', 2]);
    expect(g.nodes.map((n) => n.op)).toEqual(['Mul', 'Size', 'Loop']);
    // A node built after the loop is not one of the body's, even if the body built the same.
    const after = g.add(x, g.scalar(1));
    expect(g.nodes.map((n) => n.op)).toEqual(['Mul', 'Size', 'Loop', 'Add']);
    g.output(loop.carried[0], 'sum');
    g.output(loop.carried[1], 'same');
    g.output(loop.scans[0], 'scan');
    g.output(loop.scans[1], 'iterations');
    g.output(twice, 'twice');
    g.output(after, 'after');
    const out = await runGraph(g, {
      steps: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]),
      x: new ort.Tensor('float32', Float32Array.of(1, -2), [2]),
    });
    expect(Array.from(out.sum.data as Float32Array)).toEqual([1 + 12, -2 - 24]);
    expect(Array.from(out.same.data as Float32Array)).toEqual([1, -2]);
    expect(out.scan.dims).toEqual([3, 2]);
    expect(Array.from(out.iterations.data as Float32Array)).toEqual([0, 1, 2]);
    expect(Array.from(out.after.data as Float32Array)).toEqual([2, -1]);
  });

  it('refuses a carried value that changes shape', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2]);
    expect(() =>
      g.loop(g.constant([3], [], 'int64'), 3, [x], () => ({ carried: [g.concat([x, x], 0)], scans: [] })),
    ).toThrow(/^Loop: carried value 0 ".*" is float32 \[4\], it came in as float32 \[2\]$/);
  });
});

describe('serialisation', () => {
  it('emit, serialise, parse: the same graph (opset 17, IR 8, nodes, initializers, inputs, outputs, metadata)', () => {
    const params = initParams(resolveNetwork('residual').create().parameters(), 1);
    const bytes = buildInferenceModel('residual', params, { note: 'x' });
    const m = parseModel(bytes);
    expect(m.irVersion).toBe(8); // the IR version of opset 17 (onnx/helper.py's VERSION_TABLE)
    expect(m.opsets).toEqual([{ domain: '', version: OPSET }]);
    expect(m.inputs).toEqual([{ name: 'images', dtype: 'uint8', shape: ['N', 1, 28, 28] }]);
    expect(m.outputs).toEqual([
      { name: 'logits', dtype: 'float32', shape: ['N', 10] },
      { name: 'probabilities', dtype: 'float32', shape: ['N', 10] },
      { name: 'label', dtype: 'int64', shape: ['N'] },
    ]);
    for (const [name, data] of params) expect(m.initializers.get(name)?.data).toEqual(data);
    expect(m.metadata).toMatchObject({ 'ingraph.model': 'residual', note: 'x' });
    expect(m.nodes.filter((n) => n.op === 'Conv')).toHaveLength(6);
  });

  it('a builder re-serialised from its own parse has the same node list', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2]);
    g.output(g.relu(g.add(x, g.constant([1, 2], [2]))), 'y');
    const m = parseModel(encodeModel(g, { graphName: 't' }));
    expect(m.nodes.map((n) => [n.op, n.inputs, n.outputs])).toEqual(
      g.nodes
        .map((n) => [n.op, n.inputs.map((t) => t?.name), n.outputs.map((t) => t.name)])
        .slice(0, 2)
        .concat([['Identity', ['Relu_0:out'], ['y']]]),
    );
  });

  it('emission is deterministic: the same bytes twice', () => {
    const opt = sgd({ momentum: 0.5, weightDecay: 0 });
    expect(
      Buffer.from(buildTrainingModel('inception', opt).bytes).equals(
        Buffer.from(buildTrainingModel('inception', opt).bytes),
      ),
    ).toBe(true);
    expect(Buffer.from(buildEvalModel('residual')).equals(Buffer.from(buildEvalModel('residual')))).toBe(true);
  });
});
