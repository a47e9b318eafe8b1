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
export const TEST_IMAGES_KEY = 'ingraph.test_images';

export interface PromotionPlan {
  target: string;
  tolerance: number;
}

interface Deployed {
  accuracy: number;
  /** How many test images the accuracy was measured on, where recorded. */
  testImages: number | null;
}

/** Validates the target before a run starts: an existing model there must record its test accuracy. */
export function deployedModel(target: string): Deployed | null {
  if (!existsSync(target)) return null;
  const m = parseModel(readFileSync(target), `--promote-to ${target}`);
  const acc = Number(m.metadata[ACCURACY_KEY]);
  if (m.metadata[ACCURACY_KEY] === undefined || !Number.isFinite(acc)) {
    throw new UsageError(`--promote-to ${target}: the model there records no test accuracy (${ACCURACY_KEY}); cannot compare`);
  }
  const images = Number(m.metadata[TEST_IMAGES_KEY]);
  return { accuracy: acc, testImages: Number.isInteger(images) && images > 0 ? images : null };
}

export interface PromotionResult {
  promoted: boolean;
  accuracy: number;
  previousAccuracy: number | null;
}

/** Promotes `model` (scored `accuracy` on `testImages` test images) over the deployed one, or refuses (exit 4). */
export function promote(plan: PromotionPlan, candidate: string, model: Uint8Array, accuracy: number, testImages: number): PromotionResult {
  const deployed = deployedModel(plan.target);
  // Accuracies on different test sets (another --test-limit) do not compare: refuse rather than guess.
  const comparable = !deployed || deployed.testImages === null || deployed.testImages === testImages;
  const promoted = !deployed || (comparable && accuracy >= deployed.accuracy - plan.tolerance);
  if (promoted) writeFileAtomic(plan.target, model);
  const record = {
    time: new Date().toISOString(),
    decision: promoted ? 'promoted' : 'refused',
    target: plan.target,
    candidate,
    accuracy,
    testImages,
    previousAccuracy: deployed?.accuracy ?? null,
    previousTestImages: deployed?.testImages ?? null,
    tolerance: plan.tolerance,
    sha256: sha256(model),
  };
  const history = join(dirname(plan.target), 'history.jsonl');
  appendFileSync(history, `${JSON.stringify(record)}\n`);
  const fd = openSync(history, 'r');
  fsyncSync(fd);
  closeSync(fd);
  if (deployed && !promoted) {
    const pct = (a: number) => `${(100 * a).toFixed(2)}%`;
    throw new PromotionRefusedError(comparable
      ? `--promote-to ${plan.target}: kept the deployed model: new test accuracy ${pct(accuracy)} is below its ${pct(deployed.accuracy)}${plan.tolerance ? ` minus tolerance ${pct(plan.tolerance)}` : ''}`
      : `--promote-to ${plan.target}: kept the deployed model: it was scored on ${deployed.testImages} test images, the new one on ${testImages}; the accuracies (${pct(deployed.accuracy)}, ${pct(accuracy)}) do not compare`);
  }
  return { promoted, accuracy, previousAccuracy: deployed?.accuracy ?? null };
}
