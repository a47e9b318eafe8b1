import { join } from 'path';
import { makeDir, writeFileAtomic } from '../io/files';
import { NETWORKS, NetworkName } from '../models';
import { trainConfig } from '../config';
import { TrainingPlan } from '../plan';
import { METADATA } from '../metadata';
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
  makeDir('out', out);
  for (const model of Object.keys(NETWORKS) as NetworkName[]) {
    // The seed's recipe, as `ingraph train` plans it on the CPU and on CUDA.
    const recipe = trainConfig(model);
    const plan = new TrainingPlan({ network: model, optimizer: recipe });
    const cuda = new TrainingPlan({ network: model, optimizer: recipe, gradients: gradientsFor('cuda') });
    const files: [string, Uint8Array][] = [
      [`${model}.inference.onnx`, plan.inference(plan.initialParams(0), { [METADATA.weights]: 'initial (seed 0)' })],
      [`${model}.training.onnx`, plan.step().bytes],
      [`${model}.training-cuda.onnx`, cuda.step().bytes],
      [`${model}.training-flat.onnx`, plan.flat().bytes],
      [`${model}.training-loop.onnx`, plan.loop().bytes],
      [`${model}.eval.onnx`, plan.eval()],
    ];
    for (const [name, bytes] of files) {
      writeFileAtomic(join(out, name), bytes);
      console.log(`${join(out, name)}  ${bytes.length} bytes`);
    }
  }
  return 0;
}
