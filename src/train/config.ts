/** A training run's configuration and position: what a checkpoint records so that a run continues exactly. */
import { AugmentKind } from '../data/augment';
import { UsageError } from '../errors';
import { ADAMW_DEFAULTS, adamw } from '../optim/adamw';
import { withEma } from '../optim/ema';
import { Optimizer } from '../optim/optimizer';
import { sgd } from '../optim/sgd';
import { Schedule } from '../runtime/schedule';

/** Everything that decides a run's result (with the data and the network); recorded in every checkpoint. */
export interface TrainConfig {
  /** The network's name (a built-in one, or a custom Network's). */
  model: string;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: 'sgd' | 'adamw';
  /** SGD momentum (PyTorch semantics: v = m·v + g; p -= lr·v). */
  momentum: number;
  weightDecay: number;
  schedule: Schedule;
  /** Epochs (fractions allowed) of linear warm-up: lr·(step+1)/W over the first W steps, then the schedule. */
  warmupEpochs: number;
  /** Label smoothing of the training loss (PyTorch's CrossEntropyLoss(label_smoothing)); 0: none. */
  labelSmoothing: number;
  /** Random warps of each training image (data/augment.ts); drawn from the seed, epoch and batch. */
  augment: AugmentKind;
  /** Decay of an exponential moving average of the weights (optim/ema.ts), evaluated and exported; null: none. */
  ema: number | null;
  /** Seeds the initial weights and the batch order. */
  seed: number;
  shuffle: boolean;
  /** Stop after this many steps in all (then export as at the end of a run). */
  maxSteps: number | null;
  /** Parameters named by these prefixes are not trained. */
  freeze: string[];
  /** Use only the first N training / test images (quick tries and tests). */
  trainLimit: number | null;
  testLimit: number | null;
  /** Batches per logged mean loss. */
  logEvery: number;
}

/** The seed's recipe: 2 epochs, batch 64, SGD lr 0.01 momentum 0.5, shuffled, loss logged every 300 batches. */
export function trainConfig(model: string, overrides: Partial<Omit<TrainConfig, 'model'>> = {}): TrainConfig {
  const optimizer = overrides.optimizer ?? 'sgd';
  return {
    model,
    epochs: 2,
    batchSize: 64,
    lr: optimizer === 'sgd' ? 0.01 : 0.001,
    optimizer,
    momentum: 0.5,
    weightDecay: optimizer === 'sgd' ? 0 : ADAMW_DEFAULTS.weightDecay,
    schedule: { kind: 'constant', gamma: 0.1, stepEpochs: 1 },
    warmupEpochs: 0,
    labelSmoothing: 0,
    augment: 'none',
    ema: null,
    seed: 0,
    shuffle: true,
    maxSteps: null,
    freeze: [],
    trainLimit: null,
    testLimit: null,
    logEvery: 300,
    ...overrides,
  };
}

/** Where a run stands: enough, with the config, to continue it exactly. */
export interface Position {
  step: number;
  epoch: number;
  /** Next batch within the epoch. */
  batch: number;
  running: { loss: number; count: number };
  epochSums: { loss: number; correct: number; seen: number };
}

export function startOfEpoch(step: number, epoch: number): Position {
  return { step, epoch, batch: 0, running: { loss: 0, count: 0 }, epochSums: { loss: 0, correct: 0, seen: 0 } };
}

/** An epoch's results; deterministic for a given seed, so checkpoints stay byte-identical across runs. */
export interface EpochResult {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
}

/** A logged mean training loss and the learning rate of the step that ended it; recorded in checkpoints. */
export interface LogEntry {
  step: number;
  /** 1-based, as the seed's log lines count epochs. */
  epoch: number;
  /** Batches done in the epoch. */
  batch: number;
  /** Mean loss of the steps since the previous entry. */
  loss: number;
  lr: number;
}

export function makeOptimizer(c: TrainConfig): Optimizer {
  const o =
    c.optimizer === 'sgd'
      ? sgd({ momentum: c.momentum, weightDecay: c.weightDecay })
      : adamw({ ...ADAMW_DEFAULTS, weightDecay: c.weightDecay });
  return c.ema === null ? o : withEma(o, c.ema);
}

/** A frozen-prefix matcher; each prefix must name at least one parameter. */
export function frozenMatcher(prefixes: readonly string[], names: readonly string[]): (name: string) => boolean {
  const matches = (p: string, n: string) => n === p || n.startsWith(p.endsWith('.') ? p : `${p}.`);
  for (const p of prefixes) {
    if (!names.some((n) => matches(p, n)))
      throw new UsageError(`freeze ${p}: matches no parameter (names look like ${names[0]})`);
  }
  return (n) => prefixes.some((p) => matches(p, n));
}
