/**
 * `--promote-to PATH`: replace the deployed model at PATH with a run's inference model only if it scores at least as
 * well (minus a tolerance), atomically; record every decision in history.jsonl beside PATH.
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'fs';
import { dirname, join } from 'path';
import { PromotionRefusedError, UsageError } from '../errors';
import { sha256, writeFileAtomic } from '../artifacts/files';
import { parseModel } from '../onnx/model';

export const ACCURACY_KEY = 'ingraph.test_accuracy';

export interface PromotionPlan {
  target: string;
  tolerance: number;
}

/** Validates the target before a run starts: an existing model there must record its test accuracy. */
export function currentAccuracy(target: string): number | null {
  if (!existsSync(target)) return null;
  const m = parseModel(readFileSync(target), `--promote-to ${target}`);
  const acc = Number(m.metadata[ACCURACY_KEY]);
  if (m.metadata[ACCURACY_KEY] === undefined || !Number.isFinite(acc)) {
    throw new UsageError(`--promote-to ${target}: the model there records no test accuracy (${ACCURACY_KEY}); cannot compare`);
  }
  return acc;
}

export interface PromotionResult {
  promoted: boolean;
  accuracy: number;
  previousAccuracy: number | null;
}

export function promote(plan: PromotionPlan, candidate: string, model: Uint8Array, accuracy: number): PromotionResult {
  const previous = currentAccuracy(plan.target);
  const promoted = previous === null || accuracy >= previous - plan.tolerance;
  if (promoted) writeFileAtomic(plan.target, model);
  const record = {
    time: new Date().toISOString(),
    decision: promoted ? 'promoted' : 'refused',
    target: plan.target,
    candidate,
    accuracy,
    previousAccuracy: previous,
    tolerance: plan.tolerance,
    sha256: sha256(model),
  };
  const history = join(dirname(plan.target), 'history.jsonl');
  appendFileSync(history, `${JSON.stringify(record)}\n`);
  const fd = openSync(history, 'r');
  fsyncSync(fd);
  closeSync(fd);
  if (!promoted) {
    const pct = (a: number) => `${(100 * a).toFixed(2)}%`;
    throw new PromotionRefusedError(`--promote-to ${plan.target}: kept the deployed model: new test accuracy ${pct(accuracy)} is below its ${pct(previous as number)}${plan.tolerance ? ` minus tolerance ${pct(plan.tolerance)}` : ''}`);
  }
  return { promoted, accuracy, previousAccuracy: previous };
}
