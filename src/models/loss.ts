/** Mean softmax cross-entropy from standard ops (no provider has a SoftmaxCrossEntropyLoss kernel). */
import { GraphBuilder } from '../onnx/builder';
import { Tensor } from '../onnx/tensor';

export interface LossOutputs {
  /** Scalar mean cross-entropy, as torch.nn.CrossEntropyLoss(). */
  loss: Tensor;
  /** Scalar float count of argmax(logits) == label. */
  correct: Tensor;
}

export function crossEntropy(g: GraphBuilder, logits: Tensor, labels: Tensor): LossOutputs {
  return g.scope('loss', () => {
    const classes = logits.shape[1] as number;
    const classIds = g.constant(Array.from({ length: classes }, (_, i) => i), [1, classes], 'int64');
    const oneHot = g.cast(g.equal(g.unsqueeze(labels, [1]), classIds), 'float32');
    const logProbs = g.logSoftmax(logits, 1);
    const nll = g.neg(g.reduceSum(g.mul(oneHot, logProbs), [1], false));
    const loss = g.reduceMean(nll, [0], false);
    const hits = g.cast(g.equal(g.argMax(logits, 1, false), labels), 'float32');
    return { loss, correct: g.reduceSum(hits, [0], false) };
  });
}
