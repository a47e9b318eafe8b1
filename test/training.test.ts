/** `ingraph train` end to end on small slices of MNIST: it learns, writes its artifacts, resumes, freezes. */
import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';
import { sha256 } from '../src/io/files';
import { resolveNetwork } from '../src/models';
import { initParams } from '../src/models/module';
import { parseModel } from '../src/onnx/model';
import { mnistSlice, runCli, tempDir } from './helpers/cli';

const data = mnistSlice(640, 200);
const base = ['--model', 'residual', '--data', data, '--batch-size', '32', '--ep', 'cpu', '--threads', '1'];

function events(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function params(file: string): Map<string, Float32Array> {
  const m = parseModel(readFileSync(file));
  return new Map(
    resolveNetwork('residual')
      .create()
      .parameters()
      .map((s) => [s.name, m.initializers.get(s.name)?.data as Float32Array]),
  );
}

describe('training on 640 images', () => {
  const out = tempDir();
  let run: ReturnType<typeof runCli>;
  beforeAll(() => {
    run = runCli(['train', ...base, '--epochs', '2', '--log-every', '5', '--json', '--out', out]);
  });

  it('lowers the loss (smoke test)', () => {
    expect(run.code).toBe(0);
    const logs = events(run.stdout)
      .filter((e) => e.type === 'log')
      .map((e) => e.loss as number);
    expect(logs).toHaveLength(8);
    expect(logs[logs.length - 1]).toBeLessThan(0.75 * logs[0]);
    const done = events(run.stdout).find((e) => e.type === 'done') as Record<string, number>;
    expect(done.total).toBe(200);
    expect(done.accuracy).toBeGreaterThan(0.5);
  });

  it('logs human text to stderr under --json, like the seed', () => {
    expect(run.stderr).toMatch(/^\[1, {5}5\] loss: \d\.\d{3}$/m);
    expect(run.stderr).toMatch(/^accuracy on test set: \d+\.\d\d %/m);
  });

  it('writes the training artifacts, with checksums in the manifest that match', () => {
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.files).sort()).toEqual([
      'checkpoint.onnx',
      'eval_model.onnx',
      'evaluation.json',
      'inference.onnx',
      'metrics.json',
      'training_model.onnx',
    ]);
    for (const [name, entry] of Object.entries<{ sha256: string }>(manifest.files)) {
      expect([name, sha256(readFileSync(join(out, name)))]).toEqual([name, entry.sha256]);
    }
    expect(manifest).toMatchObject({
      onnxruntime: '1.30.0',
      model: 'residual',
      steps: 40,
      config: { batchSize: 32, epochs: 2 },
    });
    const training = parseModel(readFileSync(join(out, 'training_model.onnx')));
    expect(training.inputs.slice(0, 3).map((i) => [i.name, i.dtype, i.shape])).toEqual([
      ['images', 'uint8', ['N', 1, 28, 28]],
      ['labels', 'int64', ['N']],
      ['lr', 'float32', []],
    ]);
    expect(training.outputs.slice(0, 2).map((o) => o.name)).toEqual(['loss', 'correct']);
    expect(training.outputs.map((o) => o.name)).toContain('updated.optim.momentum_buffer.fc.weight');
    const inference = parseModel(readFileSync(join(out, 'inference.onnx')));
    expect(Number(inference.metadata['ingraph.test_accuracy'])).toBe(manifest.final.accuracy);
  });

  it('the checkpoint holds parameters and optimizer state, and loads through --init', () => {
    const ck = parseModel(readFileSync(join(out, 'checkpoint.onnx')));
    expect(ck.initializers.has('rblock1.conv2.weight')).toBe(true);
    expect(ck.initializers.has('optim.momentum_buffer.rblock1.conv2.weight')).toBe(true);
    expect(JSON.parse(ck.metadata['ingraph.position'])).toMatchObject({ step: 40, epoch: 2, batch: 0 });
    const exported = join(out, 'from-checkpoint.onnx');
    expect(
      runCli(['export', '--model', 'residual', '--init', join(out, 'checkpoint.onnx'), '--out', exported]).code,
    ).toBe(0);
    const a = params(exported);
    const b = params(join(out, 'inference.onnx'));
    for (const [name, v] of a)
      expect([name, Buffer.from(v.buffer).equals(Buffer.from((b.get(name) as Float32Array).buffer))]).toEqual([
        name,
        true,
      ]);
  });
});

