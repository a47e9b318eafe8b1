/** SGD with momentum and weight decay, PyTorch semantics: g += wd·p; v = m·v + g; p -= lr·v. */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';
import { OPTIM_PREFIX, Optimizer, StateSpec } from './optimizer';

/** Momentum and weight decay of SGD. */
export interface SgdOptions {
  momentum: number;
  weightDecay: number;
}

/** SGD with momentum as PyTorch computes it, as graph ops. */
export function sgd(o: SgdOptions): Optimizer {
  const bufName = (p: string) => `${OPTIM_PREFIX}momentum_buffer.${p}`;
  return {
    kind: 'sgd',
    globalState: () => [],
    // PyTorch starts the buffer at the first gradient; with dampening 0 that equals starting it at zero.
    paramState: (param: string, shape: number[]): StateSpec[] =>
      o.momentum !== 0 ? [{ name: bufName(param), shape }] : [],
    updateGlobal: (_g, global) => global,
    update(g: GraphBuilder, lr: Tensor, name: string, p: Tensor, grad: Tensor, state: Map<string, Tensor>) {
      let d = o.weightDecay !== 0 ? g.add(grad, g.mul(p, g.scalar(o.weightDecay))) : grad;
      const next = new Map<string, Tensor>();
      if (o.momentum !== 0) {
        const buf = g.add(g.mul(state.get(bufName(name)) as Tensor, g.scalar(o.momentum)), d);
        next.set(bufName(name), buf);
        d = buf;
      }
      return { param: g.sub(p, g.mul(d, lr)), state: next };
    },
  };
}
