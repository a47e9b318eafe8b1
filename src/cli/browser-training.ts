/**
 * What the page's "train in the browser" panel needs from `ingraph serve`: the residual net's training step (the
 * seed's recipe, the same graph `train` writes as training_model.onnx) and its WebGPU form (WEBGPU_GRADIENTS: the
 * same arithmetic in ops WebGPU has), its tensor layout and initial weights, MNIST batches, and an export of the
 * weights the browser trained. Everything through the public API.
 */
import { IncomingMessage } from 'http';
import {
  METADATA,
  NETWORKS,
  TrainingPlan,
  WEBGPU_GRADIENTS,
  countParams,
  defaultMnistDir,
  readDataset,
  trainConfig,
} from '../index';
import { numel } from '../onnx/tensor';

/** The seed's recipe for the residual net: what `ingraph train --model residual` does with no flags. */
const RECIPE = trainConfig(NETWORKS.residual.name);
let planned: TrainingPlan | null = null;
const plan = () => (planned ??= new TrainingPlan({ network: NETWORKS.residual, optimizer: RECIPE }));
const TRAIN_IMAGES = 2048;
const TEST_IMAGES = 500;

/** Images then labels, as one buffer. */
function split(which: 'train' | 'test', count: number): Buffer {
  const d = readDataset(defaultMnistDir(), which, count);
  return Buffer.concat([Buffer.from(d.images), Buffer.from(d.labels)]);
}

/**
 * The training step in WebGPU's ops: float32 pixels (0..255) and one-hot float32 labels [N,10] in, otherwise the
 * per-tensor step's inputs and outputs (spec.json).
 */
function webGpuStep(): Uint8Array {
  const o = { network: NETWORKS.residual, optimizer: RECIPE, gradients: WEBGPU_GRADIENTS, floatInputs: true };
  return new TrainingPlan(o).step().bytes;
}

/** The fixed files of the panel, by request path. */
export function trainingFiles(): Map<string, Buffer | string> {
  const recipe = RECIPE;
  const graph = plan().step();
  const init = plan().initialParams(recipe.seed);
  const spec = {
    network: recipe.model,
    batch: recipe.batchSize,
    lr: recipe.lr,
    trainImages: TRAIN_IMAGES,
    testImages: TEST_IMAGES,
    params: graph.params.map((p) => ({ name: p.name, shape: p.shape })),
    states: graph.states.map((s) => ({ name: s.name, shape: s.shape })),
  };
  return new Map<string, Buffer | string>([
    ['/train/model.onnx', Buffer.from(graph.bytes)],
    ['/train/model-webgpu.onnx', Buffer.from(webGpuStep())],
    ['/train/spec.json', JSON.stringify(spec)],
    ['/train/init.bin', Buffer.concat(graph.params.map((p) => Buffer.from((init.get(p.name) as Float32Array).buffer)))],
    ['/train/train.bin', split('train', TRAIN_IMAGES)],
    ['/train/test.bin', split('test', TEST_IMAGES)],
  ]);
}

/** POST /train/export: float32 weights in spec order (exactly that many bytes) → the inference model; else null. */
export async function exportTrained(req: IncomingMessage): Promise<Uint8Array | null> {
  const specs = plan().params;
  const expected = 4 * countParams(specs);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > expected) return null;
    chunks.push(chunk as Buffer);
  }
  if (size !== expected) return null;
  const all = Buffer.concat(chunks);
  const weights = new Float32Array(all.buffer.slice(all.byteOffset, all.byteOffset + all.length));
  let offset = 0;
  const params = new Map(
    specs.map((s) => {
      const n = numel(s.shape);
      const t = weights.subarray(offset, offset + n);
      offset += n;
      return [s.name, t];
    }),
  );
  return plan().inference(params, { [METADATA.weights]: 'trained in the browser (ingraph serve)' });
}
