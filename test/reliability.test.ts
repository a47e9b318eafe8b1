/**
 * What scheduled retraining relies on: reproducible bytes, SIGKILL-safe resume, checksummed checkpoints, one run
 * per directory, a divergence guard, guarded promotion, and bad input refused before anything is touched.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'fs';
import { join } from 'path';
import { encodeCheckpoint, readCheckpoint } from '../src/run/checkpoint';
import { resolveNetwork } from '../src/models';
import { initParams } from '../src/models/module';
import { parseModel } from '../src/onnx/model';
import { mnistSlice, runCli, startCli, tempDir, untilStep } from './helpers/cli';
import { seeded } from './helpers/reference';

const data = mnistSlice(640, 200);
// 20 steps per epoch; --threads 2 so the guarantee is tested with a parallel thread pool.
const base = [
  '--model',
  'residual',
  '--data',
  data,
  '--batch-size',
  '32',
  '--ep',
  'cpu',
  '--threads',
  '2',
  '--log-every',
  '5',
];

const bytes = (dir: string, file: string) => readFileSync(join(dir, file));

/** Every file under `dir` with its bytes, to prove a failed command changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    out[f] = statSync(p).isDirectory() ? `dir:${JSON.stringify(snapshot(p))}` : readFileSync(p).toString('base64');
  }
  return out;
}

describe('reproducible', () => {
  it('two runs with the same seed give identical bytes; another seed differs', () => {
    const [a, b, c] = [tempDir(), tempDir(), tempDir()];
    for (const [dir, seed] of [
      [a, '1'],
      [b, '1'],
      [c, '2'],
    ]) {
      const r = runCli(['train', ...base, '--epochs', '1', '--seed', seed, '--out', dir]);
      expect(r.code).toBe(0);
    }
    for (const f of [
      'training_model.onnx',
      'eval_model.onnx',
      'checkpoint.onnx',
      'inference.onnx',
      'metrics.json',
      'evaluation.json',
    ]) {
      expect([f, bytes(a, f).equals(bytes(b, f))]).toEqual([f, true]);
    }
    expect(bytes(a, 'inference.onnx').equals(bytes(c, 'inference.onnx'))).toBe(false);
    const manifest = JSON.parse(readFileSync(join(a, 'manifest.json'), 'utf8'));
    expect(manifest.reproducibility.identical).toContain('inference.onnx');
    expect(manifest.host.finishedAt).toEqual(expect.any(String));
  });
});

describe('crash safety', () => {
  const args = [...base, '--epochs', '3', '--checkpoint-every', '3', '--log-every', '1', '--json'];
  const reference = tempDir();
  beforeAll(() => {
    expect(runCli(['train', ...args, '--out', reference]).code).toBe(0);
  });

  it('a run killed with SIGKILL at random points resumes and ends bit-identical to an uninterrupted run', async () => {
    // Kill points by progress, not by the clock, so a fast machine cannot finish first: a random step in each
    // third of the 60 steps; the kill lands wherever the process is a moment after that step's log line.
    const rnd = seeded(2026);
    const targets = [0, 1, 2].map((k) => 1 + 20 * k + Math.floor(rnd() * 19));
    const out = tempDir();
    for (const target of targets) {
      const resumable = existsSync(join(out, 'checkpoint.onnx'));
      const run = startCli([
        'train',
        ...(resumable
          ? ['--resume', out, '--ep', 'cpu', '--threads', '2', '--data', data, '--json']
          : [...args, '--out', out]),
      ]);
      await untilStep(run, target);
      expect(run.child.kill('SIGKILL')).toBe(true);
      expect(await run.exit).toBeNull();
    }
    const last = startCli(['train', '--resume', out, '--ep', 'cpu', '--threads', '2', '--data', data]);
    expect(await last.exit).toBe(0);
    // metrics.json too: the resumed run's record of losses and epochs has neither gaps nor duplicates.
    for (const f of ['checkpoint.onnx', 'inference.onnx', 'metrics.json', 'evaluation.json'])
      expect([f, bytes(out, f).equals(bytes(reference, f))]).toEqual([f, true]);
  });

  it('SIGTERM stops the run after its current step with a checkpoint (exit 143); resuming ends bit-identical', async () => {
    const out = tempDir();
    const run = startCli(['train', ...args, '--out', out]);
    await untilStep(run, 5);
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(143);
    const [, stopped] =
      /^ingraph: SIGTERM: stopped after step (\d+), checkpoint written; continue with --resume /m.exec(
        run.stderr(),
      ) as RegExpExecArray;
    expect(JSON.parse(readCheckpoint(join(out, 'checkpoint.onnx'), 'test').metadata['ingraph.position']).step).toBe(
      Number(stopped),
    );
    expect(existsSync(join(out, '.ingraph.lock'))).toBe(false);
    expect(runCli(['train', '--resume', out, '--ep', 'cpu', '--threads', '2', '--data', data]).code).toBe(0);
    // metrics.json too: the resumed run's record of losses and epochs has neither gaps nor duplicates.
    for (const f of ['checkpoint.onnx', 'inference.onnx', 'metrics.json', 'evaluation.json'])
      expect([f, bytes(out, f).equals(bytes(reference, f))]).toEqual([f, true]);
  });

  it('a truncated or altered checkpoint is refused with its message, and nothing changes', () => {
    for (const [damage, message] of [
      [
        (f: string) => truncateSync(f, Math.floor(statSync(f).size / 2)),
        /--resume .*checkpoint\.onnx: (not an ONNX model|.*missing|checksum mismatch)/,
      ],
      [
        (f: string) => {
          const b = readFileSync(f);
          b[Math.floor(b.length / 2)] ^= 0x10;
          writeFileSync(f, b);
        },
        /--resume .*checkpoint\.onnx: checksum mismatch: the checkpoint is damaged or was altered; refusing it/,
      ],
    ] as const) {
      const dir = tempDir();
      cpSync(reference, dir, { recursive: true });
      damage(join(dir, 'checkpoint.onnx'));
      const before = snapshot(dir);
      const r = runCli(['train', '--resume', dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(snapshot(dir)).toEqual(before);
    }
  });

  it('a re-sealed checkpoint whose batch order (ingraph.rng) disagrees with its config is refused', () => {
    const dir = tempDir();
    cpSync(reference, dir, { recursive: true });
    const path = join(dir, 'checkpoint.onnx');
    const ck = readCheckpoint(path, 'test');
    const specs = [...ck.initializers.values()].map((t) => ({ name: t.name, shape: t.shape, fanIn: 1 }));
    const values = new Map([...ck.initializers.values()].map((t) => [t.name, t.data as Float32Array]));
    const seed = JSON.parse(ck.metadata['ingraph.config']).seed as number;
    const metadata = { ...ck.metadata, 'ingraph.rng': JSON.stringify({ seed: seed + 1, shuffle: true, epoch: 0 }) };
    writeFileSync(path, encodeCheckpoint(specs, [], { params: values, states: values, metadata }));
    const r = runCli(['train', '--resume', dir]);
    expect([r.code, r.stderr]).toEqual([
      2,
      expect.stringMatching(
        /^ingraph: --resume .*: its batch order \(ingraph\.rng .*\) disagrees with its config and position\n$/,
      ),
    ]);
  });
});

describe('one run per output directory', () => {
  it('of two concurrent runs on one directory exactly one proceeds', async () => {
    const out = tempDir();
    const first = startCli(['train', ...base, '--epochs', '6', '--json', '--out', out]);
    while (!first.stdout().includes('"type":"start"')) await new Promise((r) => setTimeout(r, 20));
    const second = runCli(['train', ...base, '--epochs', '3', '--out', out]);
    const third = runCli(['train', '--resume', out]);
    expect(await first.exit).toBe(0);
    for (const r of [second, third]) {
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/another ingraph run \(pid \d+\) is using this directory/);
    }
    expect(existsSync(join(out, '.ingraph.lock'))).toBe(false);
  });

  it('a stale lock of a dead process is taken over with a warning', () => {
    const out = tempDir();
    writeFileSync(join(out, '.ingraph.lock'), '999999\n');
    const r = runCli(['train', ...base, '--max-steps', '2', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/warning: taking over the stale lock/);
  });
});

describe('divergence guard', () => {
  it('an absurd learning rate stops the run with exit code 3 and keeps the last good checkpoint', () => {
    const out = tempDir();
    const r = runCli(['train', ...base, '--lr', '1e20', '--checkpoint-every', '1', '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /^ingraph: training diverged at step (\d+) \(epoch 1, batch \d+\): .*; the last good checkpoint \(step (\d+)\) is kept in /,
    );
    const [, diverged, kept] = /at step (\d+).*\(step (\d+)\)/.exec(r.stderr) as RegExpExecArray;
    expect(Number(kept)).toBe(Number(diverged) - 1);
    const ck = readCheckpoint(join(out, 'checkpoint.onnx'), 'test');
    expect(JSON.parse(ck.metadata['ingraph.position']).step).toBe(Number(kept));
    for (const t of ck.initializers.values())
      expect([t.name, (t.data as Float32Array).every(Number.isFinite)]).toEqual([t.name, true]);
    if (Number(kept) === 0) {
      const init = initParams(resolveNetwork('residual').create().parameters(), 0);
      expect(
        Buffer.from((ck.initializers.get('fc.weight')?.data as Float32Array).buffer).equals(
          Buffer.from((init.get('fc.weight') as Float32Array).buffer),
        ),
      ).toBe(true);
    }
    expect(existsSync(join(out, 'inference.onnx'))).toBe(false);
  });
});

describe('promotion', () => {
  it('a better model is promoted, a worse one refused with exit 4; history.jsonl records every decision', () => {
    const deploy = join(tempDir(), 'deploy');
    mkdirSync(deploy);
    const target = join(deploy, 'model.onnx');
    const weak = runCli(['train', ...base, '--max-steps', '2', '--out', tempDir(), '--promote-to', target]);
    expect(weak.code).toBe(0);
    const weakBytes = readFileSync(target);
    const strong = runCli(['train', ...base, '--epochs', '2', '--out', tempDir(), '--promote-to', target]);
    expect(strong.code).toBe(0);
    const strongBytes = readFileSync(target);
    expect(strongBytes.equals(weakBytes)).toBe(false);
    const worse = runCli(['train', ...base, '--max-steps', '1', '--out', tempDir(), '--promote-to', target]);
    expect(worse.code).toBe(4);
    expect(worse.stderr).toMatch(/kept the deployed model: new test accuracy \d+\.\d\d% is below its \d+\.\d\d%/);
    expect(readFileSync(target).equals(strongBytes)).toBe(true);
    const otherTestSet = runCli([
      'train',
      ...base,
      '--epochs',
      '2',
      '--test-limit',
      '100',
      '--out',
      tempDir(),
      '--promote-to',
      target,
    ]);
    expect(otherTestSet.code).toBe(4);
    expect(otherTestSet.stderr).toMatch(
      /it was scored on 200 test images, the new one on 100; the accuracies .* do not compare/,
    );
    expect(readFileSync(target).equals(strongBytes)).toBe(true);
    const history = readFileSync(join(deploy, 'history.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(history.map((h) => h.decision)).toEqual(['promoted', 'promoted', 'refused', 'refused']);
    expect(history[2].accuracy).toBeLessThan(history[2].previousAccuracy);
    const deployed = parseModel(readFileSync(target));
    expect(Number(deployed.metadata['ingraph.test_accuracy'])).toBe(history[1].accuracy);
  });
});

describe('bad input: exit code 2, one line, the output directory unchanged', () => {
  const out = tempDir();
  writeFileSync(join(out, 'keep.txt'), 'previous contents');
  const otherRun = tempDir();
  const oldVersion = tempDir();
  const noAccuracy = join(tempDir(), 'model.onnx');
  beforeAll(() => {
    expect(runCli(['train', ...base, '--max-steps', '1', '--out', otherRun]).code).toBe(0);
    const specs = resolveNetwork('residual').create().parameters();
    writeFileSync(
      join(oldVersion, 'checkpoint.onnx'),
      encodeCheckpoint(specs, [], {
        params: initParams(specs, 0),
        states: new Map(),
        metadata: { 'ingraph.kind': 'checkpoint', 'ingraph.version': '9.0.0', 'ingraph.config': '{}' },
      }),
    );
    expect(runCli(['export', '--model', 'residual', '--out', noAccuracy]).code).toBe(0);
  });

  it.each([
    ['batch size zero', ['--batch-size', '0'], /--batch-size 0: must be between 1 and 65536/],
    ['negative batch size', ['--batch-size=-5'], /--batch-size -5: must be between 1 and 65536/],
    ['lr not a number', ['--lr', 'fast'], /--lr fast: not a finite number/],
    ['lr infinite', ['--lr', 'Infinity'], /--lr Infinity: not a finite number/],
    ['lr zero', ['--lr', '0'], /--lr 0: must be a positive number/],
    ['unknown model', ['--model', 'vgg'], /--model vgg: must be one of inception, residual/],
    ['zero epochs', ['--epochs', '0'], /--epochs 0: must be at least 1/],
    ['momentum of 1.5', ['--momentum', '1.5'], /--momentum 1\.5: must be in \[0, 1\)/],
    ['unknown optimizer', ['--optimizer', 'rmsprop'], /--optimizer rmsprop: must be one of sgd, adamw/],
    ['unknown schedule', ['--lr-schedule', 'linear'], /--lr-schedule linear: must be one of constant, step, cosine/],
    ['checkpoint-every zero', ['--checkpoint-every', '0'], /--checkpoint-every 0: must be at least 1/],
    [
      'a data directory that does not exist',
      ['--data', '/nonexistent/mnist'],
      /\/nonexistent\/mnist: not a directory of MNIST IDX files/,
    ],
    [
      'an --init file that does not exist',
      ['--init', '/nonexistent/w.onnx'],
      /--init \/nonexistent\/w\.onnx: no such file/,
    ],
    ['a frozen prefix that names nothing', ['--freeze', 'conv9'], /--freeze conv9: matches no parameter/],
    [
      'an output directory under a file',
      ['--out', '/etc/hostname/run'],
      /--out \/etc\/hostname\/run: \/etc\/hostname is not a directory/,
    ],
    [
      'an output directory the filesystem refuses',
      ['--out', '/proc/ingraph-run'],
      /--out \/proc\/ingraph-run: cannot create \/proc\/ingraph-run \(E[A-Z]+\)/,
    ],
    [
      'an output directory that holds an earlier run',
      ['--out', otherRun],
      /--out .*: holds an earlier run .*; continue with --resume /,
    ],
    ['--resume of a directory without a checkpoint', ['--resume', out], /--resume .*: no checkpoint\.onnx there/],
    [
      '--resume of another network',
      ['--resume', otherRun, '--model', 'inception'],
      /that run trains the residual net, not inception/,
    ],
    ['--resume of an incompatible version', ['--resume', oldVersion], /written by ingraph 9\.0\.0, incompatible with/],
    [
      '--resume changing the batch size',
      ['--resume', otherRun, '--batch-size', '8'],
      /--batch-size cannot change on resume/,
    ],
    [
      '--promote-to a model without a recorded accuracy',
      ['--promote-to', noAccuracy],
      /--promote-to .*: the model there records no test accuracy/,
    ],
    ['--promote-tolerance alone', ['--promote-tolerance', '0.01'], /--promote-tolerance: needs --promote-to/],
    ['--ep tpu', ['--ep', 'tpu'], /--ep tpu: must be one of cpu, cuda, webgpu, auto/],
  ])('%s', (_, flags, message) => {
    const dirs = [out, otherRun, oldVersion];
    const before = dirs.map(snapshot);
    const usesOwnTarget = flags.includes('--out') || flags.includes('--resume');
    const r = runCli(['train', ...base, ...(usesOwnTarget ? [] : ['--out', out]), ...flags]);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBe(2);
    expect(dirs.map(snapshot)).toEqual(before);
  });
});
