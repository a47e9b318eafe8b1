/** Learning-rate schedules, evaluated on the host each step and fed to the graph's `lr` input. */
import { Schedule } from '../options';

export type { Schedule, ScheduleKind } from '../options';
export { SCHEDULES } from '../options';

/**
 * lr for global step `step` (0-based) in epoch `epoch`, of `totalSteps` in the run. The first `warmupSteps` steps
 * ramp linearly, lr·(step+1)/W (PyTorch's LinearLR from 1/W); cosine then anneals to 0 over the remaining steps
 * (CosineAnnealingLR after the warm-up, as SequentialLR chains them); constant and step are scaled by the ramp.
 */
export function learningRate(
  base: number,
  s: Schedule,
  epoch: number,
  step: number,
  totalSteps: number,
  warmupSteps = 0,
): number {
  const ramp = step < warmupSteps ? (step + 1) / warmupSteps : 1;
  switch (s.kind) {
    case 'constant':
      return base * ramp;
    case 'step':
      return base * ramp * Math.pow(s.gamma, Math.floor(epoch / s.stepEpochs));
    case 'cosine':
      if (step < warmupSteps) return base * ramp;
      return 0.5 * base * (1 + Math.cos((Math.PI * (step - warmupSteps)) / Math.max(totalSteps - warmupSteps, 1)));
  }
}
