/**
 * The names of the graphs' inputs and outputs: graph builders, the training step and the evaluator all spell them
 * from here (the images' shape and classes are a model's own: src/signature.ts).
 */

/** Graph inputs: uint8 images [N,C,H,W], int64 labels [N], the float learning rate, a shard's share of the batch. */
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
