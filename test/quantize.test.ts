/**
 * `ingraph export --quantize int8`: a QDQ model onnxruntime turns into int8 kernels (every Conv becomes a
 * QLinearConv in its optimized graph), a third of the float model's size, the float model's labels on test images,
 * the same labels in onnxruntime-web's wasm backend; bad input.
 */
import { spawnSync } from 'child_process';
import { readdirSync, readFileSync, statSync } from 'fs';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import { sha256 } from '../src/io/files';
import { parseModel } from '../src/onnx/model';
import { mnistSlice, rawImages, rawLabels, ROOT, runCli, tempDir } from './helpers/cli';

const N = 500;
const data = mnistSlice(1280, N);
const work = tempDir();
const run = join(work, 'run');
const float = join(work, 'float.onnx');
const int8 = join(work, 'int8.onnx');

beforeAll(() => {
  const trained = runCli([
    'train',
    '--model',
    'residual',
    '--data',
    data,
    '--epochs',
    '2',
    '--ep',
    'cpu',
    '--threads',
    '2',
    '--quantize',
    'int8',
    '--calibrate',
    '500',
    '--out',
    run,
  ]);
  expect([trained.code, trained.stdout]).toEqual([
    0,
    expect.stringMatching(/^int8 export: test accuracy [\d.]+% \(\d+\/500\), \d+ bytes, in /m),
  ]);
  expect(runCli(['export', '--model', 'residual', '--init', join(run, 'inference.onnx'), '--out', float]).code).toBe(0);
  const r = runCli([
    'export',
    '--model',
    'residual',
    '--init',
    join(run, 'inference.onnx'),
    '--quantize',
    'int8',
    '--calibrate',
    '500',
    '--data',
    data,
    '--out',
    int8,
  ]);
  expect([r.code, r.stdout]).toEqual([0, expect.stringContaining('int8 calibrated on 500 training images')]);
});

async function labels(model: string): Promise<number[]> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    optimizedModelFilePath: `${model}.optimized`,
    logSeverityLevel: 3,
  });
  const out = await session.run({ images: new ort.Tensor('uint8', rawImages(data), [N, 1, 28, 28]) });
  await session.release();
  return Array.from(out.label.data as BigInt64Array, Number);
}

