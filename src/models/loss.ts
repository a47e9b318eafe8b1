/** Mean softmax cross-entropy from standard ops (no provider has a SoftmaxCrossEntropyLoss kernel). */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';

export interface LossOutputs {
  /** Scalar mean cross-entropy, as torch.nn.CrossEntropyLoss(). */
  loss: Tensor;
  /** Scalar float count of argmax(logits) == label. */
  correct: Tensor;
}

/**
 * The loss and correct count of `logits` for `labels` (int64 [N], or float32 one-hot [N,K]). With `smoothing` ε > 0 the target is (1-ε)·one-hot + ε/C,
 * as torch.nn.CrossEntropyLoss(label_smoothing=ε). `composedLogSoftmax` spells log-softmax in ops that every provider
 * has (WebGPU has no LogSoftmax kernel).
 */
export function crossEntropy(
  g: GraphBuilder,
  logits: Tensor,
  labels: Tensor,
  smoothing = 0,
  composedLogSoftmax = false,
): LossOutputs {
  if (!(smoothing >= 0 && smoothing <= 1)) throw new RangeError(`label smoothing ${smoothing}: must be in [0, 1]`);
  return g.scope('loss', () => {
    const classes = logits.shape[1] as number;
    // Float labels are one-hot already (a WebGPU step's): the mean and the count are then float ops too.
    const floats = labels.dtype === 'float32';
    const oneHot = floats ? labels : oneHotOf(g, labels, classes);
    const target =
      smoothing > 0 ? g.add(g.mul(oneHot, g.scalar(1 - smoothing)), g.scalar(smoothing / classes)) : oneHot;
    const logProbs = composedLogSoftmax ? logSoftmaxComposed(g, logits) : g.logSoftmax(logits, 1);
    const nll = g.neg(g.reduceSum(g.mul(target, logProbs), [1], false));
    if (floats) {
      const count = g.reduceSum(oneHot, [0, 1], false);
      const best = g.where(g.equal(logits, g.reduceMax(logits, [1], true)), g.scalar(1), g.scalar(0));
      return {
        loss: g.div(g.reduceSum(nll, [0], false), count),
        correct: g.reduceSum(g.mul(oneHot, best), [0, 1], false),
      };
    }
    const loss = g.reduceMean(nll, [0], false);
    const hits = g.cast(g.equal(g.argMax(logits, 1, false), labels), 'float32');
    return { loss, correct: g.reduceSum(hits, [0], false) };
  });
}

/** float32 one-hot [N,K] of int64 labels [N]. */
function oneHotOf(g: GraphBuilder, labels: Tensor, classes: number): Tensor {
  const classIds = g.constant(
    Array.from({ length: classes }, (_, i) => i),
    [1, classes],
    'int64',
  );
  return g.cast(g.equal(g.unsqueeze(labels, [1]), classIds), 'float32');
}

/** log-softmax over axis 1 as x - max - log(sum(exp(x - max))): ReduceMax, Sub, Exp, ReduceSum, Log. */
function logSoftmaxComposed(g: GraphBuilder, x: Tensor): Tensor {
  const shifted = g.sub(x, g.reduceMax(x, [1], true));
  return g.sub(shifted, g.log(g.reduceSum(g.exp(shifted), [1], true)));
}
