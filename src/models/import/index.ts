/**
 * A network imported from an ONNX classifier (a PyTorch export): its float initializers are the parameters (named as
 * PyTorch's state_dict keys), its one float image input [N,C,H,W] takes the normalised images, and its one [N,K]
 * output is the logits (graph.ts). Its nodes are replayed onto the GraphBuilder op by op (replay.ts, ops.ts), so
 * training graphs, gradients and exports treat it as they treat the built-in nets; values known at import time
 * (constants, and shapes with the batch as a symbol, as in PyTorch's `x.view(x.size(0), -1)`) are folded.
 * BatchNorm and Dropout train as PyTorch's `model.train()` and evaluate as `model.eval()` (docs/import.md).
 */
import { defineNetwork, Network } from '../index';
import { ImportedGraph } from './graph';
import { ImportedModule } from './replay';

export { importGraph, SUPPORTED_OPS_DOC, trainability } from './graph';
export { RANDOM_STATE } from './ops';
export type { ImportedGraph, Trainability } from './graph';
export { ImportedModule, replayNodes } from './replay';
export type { KnownInput } from './replay';

/**
 * The network of an imported file, named `name`: it takes only the file's image shape and class count, and starts
 * from the file's weights (`imported.weights`).
 */
export function importedNetwork(graph: ImportedGraph, name: string): Network {
  const { input, classes } = graph.shape;
  return { ...defineNetwork(name, () => new ImportedModule(graph), { input, classes }), imported: graph };
}
