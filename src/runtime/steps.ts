/** Which runner a training uses: data-parallel workers on a CPU with several cores, else one session. */
import { availableParallelism } from 'os';
import { TrainingPlan } from '../plan';
import { GradientOptions } from '../autodiff/gradients';
import { Params } from '../models/module';
import { ParallelTrainingStep } from './parallel-step';
import { choosesCpu, EpChoice } from './session';
import { StepRunner, TrainingStep } from './step';

/** Provider, cores and the largest batch of a training. */
export interface StepsOptions {
  ep?: EpChoice;
  /** Cores (default: all): on the CPU, N > 1 workers share each batch; on CUDA, intra-op threads. */
  threads?: number;
  maxBatch: number;
  /**
   * One-session steps run the flat graph (fewer inputs, outputs and kernels; on this project's CPU as fast as the
   * per-tensor graph, within noise); default false until it is measured on CUDA, where it is meant to pay.
   */
  flat?: boolean;
}

/**
 * The formulations for graphs that run on WebGPU (the browser page): the max-pool gradient by masks and the composed
 * log-softmax, since WebGPU has no kernel for MaxUnpool, for MaxPool's Indices output or for LogSoftmax. The same
 * arithmetic as the CPU's graphs (test/train-parity.test.ts runs them against PyTorch on the CPU provider).
 */
export const WEBGPU_GRADIENTS: GradientOptions = { maxPoolGradient: 'masks', composedLogSoftmax: true };

/**
 * The gradient formulations for graphs that run on `ep`: the defaults (the CPU's fastest) where it chooses the CPU;
 * elsewhere only ops the CUDA provider implements (max-pool gradients by `scatter`: MaxUnpool is CPU only).
 */
export function gradientsFor(ep: EpChoice): GradientOptions {
  if (ep === 'webgpu') return WEBGPU_GRADIENTS;
  return choosesCpu(ep) ? {} : { maxPoolGradient: 'scatter' };
}

/**
 * Opens the training steps of `plan`: on the CPU with more than one core, `threads` (default all) workers running
 * the gradient graph of `plan.sharded(threads)` on a share of each batch each; otherwise, and for networks with
 * BatchNorm statistics, one session of the per-tensor step (its intra-op threads `threads`), or of the flat one with
 * `o.flat`.
 */
export async function openTrainingSteps(
  plan: TrainingPlan,
  params: Params,
  states: Params,
  o: StepsOptions,
): Promise<StepRunner> {
  const cores = o.threads ?? availableParallelism();
  const cpu = choosesCpu(o.ep ?? 'auto');
  // BatchNorm's statistics are the whole batch's only in one session (see plan/graphs.ts, onePerTensorStep).
  const batchNorm = plan.buffers.length > 0;
  if (cores > 1 && cpu && !batchNorm) {
    return ParallelTrainingStep.open(plan.step(), plan.sharded(cores), params, states, o.maxBatch, cpu.note);
  }
  const graph = o.flat && !batchNorm ? plan.flat() : plan.step();
  return TrainingStep.open(graph, params, states, { ep: o.ep, threads: o.threads });
}
