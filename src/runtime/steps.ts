/** Which runner a training uses: data-parallel workers on a CPU with several cores, else one session. */
import { availableParallelism } from 'os';
import { ShardedTrainingGraphs, TrainingGraph } from '../artifacts/graphs';
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
}

/**
 * Opens the training steps of `graph`: on the CPU with more than one core, `threads` (default all) workers running
 * the gradient graph of `sharded(threads)` on a share of each batch each; otherwise one session of `graph`.
 */
export async function openTrainingSteps(graph: TrainingGraph, sharded: (shards: number) => ShardedTrainingGraphs, params: Params, states: Params, o: StepsOptions): Promise<StepRunner> {
  const cores = o.threads ?? availableParallelism();
  const cpu = choosesCpu(o.ep ?? 'auto');
  if (cores > 1 && cpu) return ParallelTrainingStep.open(graph, sharded(cores), params, states, o.maxBatch, cpu.note);
  return TrainingStep.open(graph, params, states, { ep: o.ep, threads: o.threads });
}
