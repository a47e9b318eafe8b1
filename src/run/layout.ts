/**
 * The layout of a run directory: the name of every file a run writes, what two runs share bit for bit, and how to
 * tell a directory that holds a run. The one place that spells a run's file names.
 */
import { existsSync } from 'fs';
import { join } from 'path';

/** The files a run writes into its directory. */
export const ARTIFACTS = {
  training: 'training_model.onnx',
  eval: 'eval_model.onnx',
  checkpoint: 'checkpoint.onnx',
  inference: 'inference.onnx',
  int8: 'inference.int8.onnx',
  metrics: 'metrics.json',
  evaluation: 'evaluation.json',
  manifest: 'manifest.json',
  report: 'report.html',
} as const;

/** What two runs with the same inputs share, bit for bit; written into every manifest. */
export const REPRODUCIBILITY = {
  identical: [
    ARTIFACTS.training,
    ARTIFACTS.eval,
    ARTIFACTS.checkpoint,
    ARTIFACTS.inference,
    ARTIFACTS.metrics,
    ARTIFACTS.evaluation,
  ],
  given:
    'the same ingraph and onnxruntime versions, seed, data, options and thread count, on the CPU execution provider',
  notCovered:
    'runs with different thread counts (the batch splits into other shards, sums round differently), on CUDA (non-deterministic kernels), or with threads unset (all cores) on machines with different core counts; manifest.json and report.html themselves (host, times, speeds)',
};

/** The files of an earlier run; a run that does not resume refuses a directory holding them. */
export function existingRun(out: string): string | null {
  const found = [ARTIFACTS.checkpoint, ARTIFACTS.manifest].find((f) => existsSync(join(out, f)));
  return found ? join(out, found) : null;
}
