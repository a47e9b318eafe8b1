/**
 * Every `ingraph.*` metadata key that ingraph writes into an ONNX file (metadata_props): the one place that spells
 * them. Checkpoints, exported models and their readers all use these names.
 */
export const METADATA = {
  /** 'checkpoint' in a checkpoint. */
  kind: 'ingraph.kind',
  /** The ingraph version that wrote the file. */
  version: 'ingraph.version',
  /** The network's name. */
  model: 'ingraph.model',
  /** The image signature (shape, normalisation, classes and their names) as JSON, where it is not MNIST's. */
  signature: 'ingraph.signature',
  /** A checkpoint's TrainConfig, as JSON. */
  config: 'ingraph.config',
  /** A checkpoint's Position, as JSON. */
  position: 'ingraph.position',
  /** The batch order's generator state (seed, shuffle, epoch) of a checkpoint, as JSON; checked on resume. */
  rng: 'ingraph.rng',
  /** A checkpoint's epoch results, as JSON. */
  epochs: 'ingraph.epochs',
  /** The total steps a checkpoint's schedule was computed for. */
  horizon: 'ingraph.horizon',
  /** A checkpoint's logged losses, as JSON. */
  log: 'ingraph.log',
  /** The fingerprint of a checkpoint's training set (its size and a hash of its labels and pixels), as JSON. */
  data: 'ingraph.data',
  /** SHA-256 of a checkpoint's tensors and other metadata. */
  checksum: 'ingraph.sha256',
  /** An exported model's training recipe, as JSON. */
  training: 'ingraph.training',
  /** An exported model's test accuracy (0..1), which promotion compares. */
  testAccuracy: 'ingraph.test_accuracy',
  /** The number of test images that accuracy was measured on. */
  testImages: 'ingraph.test_images',
  /** Where an exported model's weights came from. */
  weights: 'ingraph.weights',
  /** 'float16' in a half-precision export. */
  precision: 'ingraph.precision',
  /** How an int8 export was quantized, as JSON. */
  quantization: 'ingraph.quantization',
} as const;
