/** The CLI as a user runs it: export, eval, inspect, graphs, and bad input with its message and exit code. */
import { spawnSync } from 'child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/onnx/builder';
import { encodeModel } from '../src/onnx/model';
import { MNIST_DIR, ROOT, mnistSlice, rawImages, rawLabels, runCli, tempDir } from './helpers/cli';

const work = tempDir();
const model = join(work, 'r.onnx');

beforeAll(() => {
  const r = runCli(['export', '--model', 'residual', '--seed', '3', '--out', model]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

describe('eval', () => {
  it('counts correct predictions as an independent count does', async () => {
    const n = 300;
    const r = runCli(['eval', '--model-file', model, '--limit', String(n), '--json', '--ep', 'cpu']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    // Independent count: our own session, our own argmax, labels read from the raw IDX bytes.
    const session = await ort.InferenceSession.create(readFileSync(model));
    const out = await session.run({
      images: new ort.Tensor('uint8', rawImages(MNIST_DIR).slice(0, n * 784), [n, 1, 28, 28]),
    });
    const logits = out.logits.data as Float32Array;
    const labels = rawLabels(MNIST_DIR);
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
    }
    expect(report).toMatchObject({ correct, total: n, accuracy: correct / n, ep: 'cpu' });
    expect(report.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(n);
    expect(report.perClass.map((c: { correct: number }) => c.correct).reduce((a: number, b: number) => a + b, 0)).toBe(
      correct,
    );
    expect(report.imagesPerSecond).toBeGreaterThan(0);
  });

  it('prints a human report by default', () => {
    const r = runCli(['eval', '--model-file', model, '--limit', '100', '--ep', 'cpu']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/accuracy on 100 test images: \d+\.\d\d% \(\d+\/100\)/);
    expect(r.stdout).toMatch(/confusion \(rows: true label, columns: predicted\)/);
  });
});

describe('another runtime: onnxruntime-web (wasm) in Node', () => {
  it('gives the same labels and logits (within 1e-5) as onnxruntime-node on 50 test images', async () => {
    const n = 50;
    const images = join(MNIST_DIR, 't10k-images-idx3-ubyte');
    const web = spawnSync(
      process.execPath,
      [join(ROOT, 'test', 'helpers', 'web-logits.js'), images, String(n), model],
      { encoding: 'utf8' },
    );
    expect(web.stderr).toBe('');
    const w = JSON.parse(web.stdout);
    const session = await ort.InferenceSession.create(readFileSync(model));
    const out = await session.run({
      images: new ort.Tensor('uint8', rawImages(MNIST_DIR).slice(0, n * 784), [n, 1, 28, 28]),
    });
    expect(w.label).toEqual(Array.from(out.label.data as BigInt64Array, Number));
    const native = out.logits.data as Float32Array;
    const maxDiff = w.logits.reduce((m: number, v: number, i: number) => Math.max(m, Math.abs(v - native[i])), 0);
    expect(maxDiff).toBeLessThan(1e-5);
  });
});

describe('inspect and graphs', () => {
  it('inspect summarises inputs, outputs, ops, parameters by layer and the total', () => {
    const r = runCli(['inspect', model]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('images: uint8 [N,1,28,28]');
    expect(r.stdout).toMatch(/rblock2\.conv1\s+weight\s+\[32,32,3,3\]\s+9,216/);
    expect(r.stdout).toContain('total parameters: 41,514');
  });

  it('graphs writes loadable graphs of both networks, the same bytes twice', async () => {
    const a = tempDir();
    const b = tempDir();
    expect(runCli(['graphs', '--out', a]).code).toBe(0);
    expect(runCli(['graphs', '--out', b]).code).toBe(0);
    const files = readdirSync(a).sort();
    const kinds = ['eval', 'inference', 'training-cuda', 'training-flat', 'training-loop', 'training'];
    expect(files).toEqual(['inception', 'residual'].flatMap((net) => kinds.map((k) => `${net}.${k}.onnx`)));
    for (const f of files) {
      expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f)))).toBe(true);
      const s = await ort.InferenceSession.create(readFileSync(join(a, f)));
      expect(s.inputNames).toContain('images');
      await s.release();
    }
  });
});

describe('bad input: one line naming the file or flag, exit code 2, nothing written', () => {
  const data = mnistSlice(20, 20);
  const corrupt = (name: string, edit: (b: Buffer) => Buffer): string => {
    const dir = mnistSlice(20, 20);
    writeFileSync(join(dir, name), edit(readFileSync(join(dir, name))));
    return dir;
  };
  const wrongInput = join(work, 'wrong-input.onnx');
  const g = new GraphBuilder();
  g.output(g.relu(g.input('images', 'float32', ['N', 784])), 'logits');
  writeFileSync(wrongInput, encodeModel(g, { graphName: 'wrong' }));
  const notOnnx = join(work, 'not.onnx');
  writeFileSync(notOnnx, 'this is not a model\n');
  const missingParam = join(work, 'missing.onnx');
  const misShaped = join(work, 'misshaped.onnx');
  {
    const m = new GraphBuilder();
    m.initializer('conv1.weight', 'float32', [16, 1, 5, 5], new Float32Array(400));
    writeFileSync(missingParam, encodeModel(m, { graphName: 'partial' }));
    const q = new GraphBuilder();
    q.initializer('conv1.weight', 'float32', [16, 1, 3, 3], new Float32Array(144));
    writeFileSync(misShaped, encodeModel(q, { graphName: 'misshaped' }));
  }

  it.each([
    [
      'a truncated IDX file',
      () => [
        'eval',
        '--model-file',
        model,
        '--data',
        corrupt('t10k-images-idx3-ubyte', (b) => b.subarray(0, b.length - 100)),
      ],
      /t10k-images-idx3-ubyte: 15596 bytes, expected 15696 for 20 images \(truncated or padded\)/,
    ],
    [
      'a wrong magic number',
      () => [
        'eval',
        '--model-file',
        model,
        '--data',
        corrupt('t10k-labels-idx1-ubyte', (b) => {
          b.writeUInt32BE(0x803, 0);
          return b;
        }),
      ],
      /t10k-labels-idx1-ubyte: wrong magic number 0x00000803, expected 0x00000801/,
    ],
    [
      'an image/label count mismatch',
      () => [
        'eval',
        '--model-file',
        model,
        '--data',
        corrupt('t10k-labels-idx1-ubyte', (b) => {
          b.writeUInt32BE(19, 4);
          return b.subarray(0, 8 + 19);
        }),
      ],
      /t10k-labels-idx1-ubyte: 19 labels for 20 images/,
    ],
    [
      'a label out of range',
      () => [
        'eval',
        '--model-file',
        model,
        '--data',
        corrupt('t10k-labels-idx1-ubyte', (b) => {
          b[8 + 5] = 12;
          return b;
        }),
      ],
      /label 12 at index 5 is out of range 0\.\.9/,
    ],
    [
      'a missing data directory',
      () => ['eval', '--model-file', model, '--data', '/nonexistent/mnist'],
      /\/nonexistent\/mnist: not a directory of MNIST IDX files/,
    ],
    [
      'a non-ONNX file to eval',
      () => ['eval', '--model-file', notOnnx, '--data', data],
      /--model-file .*not\.onnx: not an ONNX model/,
    ],
    [
      'an ONNX file with the wrong input',
      () => ['eval', '--model-file', wrongInput, '--data', data],
      /wrong-input\.onnx: input "images" is float32 \[N,784\], expected uint8 or float32 \[N,1,28,28\]/,
    ],
    [
      'a missing model file',
      () => ['eval', '--model-file', join(work, 'nope.onnx')],
      /--model-file .*nope\.onnx: no such file/,
    ],
    [
      '--init with a missing parameter',
      () => ['export', '--model', 'residual', '--init', missingParam, '--out', join(work, 'never1.onnx')],
      /--init .*missing\.onnx: parameter "conv1\.bias" is missing/,
    ],
    [
      '--init with a mis-shaped parameter',
      () => ['export', '--model', 'residual', '--init', misShaped, '--out', join(work, 'never2.onnx')],
      /parameter "conv1\.weight" is float32 \[16,1,3,3\], expected float32 \[16,1,5,5\]/,
    ],
    [
      'an unknown model',
      () => ['export', '--model', 'vgg', '--out', join(work, 'never3.onnx')],
      /--model vgg: must be one of inception, residual/,
    ],
    [
      'an opset older than 11',
      () => ['export', '--model', 'residual', '--opset', '10', '--out', join(work, 'never4.onnx')],
      /--opset 10: must be between 11 and 17/,
    ],
    [
      'an --out the filesystem refuses',
      () => ['export', '--model', 'residual', '--out', '/proc/ingraph.onnx'],
      /--out \/proc\/ingraph\.onnx: cannot write \(E[A-Z]+\)/,
    ],
    [
      'an --out in a directory that does not exist',
      () => ['export', '--model', 'residual', '--out', join(work, 'no', 'such.onnx')],
      /--out .*such\.onnx: no directory .*\/no \(create it first\)\n$/,
    ],
    ['an unknown flag', () => ['eval', '--model-file', model, '--bogus'], /Unknown option '--bogus'/],
    ['an unknown command', () => ['fly'], /unknown command "fly"/],
    ['--limit 0', () => ['eval', '--model-file', model, '--limit', '0'], /--limit 0: must be at least 1/],
    [
      '--ep gpu',
      () => ['eval', '--model-file', model, '--ep', 'gpu'],
      /--ep gpu: must be one of cpu, cuda, webgpu, auto/,
    ],
  ])('%s', (_, args, message) => {
    const before = readdirSync(work).sort();
    const r = runCli(args());
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(readdirSync(work).sort()).toEqual(before);
  });

  it('export never overwrites with a half-written file: a failing --init leaves the existing output as it was', () => {
    const out = join(work, 'keep.onnx');
    writeFileSync(out, 'precious');
    expect(runCli(['export', '--model', 'residual', '--init', misShaped, '--out', out]).code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('precious');
    expect(existsSync(join(work, '.keep.onnx.tmp'))).toBe(false);
  });
});

describe('a model holding tensor types ingraph does not decode', () => {
  it('eval and inspect take int8 weights behind a DequantizeLinear; eval scores what onnxruntime computes', async () => {
    const m = onnx.ModelProto.decode(readFileSync(model));
    const g = m.graph as onnx.GraphProto;
    const at = g.initializer.findIndex((t) => t.name === 'fc.weight');
    const t = g.initializer[at];
    const w = new Float32Array(new Uint8Array(t.rawData as Uint8Array).slice().buffer);
    const scale = Math.max(...Array.from(w, Math.abs)) / 127;
    const q = Int8Array.from(w, (v) => Math.round(v / scale));
    g.initializer.splice(
      at,
      1,
      onnx.TensorProto.create({
        name: 'fc.weight_q',
        dataType: onnx.TensorProto.DataType.INT8,
        dims: t.dims,
        rawData: new Uint8Array(q.buffer),
      }),
      onnx.TensorProto.create({
        name: 'fc.weight_scale',
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims: [],
        rawData: new Uint8Array(Float32Array.of(scale).buffer),
      }),
    );
    g.node.unshift(
      onnx.NodeProto.create({
        opType: 'DequantizeLinear',
        name: 'fc.weight_dq',
        input: ['fc.weight_q', 'fc.weight_scale'],
        output: ['fc.weight'],
      }),
    );
    const quantized = join(work, 'int8-fc.onnx');
    writeFileSync(quantized, onnx.ModelProto.encode(m).finish());

    const n = 200;
    const r = runCli(['eval', '--model-file', quantized, '--limit', String(n), '--json', '--ep', 'cpu']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const session = await ort.InferenceSession.create(readFileSync(quantized));
    const out = await session.run({
      images: new ort.Tensor('uint8', rawImages(MNIST_DIR).slice(0, n * 784), [n, 1, 28, 28]),
    });
    const labels = rawLabels(MNIST_DIR);
    const correct = Array.from(out.label.data as BigInt64Array).filter((l, i) => Number(l) === labels[i]).length;
    expect(JSON.parse(r.stdout)).toMatchObject({ correct, total: n });
    const inspected = runCli(['inspect', quantized, '--json']);
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.stdout).ops).toMatchObject({ DequantizeLinear: 1 });
  });
});
