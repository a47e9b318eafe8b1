/**
 * tools/recipes: the README's accuracy recipes, trained with several seeds, one run after another.
 *
 *   node dist/tools/recipes.js [--nets residual,inception] [--seeds 0,1,2] [--json FILE] [--out DIR]
 *
 * Each run is `ingraph train` with the recipe's flags and `--seed S`, on the full MNIST sets; the table gives every
 * run's test accuracy, wall time, training images/s and peak RSS, and per net the mean and spread of the accuracy.
 */
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseArgs } from 'util';
import { writeFileAtomic } from '../src/io/files';
import { NetworkName } from '../src/models';
import { CliEvent, runCliEvents } from './cli-run';
import { RECIPES } from './recipe-flags';

interface RunFigures {
  net: NetworkName;
  seed: number;
  testAccuracyByEpoch: number[];
  accuracy: number;
  wallSeconds: number;
  imagesPerSecond: number;
  peakRssMB: number;
}

/** One `ingraph train` of `net`'s recipe with `seed`: its per-epoch and final figures from its JSON lines. */
async function trainOnce(net: NetworkName, seed: number, out: string): Promise<RunFigures> {
  const t0 = process.hrtime.bigint();
  const events: CliEvent[] = [];
  const code = await runCliEvents(
    ['train', '--model', net, ...RECIPES[net], '--seed', String(seed), '--json', '--out', out],
    (e) => events.push(e),
    true,
  );
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const done = events.find((e) => e.type === 'done');
  if (code !== 0 || !done) throw new Error(`ingraph train --model ${net} --seed ${seed} exited ${code}`);
  const epochs = events.filter((e) => e.type === 'epoch').map((e) => Number(e.testAccuracy));
  return {
    net,
    seed,
    testAccuracyByEpoch: epochs,
    accuracy: Number(done.accuracy),
    wallSeconds,
    imagesPerSecond: Number(done.imagesPerSecond),
    peakRssMB: Number(done.peakRssMB),
  };
}

function summary(runs: RunFigures[]): { mean: number; std: number; min: number; max: number } {
  const a = runs.map((r) => r.accuracy);
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(a.length - 1, 1));
  return { mean, std, min: Math.min(...a), max: Math.max(...a) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { nets: { type: 'string' }, seeds: { type: 'string' }, json: { type: 'string' }, out: { type: 'string' } },
  });
  const nets = (values.nets ?? 'residual,inception').split(',') as NetworkName[];
  const seeds = (values.seeds ?? '0,1,2').split(',').map(Number);
  const root = values.out ?? mkdtempSync(join(tmpdir(), 'ingraph-recipes-'));
  const runs: RunFigures[] = [];
  for (const net of nets) {
    for (const seed of seeds) {
      const r = await trainOnce(net, seed, join(root, `${net}-seed${seed}`));
      runs.push(r);
      const pct = (v: number) => (100 * v).toFixed(2);
      console.log(
        `${net} seed ${seed}: ${pct(r.accuracy)}% (epochs ${r.testAccuracyByEpoch.map(pct).join(' ')}), ${r.wallSeconds.toFixed(0)} s, ${r.imagesPerSecond.toFixed(0)} img/s, ${r.peakRssMB.toFixed(0)} MB`,
      );
    }
    const s = summary(runs.filter((r) => r.net === net));
    console.log(
      `${net}: mean ${(100 * s.mean).toFixed(3)}%, std ${(100 * s.std).toFixed(3)}, range ${(100 * s.min).toFixed(2)}-${(100 * s.max).toFixed(2)}%  (ingraph train --model ${net} ${RECIPES[net].join(' ')})`,
    );
  }
  if (values.json) {
    const bySummary = Object.fromEntries(
      nets.map((n) => [
        n,
        { command: `ingraph train --model ${n} ${RECIPES[n].join(' ')}`, ...summary(runs.filter((r) => r.net === n)) },
      ]),
    );
    writeFileAtomic(
      values.json,
      `${JSON.stringify({ date: new Date().toISOString(), summary: bySummary, runs }, null, 1)}\n`,
    );
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
