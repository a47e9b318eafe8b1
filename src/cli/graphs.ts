import { join } from 'path';
import {
  buildEvalModel,
  buildFlatTrainingModel,
  buildInferenceModel,
  buildLoopTrainingModel,
  buildTrainingModel,
} from '../artifacts/graphs';
import { makeDir, writeFileAtomic } from '../artifacts/files';
import { NETWORKS, NetworkName, createNet } from '../models';
import { initParams } from '../models/module';
import { sgd } from '../optim/sgd';
import { gradientsFor } from '../runtime/steps';
import { parse } from './args';
import { checkWritableDir } from './output';

export const GRAPHS_HELP = `usage: ingraph graphs [--out DIR]

Writes the emitted graphs of both networks to DIR (default graphs/):
  <net>.inference.onnx  exported inference model with seed-0 initial weights
  <net>.training.onnx   one SGD-momentum training step (the seed's recipe), parameters as inputs
  <net>.training-cuda.onnx   the same step with the gradient formulations graphs for CUDA take
  <net>.training-flat.onnx   the same step over one flat tensor of parameters (and of optimizer state)
  <net>.training-loop.onnx   several flat steps per run: a Loop over stacked batches
  <net>.eval.onnx       forward pass and loss, parameters as inputs
Emission is deterministic: the same bytes every time.`;

export function graphsCommand(argv: string[]): number {
  const { values } = parse('graphs', argv, { out: { type: 'string' } });
  if (values.help) return (void console.log(GRAPHS_HELP), 0);
  const out = (values.out as string | undefined) ?? 'graphs';
  checkWritableDir('--out', out);
  makeDir('--out', out);
  for (const model of Object.keys(NETWORKS) as NetworkName[]) {
    const params = initParams(createNet(model).parameters(), 0);
    const seedRecipe = () => sgd({ momentum: 0.5, weightDecay: 0 });
    const files: [string, Uint8Array][] = [
      [`${model}.inference.onnx`, buildInferenceModel(model, params, { 'ingraph.weights': 'initial (seed 0)' })],
      [`${model}.training.onnx`, buildTrainingModel(model, seedRecipe()).bytes],
      [
        `${model}.training-cuda.onnx`,
        buildTrainingModel(model, seedRecipe(), { gradients: gradientsFor('cuda') }).bytes,
      ],
      [`${model}.training-flat.onnx`, buildFlatTrainingModel(model, seedRecipe()).bytes],
      [`${model}.training-loop.onnx`, buildLoopTrainingModel(model, seedRecipe()).bytes],
      [`${model}.eval.onnx`, buildEvalModel(model)],
    ];
    for (const [name, bytes] of files) {
      writeFileAtomic(join(out, name), bytes);
      console.log(`${join(out, name)}  ${bytes.length} bytes`);
    }
  }
  return 0;
}
