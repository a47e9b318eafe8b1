/** Reports: a run's (optionally against a second run) and a model's evaluation, as self-contained HTML. */
import { basename, join, resolve } from 'path';
import { makeDir, writeFileAtomic } from '../artifacts/files';
import { renderReport } from './html';
import { EvaluationRecord, readRun } from './records';
import { TENSORBOARD_FILE, tensorboardEvents } from './tensorboard';

/** The report of the finished run in `dir`, with the run in `compare` overlaid on its curves when given. */
export async function runReport(dir: string, compare?: string): Promise<string> {
  const runs = [readRun(resolve(dir), `run ${dir}`), ...(compare === undefined ? [] : [readRun(resolve(compare), `compare ${compare}`)])];
  const title = `ingraph run ${basename(runs[0].dir)}: ${runs[0].manifest.model} net${runs[1] ? `, compared with ${basename(runs[1].dir)}` : ''}`;
  const evaluation = { ...runs[0].evaluation, model: join(basename(runs[0].dir), runs[0].evaluation.model) };
  return renderReport({ title, runs, evaluation });
}

/** The report of one model's evaluation, with `facts` (label, value) about the model and how it was scored. */
export function evaluationReport(evaluation: EvaluationRecord, facts: readonly (readonly [string, string])[]): Promise<string> {
  return renderReport({ title: `ingraph evaluation: ${basename(evaluation.model)}`, runs: [], evaluation, facts });
}

/**
 * Writes the metrics of the finished run in `dir` as a TensorBoard event file in `logDir/<run directory name>/` (one
 * run per subdirectory, as TensorBoard lists them; a second export of the same run replaces its file). Returns its path.
 */
export function writeTensorboard(dir: string, logDir: string): string {
  const run = readRun(resolve(dir), `run ${dir}`);
  const target = join(resolve(logDir), basename(run.dir));
  makeDir('tensorboard', target);
  const path = join(target, TENSORBOARD_FILE);
  writeFileAtomic(path, tensorboardEvents(run.metrics, Date.parse(run.manifest.host.finishedAt) / 1000));
  return path;
}
