import { join, resolve } from 'path';
import { writeFileAtomic } from '../io/files';
import { runReport, writeTensorboard } from '../report';
import { readRun } from '../run/records';
import { ARTIFACTS } from '../run/layout';
import { UsageError } from '../errors';
import { parse } from './args';
import { checkWritableDir, checkWritableFile } from './output';

export const REPORT_HELP = `usage: ingraph report RUN_DIR [--compare RUN_DIR] [--out FILE] [--tensorboard DIR]

Writes one self-contained HTML file (no network needed to view it) about a finished training run: training loss
and learning rate per logged step, accuracy per epoch, the confusion matrix as a heatmap, accuracy per class, the
most confident misclassified test digits, and the run's configuration, speed, execution provider and file hashes.
Every file it reads is checked against the run's manifest. \`ingraph train\` writes this report as report.html.
  --compare DIR   overlay the curves of a second run (e.g. the run of the deployed model)
  --out FILE      where to write (default RUN_DIR/report.html)
  --tensorboard DIR  also write the run's metrics as a TensorBoard event file in DIR/<run name>/
                  (then: tensorboard --logdir DIR)`;

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'report',
    argv,
    { compare: { type: 'string' }, out: { type: 'string' }, tensorboard: { type: 'string' } },
    1,
  );
  if (values.help) return (void console.log(REPORT_HELP), 0);
  const [dir] = positionals;
  if (dir === undefined)
    throw new UsageError('ingraph report: RUN_DIR is required (a directory written by ingraph train)');
  const run = readRun(resolve(dir), `run ${dir}`);
  const html = await runReport(run, values.compare as string | undefined);
  const out = checkWritableFile('--out', (values.out as string | undefined) ?? join(dir, ARTIFACTS.report));
  const tensorboard = values.tensorboard as string | undefined;
  // The event file first: its directory is made then, and where that fails nothing else is written either.
  if (tensorboard !== undefined) {
    checkWritableDir('--tensorboard', tensorboard);
    console.log(`wrote ${writeTensorboard(run, tensorboard)}`);
  }
  writeFileAtomic(out, html);
  console.log(`wrote ${out}`);
  return 0;
}