describe('resume', () => {
  it('N steps straight equals K steps, resume, N-K steps', () => {
    const straight = tempDir();
    const split = tempDir();
    expect(runCli(['train', ...base, '--epochs', '2', '--max-steps', '26', '--out', straight]).code).toBe(0);
    expect(runCli(['train', ...base, '--epochs', '2', '--max-steps', '13', '--out', split]).code).toBe(0);
    const r = runCli([
      'train',
      '--resume',
      split,
      '--max-steps',
      '26',
      '--ep',
      'cpu',
      '--threads',
      '1',
      '--data',
      data,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const a = params(join(straight, 'inference.onnx'));
    const b = params(join(split, 'inference.onnx'));
    for (const [name, v] of a) {
      const w = b.get(name) as Float32Array;
      const diff = v.reduce((m, x, i) => Math.max(m, Math.abs(x - w[i])), 0);
      expect([name, diff]).toEqual([name, 0]);
    }
  });

  it('refuses to change the network of a run', () => {
    const dir = tempDir();
    expect(runCli(['train', ...base, '--max-steps', '2', '--out', dir]).code).toBe(0);
    const r = runCli(['train', '--resume', dir, '--model', 'inception']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ingraph: --model inception: that run trains the residual net, not inception\n$/);
  });
});

describe('freeze', () => {
  it('frozen parameters are bit-identical after training; the others change', () => {
    const out = tempDir();
    const r = runCli([
      'train',
      ...base,
      '--max-steps',
      '10',
      '--seed',
      '5',
      '--freeze',
      'conv1',
      '--freeze',
      'rblock1',
      '--out',
      out,
    ]);
    expect(r.code).toBe(0);
    const init = initParams(resolveNetwork('residual').create().parameters(), 5);
    for (const [name, v] of params(join(out, 'inference.onnx'))) {
      const same = Buffer.from(v.buffer).equals(Buffer.from((init.get(name) as Float32Array).buffer));
      expect([name, same]).toEqual([name, name.startsWith('conv1.') || name.startsWith('rblock1.')]);
    }
    const ck = parseModel(readFileSync(join(out, 'checkpoint.onnx')));
    expect(ck.initializers.has('optim.momentum_buffer.conv1.weight')).toBe(false);
  });

  it('a prefix that matches nothing is a usage error', () => {
    const r = runCli(['train', ...base, '--freeze', 'conv9', '--out', tempDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--freeze conv9: matches no parameter/);
  });
});

describe('optimizers and schedules', () => {
  it('adamw with a cosine schedule trains', () => {
    const r = runCli([
      'train',
      ...base,
      '--optimizer',
      'adamw',
      '--lr-schedule',
      'cosine',
      '--epochs',
      '1',
      '--log-every',
      '5',
      '--json',
      '--out',
      tempDir(),
    ]);
    expect(r.code).toBe(0);
    const logs = events(r.stdout).filter((e) => e.type === 'log');
    expect(logs[logs.length - 1].loss as number).toBeLessThan(logs[0].loss as number);
    expect(logs[logs.length - 1].lr as number).toBeLessThan(logs[0].lr as number);
  });
});

describe('execution providers', () => {
  it('--ep cuda without the CUDA provider: one line saying why and where to read how to install it, exit 2', () => {
    const out = tempDir();
    const r = runCli(['train', ...base, '--max-steps', '1', '--ep', 'cuda', '--out', out]);
    const provider = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', 'linux', 'x64');
    if (existsSync(join(provider, 'libonnxruntime_providers_cuda.so'))) {
      // A machine with the CUDA provider: the run must train on it, not fall back to the CPU.
      expect([r.code, /^execution provider: cuda$/m.test(r.stdout)]).toEqual([0, true]);
      return;
    }
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ingraph: --ep cuda: .*see docs\/gpu\.md/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--ep auto falls back to the CPU and says so', () => {
    const r = runCli([
      'train',
      ...base.filter((a) => a !== 'cpu' && a !== '--ep'),
      '--max-steps',
      '1',
      '--out',
      tempDir(),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^execution provider: (cpu \(.*using CPU\)|cuda)$/m);
  });
});
