/** The optimizer a run's configuration names: the one place that turns its optimizer options into an Optimizer. */
import { ADAMW_DEFAULTS, adamw } from './adamw';
import { withEma } from './ema';
import { Optimizer } from './optimizer';
import { sgd } from './sgd';

/** The optimizer options of a run (a TrainConfig has them all). */
export interface OptimizerConfig {
  optimizer: 'sgd' | 'adamw';
  /** SGD's momentum; AdamW ignores it. */
  momentum: number;
  weightDecay: number;
  /** Decay of an exponential moving average of the weights kept as optimizer state; null: none. */
  ema: number | null;
}

/** The optimizer of `c`: SGD (PyTorch semantics) or AdamW (PyTorch's betas and eps), with its EMA where it has one. */
export function optimizerFor(c: OptimizerConfig): Optimizer {
  const inner =
    c.optimizer === 'sgd'
      ? sgd({ momentum: c.momentum, weightDecay: c.weightDecay })
      : adamw({ ...ADAMW_DEFAULTS, weightDecay: c.weightDecay });
  return c.ema === null ? inner : withEma(inner, c.ema);
}
