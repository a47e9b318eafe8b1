/** Observers of a Trainer's `fit`: the seed's progress log, and checkpoints. Each is small and usable alone. */
import { EpochEvent, StepEvent, Trainer, TrainObserver } from './trainer';

/** Where progress is told: human lines, machine-readable events and a progress bar. */
export interface Reporter {
  /** A human line. */
  line(text: string): void;
  /** A machine-readable event (the CLI's JSON lines). */
  event(e: Record<string, unknown>): void;
  /** Progress within an epoch, for a TTY progress bar. */
  progress(epoch: number, batch: number, batches: number, loss: number): void;
  /** Images decoded so far while a split of an image folder loads, for a TTY progress bar. */
  loading?(split: 'train' | 'test', done: number, total: number): void;
}

/**
 * Logs as the seed does: `[epoch, batch] loss: x.xxx` every `config.logEvery` batches and the test accuracy after each
 * epoch, with a `log` and an `epoch` event alongside.
 */
export function progressLog(report: Reporter): TrainObserver {
  return {
    onStep(_: Trainer, e: StepEvent) {
      report.progress(e.epoch, e.batch, e.batchesPerEpoch, e.loss);
      if (e.logged === null) return;
      report.line(`[${e.epoch + 1}, ${String(e.batch).padStart(5)}] loss: ${e.logged.toFixed(3)}`);
      report.event({ type: 'log', epoch: e.epoch + 1, batch: e.batch, step: e.step, loss: e.logged, lr: e.lr });
    },
    onEpoch(_: Trainer, e: EpochEvent) {
      report.line(
        `accuracy on test set: ${(100 * e.testAccuracy).toFixed(2)} % (epoch ${e.epoch}${e.imagesPerSecond === null ? '' : `, ${Math.round(e.imagesPerSecond)} images/s`})`,
      );
      report.event({ type: 'epoch', ...e });
    },
  };
}

/**
 * Writes a checkpoint every `every` steps (when given), after each epoch and when `fit` stops on a signal, through
 * `write`, then calls `alongside` (files that follow each checkpoint); a state already written is not written again.
 */
export class Checkpointer implements TrainObserver {
  private written = '';

  /** `step` is that of the checkpoint already on disk, if any. */
  constructor(
    private readonly write: (checkpoint: Uint8Array) => void,
    private readonly every: number | null,
    public step: number | null = null,
    private readonly alongside: (t: Trainer) => void = () => {},
  ) {}

  /** Writes the trainer's state now, unless this very state was the last one written. */
  save(t: Trainer): void {
    const s = t.checkpointState();
    const state = JSON.stringify(s.position) + JSON.stringify(s.epochs);
    if (state === this.written) return;
    this.write(t.checkpoint());
    this.written = state;
    this.step = s.position.step;
    this.alongside(t);
  }

  onStep(t: Trainer, e: StepEvent): void {
    if (this.every && e.step % this.every === 0) this.save(t);
  }

  onEpoch(t: Trainer): void {
    this.save(t);
  }

  onStop(t: Trainer): void {
    this.save(t);
  }
}
