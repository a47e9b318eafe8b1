/** Learning-rate schedules, evaluated on the host each step and fed to the graph's `lr` input. */
export type ScheduleKind = 'constant' | 'step' | 'cosine';
export const SCHEDULES: readonly ScheduleKind[] = ['constant', 'step', 'cosine'];

/** A learning-rate schedule: constant, step (PyTorch StepLR by epochs) or cosine (annealed to 0 over the run). */
export interface Schedule {
  kind: ScheduleKind;
  /** step: multiply by gamma every stepEpochs epochs (PyTorch StepLR). */
  gamma: number;
  stepEpochs: number;
}

/** lr for global step `step` (0-based) in epoch `epoch`, of `totalSteps` in the run; cosine anneals to 0 per step. */
export function learningRate(base: number, s: Schedule, epoch: number, step: number, totalSteps: number): number {
  switch (s.kind) {
    case 'constant':
      return base;
    case 'step':
      return base * Math.pow(s.gamma, Math.floor(epoch / s.stepEpochs));
    case 'cosine':
      return 0.5 * base * (1 + Math.cos((Math.PI * step) / Math.max(totalSteps, 1)));
  }
}
