/**
 * AdamW, PyTorch semantics and defaults (betas 0.9/0.999, eps 1e-8, weight decay 0.01):
 * p *= 1 - lr·wd; m = b1·m + (1-b1)·g; v = b2·v + (1-b2)·g²; p -= lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * The scalar factors are computed in float64 and rounded to float32 once, as PyTorch does with Python floats: in
 * float32, 1 - 0.999^t alone is off by 1.3e-5 (relative) at t = 1.
 */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';
import { OPTIM_PREFIX, Optimizer, StateSpec } from './optimizer';

/** AdamW's betas, epsilon and decoupled weight decay. */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** PyTorch's defaults. */
export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

const STEP = `${OPTIM_PREFIX}step`;

/** AdamW as PyTorch computes it, as graph ops; state: exp_avg, exp_avg_sq per parameter and the step count. */
export function adamw(o: AdamWOptions): Optimizer {
  const mName = (p: string) => `${OPTIM_PREFIX}exp_avg.${p}`;
  const vName = (p: string) => `${OPTIM_PREFIX}exp_avg_sq.${p}`;
  return {
    kind: 'adamw',
    globalState: (): StateSpec[] => [{ name: STEP, shape: [] }],
    paramState: (param: string, shape: number[]): StateSpec[] => [
      { name: mName(param), shape },
      { name: vName(param), shape },
    ],
    updateGlobal: (g: GraphBuilder, global: Map<string, Tensor>) =>
      new Map([[STEP, g.add(global.get(STEP) as Tensor, g.scalar(1))]]),
    update(
      g: GraphBuilder,
      lr: Tensor,
      name: string,
      p: Tensor,
      grad: Tensor,
      state: Map<string, Tensor>,
      global: Map<string, Tensor>,
    ) {
      const f = scalarFactors(g, o, lr, global.get(STEP) as Tensor);
      const decayed = f.decay ? g.mul(p, f.decay) : p;
      const m = g.add(g.mul(state.get(mName(name)) as Tensor, g.scalar(o.beta1)), g.mul(grad, g.scalar(1 - o.beta1)));
      const v = g.add(
        g.mul(state.get(vName(name)) as Tensor, g.scalar(o.beta2)),
        g.mul(g.mul(grad, grad), g.scalar(1 - o.beta2)),
      );
      const denom = g.add(g.div(g.sqrt(v), f.sqrtBc2), g.scalar(o.eps));
      const param = g.sub(decayed, g.mul(f.stepSize, g.div(m, denom)));
      return {
        param,
        state: new Map([
          [mName(name), m],
          [vName(name), v],
        ]),
      };
    },
  };
}

/**
 * 1 - lr·wd (null without weight decay), lr/(1-b1^t) and sqrt(1-b2^t), computed in float64 and rounded to float32
 * (built once: shared nodes).
 */
function scalarFactors(
  g: GraphBuilder,
  o: AdamWOptions,
  lr: Tensor,
  step: Tensor,
): { decay: Tensor | null; stepSize: Tensor; sqrtBc2: Tensor } {
  const d = (x: number) => g.constant([x], [], 'float64');
  const [lr64, t] = [g.cast(lr, 'float64'), g.cast(step, 'float64')];
  const bc1 = g.sub(d(1), g.pow(d(o.beta1), t));
  const bc2 = g.sub(d(1), g.pow(d(o.beta2), t));
  return {
    decay: o.weightDecay !== 0 ? g.cast(g.sub(d(1), g.mul(lr64, d(o.weightDecay))), 'float32') : null,
    stepSize: g.cast(g.div(lr64, bc1), 'float32'),
    sqrtBc2: g.cast(g.sqrt(bc2), 'float32'),
  };
}
