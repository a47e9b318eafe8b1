/** tools/bench's ingraph half on a tiny setting, so the benchmark cannot rot (CI does not run the full bench). */
import { spawnSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { ROOT, tempDir } from './helpers/cli';

it('bench --no-reference measures training, inference (float and int8), first step, peak RSS and op shares', () => {
  const json = join(tempDir(), 'bench.json');
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'tools', 'bench.js'), '--no-reference', '--nets', 'residual', '--steps', '2', '--warmup', '1', '--repeats', '1', '--rss-steps', '2', '--json', json], { encoding: 'utf8' });
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
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'tools', 'bench.js'), '--no-reference', '--nets', 'residual', '--steps', '2', '--warmup', '1', '--repeats', '1', '--rss-steps', '2', '--steps-per-run', '2'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('2 steps per run (Loop)');
  expect(r.stdout).toMatch(/train img\/s, batch 64: ingraph\s+[\d,]+/);
});
