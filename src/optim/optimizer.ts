/**
 * Optimizer updates appended to the training graph. Each optimizer names its state tensors (under the `optim.`
 * prefix, so a checkpoint keeps them apart from the parameters) and emits the update of one parameter.
 */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';

export interface StateSpec {
  name: string;
  shape: number[];
}

/** An optimizer appended to the training graph: its state tensors and the update of each parameter. */
export interface Optimizer {
  readonly kind: 'sgd' | 'adamw';
  /** State shared by all parameters (AdamW's step count). */
  globalState(): StateSpec[];
  paramState(param: string, shape: number[]): StateSpec[];
  /**
   * Emits the update of parameter `name` (which names its state; the tensor `p` may be named otherwise, e.g. inside a
   * Loop); returns the new parameter and new state tensors keyed by state name. `global` holds the already-updated
   * shared state.
   */
  update(
    g: GraphBuilder,
    lr: Tensor,
    name: string,
    p: Tensor,
    grad: Tensor,
    state: Map<string, Tensor>,
    global: Map<string, Tensor>,
  ): { param: Tensor; state: Map<string, Tensor> };
  /** Emits the update of the shared state, once per step, before the parameter updates. */
  updateGlobal(g: GraphBuilder, global: Map<string, Tensor>): Map<string, Tensor>;
}

export const OPTIM_PREFIX = 'optim.';
