/**
 * Faults of the filesystem and hostile files. A full disk at each artifact in turn, a read-only or vanished output
 * directory and lost permission end a run with exit 6 and one line naming the file and the error; nothing incomplete
 * is left under a final name; the last complete checkpoint resumes to a bit-identical end once the fault is fixed; a
 * promoted model is never torn. Also: a run that cannot start writes nothing, locks of reused pids, a signal in the
 * final evaluation, concurrent promotions, and crafted model files refused by every command that reads one.
 */
import { spawn, spawnSync } from 'child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'fs';
import { join } from 'path';
import { onnx } from 'onnx-proto';
import { sha256 } from '../src/io/files';
import { readCheckpoint } from '../src/run/checkpoint';
import { parseModel } from '../src/onnx/model';
import { CLI, CliResult, Running, mnistSlice, runCli, startCli, tempDir, untilStep } from './helpers/cli';
import { listFiles, pages, PAGE, remount, tmpfs, tmpfsProbe, unmountAll } from './helpers/faults';
import { writeHostileFiles } from './helpers/hostile';

const data = mnistSlice(640, 200);
// 20 steps per epoch, 40 in all; checkpoints at steps 0, 5, 10, ... 40.
const base = [
  '--model',
  'residual',
  '--data',
  data,
  '--batch-size',
  '32',
  '--epochs',
  '2',
  '--ep',
  'cpu',
  '--threads',
  '2',
  '--checkpoint-every',
  '5',
  '--log-every',
  '1',
  '--json',
];
const resumeArgs = (dir: string) => ['train', '--resume', dir, '--ep', 'cpu', '--threads', '2', '--data', data];
const ARTIFACT_FILES = [
  'training_model.onnx',
  'eval_model.onnx',
  'checkpoint.onnx',
  'metrics.json',
  'inference.onnx',
  'evaluation.json',
];
const reference = tempDir();
const noTmpfs = tmpfsProbe();
if (noTmpfs) console.warn(`io-faults.test.ts: the tmpfs tests are skipped: ${noTmpfs}`);
const onTmpfs = noTmpfs ? describe.skip : describe;

beforeAll(() => {
  expect(runCli(['train', ...base, '--out', reference]).code).toBe(0);
});
afterAll(unmountAll);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const size = (file: string) => statSync(join(reference, file)).size;

/** Exit 6; the last stderr line names the file and the system error; the last JSON event is that error. */
function expectIoFault(r: CliResult, path: string, errno: string): void {
  expect([r.code, r.stderr]).toEqual([6, expect.any(String)]);
  const last = r.stderr.trim().split('\n').at(-1) as string;
  expect(last).toMatch(new RegExp(`^ingraph: cannot write (the lock )?${escape(path)}: ${errno} \\(`));
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const event = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
  expect(event).toMatchObject({ type: 'error', code: 'io', exitCode: 6 });
  expect(`ingraph: ${event.message}`).toBe(last);
}

/**
 * Only complete files under final names: every model parses, the checkpoint verifies, the manifest's hashes hold.
 * The directory must exist unless `mayBeAbsent` (a run that failed before creating it).
 */
