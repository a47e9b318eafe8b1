/** tools/bench's ingraph half on a tiny setting, so the benchmark cannot rot (CI does not run the full bench). */
import { spawnSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { ROOT, tempDir } from './helpers/cli';

it('bench --no-reference measures training, inference (float and int8), first step, peak RSS and op shares', () => {
  const json = join(tempDir(), 'bench.json');
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist', 'tools', 'bench.js'),
      '--no-reference',
      '--nets',
      'residual',
      '--steps',
      '2',
      '--warmup',
      '1',
      '--repeats',
      '1',
      '--rss-steps',
      '2',
      '--json',
      json,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/train img\/s, batch 64: ingraph\s+[\d,]+/);
  const [result] = JSON.parse(readFileSync(json, 'utf8')).results;
  expect(result.train.ingraph).toBeGreaterThan(0);
  expect(result.train.pytorch).toBeNull();
  expect(result.inference.ingraph).toBeGreaterThan(0);
  expect(result.firstStepSeconds).toBeGreaterThan(0);
  expect(result.peakRssMB).toBeGreaterThan(0);
  expect(result.int8.batch1000.int8).toBeGreaterThan(0);
  expect(result.int8.bytes.int8).toBeLessThan(0.4 * result.int8.bytes.float);
  const shares = result.opShares.map((s: { op: string }) => s.op);
  expect(shares).toEqual(expect.arrayContaining(['Conv', 'MatMul']));
});

it('bench --steps-per-run runs the Loop graph', () => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist', 'tools', 'bench.js'),
      '--no-reference',
      '--nets',
      'residual',
      '--steps',
      '2',
      '--warmup',
      '1',
      '--repeats',
      '1',
      '--rss-steps',
      '2',
      '--steps-per-run',
      '2',
    ],
    { encoding: 'utf8' },
  );
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('2 steps per run (Loop)');
  expect(r.stdout).toMatch(/train img\/s, batch 64: ingraph\s+[\d,]+/);
});

it('conv-bench --no-reference times every conv of the residual net at the seed’s shapes', () => {
  const json = join(tempDir(), 'conv-bench.json');
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist', 'tools', 'conv-bench.js'),
      '--no-reference',
      '--nets',
      'residual',
      '--repeats',
      '1',
      '--iters',
      '1',
      '--json',
      json,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/residual: all convs\s+64\s+[\d.]+/);
  const { results } = JSON.parse(readFileSync(json, 'utf8'));
  // The seed's ResidualNet at a batch-32 shard: conv1 1→16 5x5 on 28x28, rblock1 16→16 3x3 pad 1 on 12x12, conv2
  // 16→32 5x5 on 12x12, rblock2 32→32 3x3 pad 1 on 4x4.
  expect(
    results.map((l: { name: string; x: number[]; w: number[]; pads: number[] }) => [l.name, l.x, l.w, l.pads[0]]),
  ).toEqual([
    ['conv1', [32, 1, 28, 28], [16, 1, 5, 5], 0],
    ['rblock1.conv1', [32, 16, 12, 12], [16, 16, 3, 3], 1],
    ['rblock1.conv2', [32, 16, 12, 12], [16, 16, 3, 3], 1],
    ['conv2', [32, 16, 12, 12], [32, 16, 5, 5], 0],
    ['rblock2.conv1', [32, 32, 4, 4], [32, 32, 3, 3], 1],
    ['rblock2.conv2', [32, 32, 4, 4], [32, 32, 3, 3], 1],
  ]);
  // The images need no gradient: the first conv has no input-gradient part.
  expect(results[0].ingraph.dx).toBeNull();
  for (const l of results) {
    expect(l.ingraph.fwd).toBeGreaterThan(0);
    expect(l.ingraph.dw).toBeGreaterThan(0);
    expect(l.pytorch.fwd).toBeNull();
    expect(l.ratio).toBeNull();
  }
  expect(results.slice(1).every((l: { ingraph: { dx: number } }) => l.ingraph.dx > 0)).toBe(true);
});
