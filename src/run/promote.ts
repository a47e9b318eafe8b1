/**
 * Promotion (`promote-to` PATH): replace the deployed model at PATH with a run's inference model only if it scores at least as
 * well (minus a tolerance), atomically; record every decision in history.jsonl beside PATH.
 */
import { existsSync } from 'fs';
import { dirname, join } from 'path';
import { IoError, PromotionRefusedError, UsageError } from '../errors';
import { appendLine, sha256, writeFileAtomic } from '../io/files';
import { acquireLockWaiting } from '../io/lock';
import { readOnnxFile } from '../io/params-io';
import { METADATA } from '../metadata';

/** Where to promote to, and how much lower an accuracy may be and still replace the deployed one. */
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
  const m = readOnnxFile(target, 'promote-to');
  const acc = Number(m.metadata[METADATA.testAccuracy]);
  if (m.metadata[METADATA.testAccuracy] === undefined || !Number.isFinite(acc)) {
    throw new UsageError(
      `promote-to ${target}: the model there records no test accuracy (${METADATA.testAccuracy}); cannot compare`,
    ).about('promote-to');
  }
  const images = Number(m.metadata[METADATA.testImages]);
  return { accuracy: acc, testImages: Number.isInteger(images) && images > 0 ? images : null };
}

/** The promotion decision and the accuracies compared. */
export interface PromotionResult {
  promoted: boolean;
  accuracy: number;
  previousAccuracy: number | null;
}

/** How a promotion warns, and what stops its wait for the lock. */
export interface PromoteOptions {
  /** Where a warning goes (a stale promotion lock taken over). */
  warn: (text: string) => void;
  /** Stops a wait for another promotion's lock. */
  signal?: AbortSignal;
}

/** How long a promotion waits for another one to the same model to finish. */
export const PROMOTION_LOCK_TIMEOUT_MS = 60_000;

/**
 * Promotes `model` (scored `accuracy` on `testImages` test images) over the deployed one, or refuses (PromotionRefusedError). The
 * comparison, the replacement and the history line happen under the lock `TARGET.lock`, so concurrent promotions to
 * one path are serialised: exactly one complete model ends there and every decision is one whole line.
 */
export async function promote(
  plan: PromotionPlan,
  candidate: string,
  model: Uint8Array,
  accuracy: number,
  testImages: number,
  o: PromoteOptions,
): Promise<PromotionResult> {
  const lock = await acquireLockWaiting(`${plan.target}.lock`, PROMOTION_LOCK_TIMEOUT_MS, o.warn, o.signal);
  let deployed: Deployed | null;
  let promoted: boolean;
  let comparable: boolean;
  try {
    deployed = deployedModel(plan.target);
    // Accuracies on different test sets (another test limit) do not compare: refuse rather than guess.
    comparable = !deployed || deployed.testImages === null || deployed.testImages === testImages;
    promoted = !deployed || (comparable && accuracy >= deployed.accuracy - plan.tolerance);
    const hash = promoted ? writeFileAtomic(plan.target, model) : sha256(model);
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
      sha256: hash,
    };
    recordDecision(join(dirname(plan.target), 'history.jsonl'), record, promoted);
  } finally {
    lock.release();
  }
  if (deployed && !promoted) {
    const pct = (a: number) => `${(100 * a).toFixed(2)}%`;
    throw new PromotionRefusedError(
      comparable
        ? `promote-to ${plan.target}: kept the deployed model: new test accuracy ${pct(accuracy)} is below its ${pct(deployed.accuracy)}${plan.tolerance ? ` minus tolerance ${pct(plan.tolerance)}` : ''}`
        : `promote-to ${plan.target}: kept the deployed model: it was scored on ${deployed.testImages} test images, the new one on ${testImages}; the accuracies (${pct(deployed.accuracy)}, ${pct(accuracy)}) do not compare`,
    ).about('promote-to');
  }
  return { promoted, accuracy, previousAccuracy: deployed?.accuracy ?? null };
}

/** Appends the decision to history.jsonl; if that fails after a promotion, the error says the model was promoted. */
function recordDecision(history: string, record: Record<string, unknown>, promoted: boolean): void {
  try {
    appendLine(history, JSON.stringify(record));
  } catch (e) {
    if (!(e instanceof IoError) || !promoted) throw e;
    throw new IoError(
      `${e.message}; the new model was promoted to ${String(record.target)} but this decision is not in the history`,
      e.path,
      e.errno,
    );
  }
}