function expectNothingTorn(dir: string, mayBeAbsent = false): void {
  expect(mayBeAbsent || existsSync(dir)).toBe(true);
  if (!existsSync(dir)) return;
  const files = listFiles(dir);
  expect(files.filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
  for (const f of files.filter((n) => n.endsWith('.onnx')))
    expect(() => parseModel(readFileSync(join(dir, f)), f)).not.toThrow();
  if (files.includes('checkpoint.onnx')) readCheckpoint(join(dir, 'checkpoint.onnx'), 'test');
  if (files.includes('manifest.json')) {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    for (const [f, { sha256: hash }] of Object.entries<{ sha256: string }>(manifest.files))
      expect([f, sha256(readFileSync(join(dir, f)))]).toEqual([f, hash]);
  }
}

/** Once the fault is gone: resume from the checkpoint left (or run again) and end bit-identical to the reference. */
function expectCompletes(out: string): void {
  const r = runCli(existsSync(join(out, 'checkpoint.onnx')) ? resumeArgs(out) : ['train', ...base, '--out', out]);
  expect([r.code, r.stderr]).toEqual([0, expect.any(String)]);
  for (const f of ARTIFACT_FILES)
    expect([f, readFileSync(join(out, f)).equals(readFileSync(join(reference, f)))]).toEqual([f, true]);
  expectNothingTorn(out);
}

onTmpfs('a full disk at each file a run writes', () => {
  // The pages a run holds when it writes each file (tmpfs charges whole pages; the lock takes one). A budget of the
  // pages before a file plus half of its own fails that file's write part-way: a genuine short write. A fresh run
  // replaces a checkpoint while the old one exists (twice its pages) before it writes inference.onnx, which is smaller:
  // the files of the final stage are reached by resuming the reference run's final checkpoint, which writes only them.
  const p = (file: string) => pages(size(file));
  const graphs = () => 1 + p('training_model.onnx') + p('eval_model.onnx');
  // metrics.json follows every checkpoint; at step 0 it holds no log yet (one page), so it is failed by a budget one
  // page short of what the files before it hold: the checkpoint before it still fits, as measured.
  const finalStage = (...files: string[]) =>
    graphs() + p('checkpoint.onnx') + p('metrics.json') + files.reduce((a, f) => a + p(f), 0);
  const cases: Record<string, { budget: () => number; atLastStep?: boolean }> = {
    '.ingraph.lock': { budget: () => 0 },
    'training_model.onnx': { budget: () => 1 + Math.floor(p('training_model.onnx') / 2) },
    'eval_model.onnx': { budget: () => 1 + p('training_model.onnx') + Math.floor(p('eval_model.onnx') / 2) },
    'checkpoint.onnx (the first, step 0)': { budget: () => graphs() + Math.floor(p('checkpoint.onnx') / 2) },
    'metrics.json (the first, step 0)': { budget: () => graphs() + p('checkpoint.onnx') - 1 },
    'checkpoint.onnx (the next, step 5)': { budget: () => graphs() + 1 + Math.floor(1.5 * p('checkpoint.onnx')) },
    'inference.onnx': { budget: () => finalStage() + Math.floor(p('inference.onnx') / 2), atLastStep: true },
    'evaluation.json': {
      budget: () => finalStage('inference.onnx') + Math.floor(p('evaluation.json') / 2),
      atLastStep: true,
    },
    'manifest.json': { budget: () => finalStage('inference.onnx', 'evaluation.json'), atLastStep: true },
    'report.html': {
      budget: () => finalStage('inference.onnx', 'evaluation.json', 'manifest.json') + Math.floor(p('report.html') / 2),
      atLastStep: true,
    },
  };

  it.each(Object.keys(cases))(
    '%s: exit 6, nothing torn, and the run completes bit-identical once space is freed',
    (name) => {
      // One page more than the budget, taken by a filler file: a tmpfs of size 0 would be unlimited.
      const fs = tmpfs((cases[name].budget() + 1) * PAGE);
      writeFileSync(join(fs, 'filler'), Buffer.alloc(PAGE));
      const out = join(fs, 'run');
      if (cases[name].atLastStep) {
        mkdirSync(out);
        for (const f of ['training_model.onnx', 'eval_model.onnx', 'checkpoint.onnx'])
          writeFileSync(join(out, f), readFileSync(join(reference, f)));
      }
      const r = runCli(cases[name].atLastStep ? [...resumeArgs(out), '--json'] : ['train', ...base, '--out', out]);
      expectIoFault(r, join(out, name.split(' ')[0]), 'ENOSPC');
      expectNothingTorn(out, true);
      if (name === '.ingraph.lock') {
        expect(listFiles(fs)).toEqual(['filler']); // a run that cannot start writes nothing
      } else {
        const kept = existsSync(join(out, 'checkpoint.onnx'));
        expect(r.stderr).toMatch(
          kept
            ? /the last complete checkpoint \(step \d+\) is kept; continue with --resume /
            : /no checkpoint of this run remains/,
        );
      }
      if (name.includes('step 5'))
        expect(JSON.parse(readCheckpoint(join(out, 'checkpoint.onnx'), 'test').metadata['ingraph.position']).step).toBe(
          0,
        );
      remount(fs, 'size=64m');
      expectCompletes(out);
    },
  );
});

onTmpfs('promotion onto a full disk', () => {
  it('fails with exit 6 and leaves the deployed model and history.jsonl as they were; a resume promotes', () => {
    // The deployed model: the reference's, recording a lower accuracy so that the new one is promoted.
    const m = onnx.ModelProto.decode(readFileSync(join(reference, 'inference.onnx')));
    for (const p of m.metadataProps) if (p.key === 'ingraph.test_accuracy') p.value = '0.01';
    const deployedBytes = Buffer.from(onnx.ModelProto.encode(m).finish());
    const fs = tmpfs((pages(deployedBytes.length) + 1 + Math.floor(pages(size('inference.onnx')) / 2)) * PAGE);
    const target = join(fs, 'deployed.onnx');
    writeFileSync(target, deployedBytes);
    const out = tempDir();
    const r = runCli(['train', ...base, '--out', out, '--promote-to', target]);
    expectIoFault(r, target, 'ENOSPC');
    expect(readFileSync(target).equals(deployedBytes)).toBe(true);
    expect(listFiles(fs)).toEqual(['deployed.onnx']);
    expectNothingTorn(out);
    remount(fs, 'size=64m');
    const resumed = runCli([...resumeArgs(out), '--promote-to', target]);
    expect([resumed.code, resumed.stdout]).toEqual([
      0,
      expect.stringMatching(/promoted to .*deployed\.onnx \(test accuracy [\d.]+%, was 1\.00%\)/),
    ]);
    expect(readFileSync(target).equals(readFileSync(join(reference, 'inference.onnx')))).toBe(true);
    const history = readFileSync(join(fs, 'history.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({
      decision: 'promoted',
      previousAccuracy: 0.01,
      sha256: sha256(readFileSync(target)),
    });
  });
});

describe('faults in the middle of a run', () => {
  async function faultAtStep(
    out: string,
    fault: () => void,
    ids: { uid?: number; gid?: number } = {},
  ): Promise<CliResult> {
    const run = startCli(['train', ...base, '--checkpoint-every', '10', '--out', out], ids);
    await untilStep(run, 2);
    fault();
    return { code: await run.exit, stdout: run.stdout(), stderr: run.stderr() };
  }

  (noTmpfs ? it.skip : it)('a filesystem turned read-only: exit 6 (EROFS); resumable bit-identical after', async () => {
    const fs = tmpfs(64 * 1024 * 1024);
    const out = join(fs, 'run');
    const r = await faultAtStep(out, () => remount(fs, 'ro'));
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(
        `^ingraph: cannot write ${escape(out)}/checkpoint\\.onnx: EROFS \\(read-only file system\\); the last complete checkpoint \\(step \\d+\\) is kept`,
      ),
    );
    expect(r.code).toBe(6);
    remount(fs, 'rw');
    // The lock could not be removed from the read-only directory: the resume takes it over, its process being gone.
    expect(existsSync(join(out, '.ingraph.lock'))).toBe(true);
    rmSync(join(out, '.ingraph.lock'));
    expectNothingTorn(out);
    expectCompletes(out);
  });

  it('the output directory removed: exit 6 (ENOENT), and the message says no checkpoint remains', async () => {
    const out = join(tempDir(), 'run');
    const r = await faultAtStep(out, () => rmSync(out, { recursive: true, force: true }));
    expectIoFault(r, join(out, 'checkpoint.onnx'), 'ENOENT');
    expect(r.stderr).toMatch(/no checkpoint of this run remains: once fixed, run it again/);
    expect(existsSync(out)).toBe(false);
  });

  const nobodyCan =
    process.getuid?.() === 0 &&
    spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(CLI)})`], { uid: 65534, gid: 65534 })
      .status === 0;
  if (!nobodyCan)
    console.warn(
      'io-faults.test.ts: the lost-permission test is skipped: it needs root and a checkout that user nobody can read',
    );
  (nobodyCan ? it : it.skip)(
    'permission lost (a run as another user whose directory turns read-only): exit 6 (EACCES)',
    async () => {
      const nobody = { uid: 65534, gid: 65534 };
      const home = tempDir();
      chmodSync(home, 0o755);
      chmodSync(data, 0o755);
      const out = join(home, 'run');
      mkdirSync(out);
      chownSync(out, nobody.uid, nobody.gid);
      const r = await faultAtStep(out, () => chmodSync(out, 0o555), nobody);
      expectIoFault(r, join(out, 'checkpoint.onnx'), 'EACCES');
      chmodSync(out, 0o755);
      rmSync(join(out, '.ingraph.lock'), { force: true });
      expectNothingTorn(out);
      expectCompletes(out);
    },
  );
});

describe('output streams that fail', () => {
  (noTmpfs ? it.skip : it)('stdout redirected onto a full disk: the run completes, then exit 6 naming stdout', () => {
    const fs = tmpfs(PAGE);
    writeFileSync(join(fs, 'filler'), Buffer.alloc(PAGE));
    const out = tempDir();
    const r = spawnSync(
      'sh',
      [
        '-c',
        `"$0" "$@" > ${join(fs, 'log.jsonl')}`,
        process.execPath,
        CLI,
        'train',
        ...base,
        '--max-steps',
        '3',
        '--out',
        out,
      ],
      { encoding: 'utf8' },
    );
    expect([r.status, r.stderr.trim().split('\n').at(-1)]).toEqual([
      6,
      'ingraph: cannot write stdout: ENOSPC (no space left on device); output after that was lost (the command itself completed)',
    ]);
    expect(listFiles(out).sort()).toEqual([...ARTIFACT_FILES, 'manifest.json', 'report.html'].sort());
    expectNothingTorn(out);
  });

  it('a reader that goes away (| head -1) does not stop the run: exit 0, artifacts complete', () => {
    const out = tempDir();
    const r = spawnSync(
      'bash',
      [
        '-c',
        `"$0" "$@" | head -1 > /dev/null; exit \${PIPESTATUS[0]}`,
        process.execPath,
        CLI,
        'train',
        ...base,
        '--max-steps',
        '3',
        '--out',
        out,
      ],
      { encoding: 'utf8' },
    );
    expect([r.status, r.stderr]).toEqual([0, expect.not.stringMatching(/EPIPE|\n\s+at /)]);
    expect(listFiles(out).sort()).toEqual([...ARTIFACT_FILES, 'manifest.json', 'report.html'].sort());
    expectNothingTorn(out);
  });
});

describe('a run that cannot start writes nothing', () => {
  it('--ep cuda without the CUDA provider: exit 2, and neither the directory nor any file is created', () => {
    const out = join(tempDir(), 'never');
    const r = runCli(['train', ...base, '--ep', 'cuda', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^ingraph: --ep cuda: /);
    expect(existsSync(out)).toBe(false);
  });
});

describe('locks', () => {
  it('a lock whose pid now belongs to another process is taken over with a warning', () => {
    const out = tempDir();
    // This test process is alive, but it is not the process that "wrote" this lock: its start time differs.
    writeFileSync(join(out, '.ingraph.lock'), JSON.stringify({ pid: process.pid, start: '1', boot: null }));
    const r = runCli(['train', ...base, '--max-steps', '2', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`warning: taking over the stale lock .*\\(pid ${process.pid} now belongs to another process\\)`),
    );
  });

  it('a lock of a live process (bare pid, as ingraph 0.1 wrote) is respected: exit 5', () => {
    const out = tempDir();
    writeFileSync(join(out, '.ingraph.lock'), `${process.pid}\n`);
    const r = runCli(['train', ...base, '--max-steps', '2', '--out', out]);
    expect(r.code).toBe(5);
    expect(listFiles(out)).toEqual(['.ingraph.lock']);
  });
});

describe('a signal during an evaluation (10,000 test images, so that it lands there)', () => {
  const bigTest = mnistSlice(640, 10000);
  const args = [...base.map((a) => (a === data ? bigTest : a)), '--max-steps', '10'];

  /** A reference run of `args`, and the same run stopped by SIGTERM once it has logged `step` (exit 143). */
  async function stoppedAt(args: string[], step: number): Promise<{ ref: string; out: string; run: Running }> {
    const ref = tempDir();
    expect(runCli(['train', ...args, '--out', ref]).code).toBe(0);
    const out = tempDir();
    const run = startCli(['train', ...args, '--out', out]);
    await untilStep(run, step);
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(143);
    return { ref, out, run };
  }

  /** Resuming `out` ends with the reference's artifacts, bit for bit. */
  function expectResumedLike(out: string, ref: string): void {
    expect(runCli(['train', '--resume', out, '--ep', 'cpu', '--threads', '2', '--data', bigTest]).code).toBe(0);
    for (const f of ARTIFACT_FILES)
      expect([f, readFileSync(join(out, f)).equals(readFileSync(join(ref, f)))]).toEqual([f, true]);
  }

  it('in the per-epoch evaluation: stops with a checkpoint (exit 143); the resume ends bit-identical', async () => {
    const { ref, out, run } = await stoppedAt([...args.slice(0, -2), '--epochs', '2', '--max-steps', '25'], 20);
    expect(run.stderr().trim().split('\n').at(-1)).toMatch(
      /^ingraph: SIGTERM: stopped in the test evaluation after step 20, checkpoint written; continue with --resume /,
    );
    expect(run.stdout()).not.toMatch(/"type":"epoch"/);
    expectResumedLike(out, ref);
  });

  it('in the final evaluation: stops before the export (exit 143); the resume finishes it bit-identical', async () => {
    const { ref, out, run } = await stoppedAt(args, 10);
    expect(run.stderr().trim().split('\n').at(-1)).toMatch(
      /^ingraph: SIGTERM: stopped after training \(step 10\), before the export; the final checkpoint is written; continue with --resume \S+$/,
    );
    expect(JSON.parse(run.stdout().trim().split('\n').at(-1) as string)).toMatchObject({
      type: 'error',
      code: 'interrupted',
      exitCode: 143,
    });
    expect(existsSync(join(out, 'inference.onnx'))).toBe(false);
    expectResumedLike(out, ref);
  });
});

describe('concurrent promotions to one path', () => {
  it('serialise: one complete model, every decision one whole line, each judged against the model then deployed', async () => {
    const deploy = tempDir();
    const target = join(deploy, 'model.onnx');
    const workers = [1, 2, 3, 4].map((seed) => startWorker(target, 6, seed));
    expect(await Promise.all(workers)).toEqual([0, 0, 0, 0]);
    const history = readFileSync(join(deploy, 'history.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(history).toHaveLength(24);
    let deployed: { accuracy: number; sha256: string } | null = null;
    for (const h of history) {
      expect(h.previousAccuracy).toBe(deployed?.accuracy ?? null);
      expect(h.decision).toBe(deployed === null || h.accuracy >= deployed.accuracy ? 'promoted' : 'refused');
      if (h.decision === 'promoted') deployed = { accuracy: h.accuracy, sha256: h.sha256 };
    }
    expect(deployed?.accuracy).toBe(Math.max(...history.map((h) => h.accuracy)));
    expect(sha256(readFileSync(target))).toBe(deployed?.sha256);
    expect(listFiles(deploy).sort()).toEqual(['history.jsonl', 'model.onnx']);
  });
});

function startWorker(target: string, count: number, seed: number): Promise<number | null> {
  const child = spawn(
    process.execPath,
    [join(__dirname, 'helpers', 'promote-worker.js'), target, String(count), String(seed)],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return new Promise((resolve) => child.on('close', resolve));
}

describe('hostile model files are refused with one line, in bounded memory and time, by every reader', () => {
  const dir = tempDir();
  const hostile = writeHostileFiles(dir);
  const small = mnistSlice(64, 20);
  const trainArgs = ['train', '--model', 'residual', '--data', small, '--ep', 'cpu', '--max-steps', '1'];
  const readers: [string, (file: string) => string[], string][] = [
    ['eval', (f) => ['eval', '--model-file', f, '--data', small], '--model-file'],
    ['inspect', (f) => ['inspect', f], 'inspect'],
    [
      'export --init',
      (f) => ['export', '--model', 'residual', '--init', f, '--out', join(tempDir(), 'never.onnx')],
      '--init',
    ],
    ['train --init', (f) => [...trainArgs, '--init', f, '--out', join(tempDir(), 'never')], '--init'],
    [
      'train --resume',
      (f) => {
        const run = tempDir();
        symlinkSync(f, join(run, 'checkpoint.onnx'));
        return ['train', '--resume', run, '--data', small];
      },
      '--resume',
    ],
    ['train --promote-to', (f) => [...trainArgs, '--promote-to', f, '--out', join(tempDir(), 'never')], '--promote-to'],
  ];
  const timeTool = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
  if (!timeTool)
    console.warn('io-faults.test.ts: /usr/bin/time is missing; peak memory of the refusals is not measured');

  it.each(readers)('%s', (_, argsFor, flag) => {
    for (const h of hostile) {
      const args = argsFor(h.path);
      const rss = join(tempDir(), 'rss');
      const command = timeTool ? [timeTool, '-f', '%M', '-o', rss, process.execPath] : [process.execPath];
      const r = spawnSync(command[0], [...command.slice(1), CLI, ...args], { encoding: 'utf8', timeout: 30000 });
      const shown = flag === '--resume' ? 'checkpoint\\.onnx' : escape(h.name);
      expect([h.name, r.status, r.stderr]).toEqual([
        h.name,
        2,
        expect.stringMatching(new RegExp(`^ingraph: ${escape(flag)} \\S*${shown}: `)),
      ]);
      expect([h.name, r.stderr]).toEqual([h.name, expect.stringMatching(h.message)]);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      if (timeTool)
        expect([h.name, Number(readFileSync(rss, 'utf8').trim().split('\n').at(-1)) / 1024 < 400]).toEqual([
          h.name,
          true,
        ]); // peak MB
    }
  });
});
