/** Reports: a run's (optionally against a second run) and a model's evaluation, as self-contained HTML. */
import { basename, join, resolve } from 'path';
import { makeDir, writeFileAtomic } from '../io/files';
import { renderReport } from './html';
import { aboutOption } from '../errors';
import { EvaluationRecord, readRun, RunRecord } from '../run/records';
import { TENSORBOARD_FILE, tensorboardEvents } from './tensorboard';

/** A run given by its directory is read (and checked) here; one already read is taken as it is. */
function runOf(run: string | RunRecord, where: string): RunRecord {
  return typeof run === 'string' ? aboutOption(where, () => readRun(resolve(run), `${where} ${run}`)) : run;
}

/**
 * The report of a finished run (its directory, or its `readRun` record), with the run `compare` overlaid on its
 * curves when given.
 */
export async function runReport(run: string | RunRecord, compare?: string | RunRecord): Promise<string> {
  const runs = [runOf(run, 'run'), ...(compare === undefined ? [] : [runOf(compare, 'compare')])];
  const title = `ingraph run ${basename(runs[0].dir)}: ${runs[0].manifest.model} net${runs[1] ? `, compared with ${basename(runs[1].dir)}` : ''}`;
  const evaluation = { ...runs[0].evaluation, model: join(basename(runs[0].dir), runs[0].evaluation.model) };
  return renderReport({ title, runs, evaluation });
}

/** The report of one model's evaluation, with `facts` (label, value) about the model and how it was scored. */
export function evaluationReport(
  evaluation: EvaluationRecord,
  facts: readonly (readonly [string, string])[],
): Promise<string> {
  return renderReport({ title: `ingraph evaluation: ${basename(evaluation.model)}`, runs: [], evaluation, facts });
}

/**
 * Writes the metrics of a finished run (its directory, or its `readRun` record) as a TensorBoard event file in
 * `logDir/<run directory name>/` (one run per subdirectory, as TensorBoard lists them; a second export of the same run
 * replaces its file). Returns its path.
 */
export function writeTensorboard(from: string | RunRecord, logDir: string): string {
  const run = runOf(from, 'run');
  const target = join(resolve(logDir), basename(run.dir));
  makeDir('tensorboard', target);
  const path = join(target, TENSORBOARD_FILE);
  writeFileAtomic(path, tensorboardEvents(run.metrics, Date.parse(run.manifest.host.finishedAt) / 1000));
  return path;
}