describe('export --quantize int8', () => {
  it('writes int8 weights behind DequantizeLinear, a third of the size, with the calibration in its metadata', () => {
    const m = parseModel(readFileSync(int8));
    const convWeights = [...m.initializers.values()].filter((t) => t.name.endsWith('.weight.int8'));
    expect(convWeights.map((t) => t.dtype)).toEqual(new Array(7).fill('int8')); // 6 convs and the fc layer
    expect(m.nodes.filter((n) => n.op === 'QuantizeLinear').length).toBeGreaterThan(5);
    expect(m.outputs.map((o) => [o.name, o.dtype])).toEqual([
      ['logits', 'float32'],
      ['probabilities', 'float32'],
      ['label', 'int64'],
    ]);
    expect(JSON.parse(m.metadata['ingraph.quantization'])).toMatchObject({ format: 'QDQ', calibrationImages: 500 });
    expect(statSync(int8).size).toBeLessThan(0.4 * statSync(float).size);
  });

  it('inspect counts its int8 weights and int32 biases as the parameters, not their scales', () => {
    const info = JSON.parse(runCli(['inspect', int8, '--json']).stdout);
    expect(info.totalParameters).toBe(41514);
    expect(info.parameters.find((p: { name: string }) => p.name === 'conv1.weight')).toEqual({
      name: 'conv1.weight',
      shape: [16, 1, 5, 5],
      count: 400,
    });
    expect(info.parameters.some((p: { name: string }) => p.name.endsWith('.scale'))).toBe(false);
  });

  it('onnxruntime runs every Conv as QLinearConv; labels agree with the float model and accuracy holds', async () => {
    const [f, q] = [await labels(float), await labels(int8)];
    const optimized = parseModel(readFileSync(`${int8}.optimized`)).nodes.map((n) => n.op);
    expect(optimized.filter((op) => op === 'QLinearConv')).toHaveLength(6);
    expect(optimized).not.toContain('Conv');
    const agree = f.filter((l, i) => l === q[i]).length / N;
    const truth = rawLabels(data);
    const accuracy = (ls: number[]) => ls.filter((l, i) => l === truth[i]).length / N;
    console.log(
      `int8 vs float on ${N} test images: labels agree ${(100 * agree).toFixed(1)}%, accuracy ${(100 * accuracy(q)).toFixed(1)}% vs ${(100 * accuracy(f)).toFixed(1)}%`,
    );
    // This weak test model (2 epochs on 1,280 images, ~70%) has many near-ties, which int8 rounding flips: once the
    // training step's float rounding changed (new gradient formulations), 97.0% agreed. A trained model agrees more.
    expect(agree).toBeGreaterThan(0.95);
    expect(Math.abs(accuracy(q) - accuracy(f))).toBeLessThan(0.02);
  });

  it('onnxruntime-web (wasm) gives the int8 model nearly the labels onnxruntime-node gives it', async () => {
    const web = spawnSync(
      process.execPath,
      [join(ROOT, 'test', 'helpers', 'web-logits.js'), join(data, 't10k-images-idx3-ubyte'), String(N), int8],
      { encoding: 'utf8' },
    );
    expect(web.stderr).toBe('');
    const w = JSON.parse(web.stdout).label as number[];
    const native = await labels(int8);
    const agree = w.filter((l, i) => l === native[i]).length / N;
    console.log(
      `int8 model, onnxruntime-web wasm vs onnxruntime-node: labels agree on ${(100 * agree).toFixed(1)}% of ${N}`,
    );
    // Not bit-equal: onnxruntime-node runs int8 kernels, which round once per requantization; this weak test model
    // (2 epochs on 1,280 images) has many near-ties. A trained model agrees more (README).
    expect(agree).toBeGreaterThan(0.95);
  });

  it('train --quantize int8 writes the same int8 model beside inference.onnx, with the accuracy eval measures', () => {
    const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
    const e = runCli(['eval', '--model-file', join(run, 'inference.int8.onnx'), '--data', data, '--json']);
    expect(e.code).toBe(0);
    const { accuracy, correct, total } = JSON.parse(e.stdout);
    expect(manifest.int8).toEqual({ accuracy, correct, total, calibrationImages: 500 });
    expect(manifest.files['inference.int8.onnx'].sha256).toBe(sha256(readFileSync(join(run, 'inference.int8.onnx'))));
    // The same weights and calibration images through `export`: the same int8 tensors (only the metadata differs).
    const fromRun = parseModel(readFileSync(join(run, 'inference.int8.onnx'))).initializers;
    const fromExport = parseModel(readFileSync(int8)).initializers;
    expect([...fromRun.keys()].sort()).toEqual([...fromExport.keys()].sort());
    for (const [name, t] of fromRun)
      expect([
        name,
        Buffer.from((fromExport.get(name) as typeof t).data.buffer).equals(Buffer.from(t.data.buffer)),
      ]).toEqual([name, true]);
  });

  it.each([
    [['--quantize', 'int4'], /^ingraph: --quantize int4: must be one of int8$/],
    [['--calibrate', '10'], /^ingraph: --calibrate: only with --quantize int8$/],
  ])('train %j: exit 2, one line, nothing written', (flags, message) => {
    const dir = tempDir();
    const r = runCli(['train', '--model', 'residual', '--data', data, ...flags, '--out', join(dir, 'run')]);
    expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringMatching(message)]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it.each([
    ['--quantize int4', ['--quantize', 'int4'], /^ingraph: --quantize int4: must be one of int8$/],
    [
      '--calibrate 0',
      ['--quantize', 'int8', '--calibrate', '0'],
      /^ingraph: --calibrate 0: must be between 1 and 60000$/,
    ],
    ['--calibrate without --quantize', ['--calibrate', '10'], /^ingraph: --calibrate: only with --quantize int8$/],
    [
      'an opset without per-channel quantization',
      ['--quantize', 'int8', '--opset', '11'],
      /^ingraph: --quantize int8: needs --opset 13 or later/,
    ],
    [
      'calibration data that fails validation',
      ['--quantize', 'int8', '--data', work],
      /^ingraph: .*train-images-idx3-ubyte: no such file$/,
    ],
    ['--half with --quantize', ['--half', '--quantize', 'int8'], /^ingraph: --half and --quantize: choose one$/],
  ])('%s: exit 2, one line, nothing written', (_, flags, message) => {
    const dir = tempDir();
    const r = runCli(['export', '--model', 'residual', ...flags, '--out', join(dir, 'q.onnx')]);
    expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringMatching(message)]);
    expect(readdirSync(dir)).toEqual([]);
  });
});
