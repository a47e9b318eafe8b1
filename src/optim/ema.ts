/**
 * An exponential moving average of the weights, kept in the training graph as optimizer state: after each update,
 * ema = d·ema + (1-d)·param, for every trained parameter (timm's ModelEmaV2 rule). It starts as a copy of the
 * initial weights (`emaStart`); the averaged weights are what a run evaluates and exports.
 */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';
import { OPTIM_PREFIX, Optimizer } from './optimizer';
import { Params } from '../models/module';

/** The state tensor holding the average of `param`. */
export function emaName(param: string): string {
  return `${OPTIM_PREFIX}ema.${param}`;
}

/** `inner`, with the average of every parameter it updates kept as one more state tensor per parameter. */
export function withEma(inner: Optimizer, decay: number): Optimizer {
  if (!(decay > 0 && decay < 1)) throw new RangeError(`EMA decay ${decay}: must be in (0, 1)`);
  return {
    ...inner,
    paramState: (param, shape) => [...inner.paramState(param, shape), { name: emaName(param), shape }],
    update(
      g: GraphBuilder,
      lr: Tensor,
      name: string,
      p: Tensor,
      grad: Tensor,
      state: Map<string, Tensor>,
      global: Map<string, Tensor>,
    ) {
      const step = inner.update(g, lr, name, p, grad, state, global);
      const ema = state.get(emaName(name)) as Tensor;
      const next = new Map(step.state).set(
        emaName(name),
        g.add(g.mul(ema, g.scalar(decay)), g.mul(step.param, g.scalar(1 - decay))),
      );
      return { param: step.param, state: next };
    },
  };
}

/** The averages' starting values: copies of the `trainable` parameters. */
export function emaStart(params: Params, trainable: readonly string[]): Params {
  return new Map(trainable.map((name) => [emaName(name), Float32Array.from(params.get(name) as Float32Array)]));
}

/** `params` with each trainable parameter replaced by its average from `states`. */
export function averagedParams(params: Params, states: Params, trainable: readonly string[]): Params {
  const out = new Map(params);
  for (const name of trainable) out.set(name, states.get(emaName(name)) as Float32Array);
  return out;
}
