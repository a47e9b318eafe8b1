/**
 * The typed signature of the graphs ingraph emits: input and output names, and the image format every network takes.
 * Graph builders, the training step and the evaluator all spell them from here.
 */

/** One image: 1 channel of 28x28 uint8 pixels (MNIST, Fashion-MNIST)... */
export const IMAGE_SHAPE = [1, 28, 28] as const;
/** ...that is, 784 values... */
export const IMAGE_SIZE = 784;
/** ...classified into 10 classes. */
export const CLASSES = 10;

/** Graph inputs: uint8 images [N,1,28,28], int64 labels [N], the float learning rate, a shard's share of the batch. */
export const INPUTS = { images: 'images', labels: 'labels', lr: 'lr', lossScale: 'loss_scale' } as const;

/** Graph outputs: the mean loss, the count of correct predictions, logits, probabilities, labels, and the divergence check. */
export const OUTPUTS = {
  loss: 'loss',
  correct: 'correct',
  logits: 'logits',
  probabilities: 'probabilities',
  label: 'label',
  paramsSqSum: 'params_sq_sum',
} as const;

/** Output name of the new value of an input that the training step updates. */
export const updated = (name: string): string => `updated.${name}`;

/** Name of the gradient of a parameter, where a graph outputs or takes it. */
export const gradient = (name: string): string => `grad.${name}`;

/** The dims of a batch of `n` images. */
export const imageDims = (n: number | string): (number | string)[] => [n, ...IMAGE_SHAPE];
