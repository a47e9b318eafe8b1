import { buildInferenceModel } from '../artifacts/graphs';
import { writeFileAtomic } from '../artifacts/files';
import { paramsFromModel, readOnnxFile } from '../artifacts/params-io';
import { UsageError } from '../errors';
import { NETWORKS, createNet, isNetworkName } from '../models';
import { initParams } from '../models/module';
import { EXPORT_OPSETS, OPSET } from '../onnx/model';
import { ACCURACY_KEY, TEST_IMAGES_KEY } from '../runtime/promote';
import { intFlag, parse, requireFlag } from './args';
import { checkWritableFile } from './output';

export const EXPORT_HELP = `usage: ingraph export --model inception|residual [--init FILE] [--seed N] [--opset N] --out FILE

Writes a standalone inference model: input "images" uint8 [N,1,28,28]; outputs "logits" [N,10],
"probabilities" [N,10] and "label" int64 [N]; preprocessing in-graph; weights as initializers.
  --init FILE   weights from an ONNX file whose initializers are named by the state_dict keys
                (an exported model or a training checkpoint); default: PyTorch's init from --seed
  --seed N      seed of the random initial weights (default 0)
  --opset N     the ONNX opset to write, 11 to 17 (default 17); older runtimes and converters want 11 to 13`;

export function exportCommand(argv: string[]): number {
  const { values } = parse('export', argv, { model: { type: 'string' }, init: { type: 'string' }, seed: { type: 'string' }, opset: { type: 'string' }, out: { type: 'string' } });
  if (values.help) return void console.log(EXPORT_HELP), 0;
  const model = requireFlag('export', '--model', values.model as string | undefined);
  if (!isNetworkName(model)) throw new UsageError(`--model ${model}: must be one of ${Object.keys(NETWORKS).join(', ')}`);
  const out = checkWritableFile('--out', requireFlag('export', '--out', values.out as string | undefined));
  const seed = intFlag('--seed', values.seed as string | undefined, 0, 0, 0xffffffff);
  const opset = intFlag('--opset', values.opset as string | undefined, OPSET, EXPORT_OPSETS[0], OPSET);
  const specs = createNet(model).parameters();
  const init = values.init as string | undefined;
  const source = init ? readOnnxFile(init, '--init') : null;
  const params = source ? paramsFromModel(source, specs, `--init ${init}`) : initParams(specs, seed);
  const origin = init ? `weights from ${init}` : `initial weights (seed ${seed})`;
  const meta: Record<string, string> = { 'ingraph.weights': origin };
  // The same weights keep the test accuracy recorded with them (an exported model's; checkpoints record none).
  for (const key of [ACCURACY_KEY, TEST_IMAGES_KEY]) if (source?.metadata[key]) meta[key] = source.metadata[key];
  writeFileAtomic(out, buildInferenceModel(model, params, meta, opset));
  console.log(`wrote ${out} (${model} net, ${origin}, opset ${opset})`);
  return 0;
}
