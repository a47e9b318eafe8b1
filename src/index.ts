/**
 * ingraph: train small convolutional networks inside ONNX graphs, from TypeScript. The forward graph of a network,
 * its backward pass and the optimizer update are standard ONNX operators; one `session.run` of onnxruntime-node is
 * one training step. This file is the public API: the CLI, the examples and user scripts use only what it exports.
 *
 * @example
 * ```ts
 * import { Trainer, trainConfig, readDataset, defaultMnistDir } from 'ingraph';
 * const trainer = await Trainer.create({
 *   network: 'residual',
 *   config: trainConfig('residual', { epochs: 1 }),
 *   train: readDataset(defaultMnistDir(), 'train'),
 *   test: readDataset(defaultMnistDir(), 'test'),
 * });
 * await trainer.fit();
 * const model = trainer.exportModel(); // an ONNX inference model, as bytes
 * await trainer.release();
 * ```
 */

// Networks and the module toolkit
export { NETWORKS, defineNetwork, networkByName } from './models';
export type { NetworkShape } from './models';
export { MNIST_SIGNATURE, describeSignature, imageShape, pixelsPerImage } from './signature';
export type { ImageSignature } from './signature';
export type { Network, NetworkName, NetworkRef } from './models';
export { Conv2d, Forward, Linear, Module, countParams, initParams } from './models/module';
export type { ParamSpec, Params } from './models/module';
export { InceptionA, InceptionNet } from './models/inception';
export { ResidualBlock, ResidualNet } from './models/residual';

// Graphs, autodiff and optimizers
export { GraphBuilder } from './onnx/builder';
export type { ConvOptions, PoolOptions } from './onnx/builder';
export type { DType, Dim, Shape, Tensor } from './onnx/tensor';
export { EXPORT_OPSETS, OPSET, encodeModel, parseModel } from './onnx/model';
export type { ParsedModel, StoredTensor } from './onnx/model';
export { appendGradients } from './autodiff/gradients';
export type { GradientOptions } from './autodiff/gradients';
export { sgd } from './optim/sgd';
export type { SgdOptions } from './optim/sgd';
export { ADAMW_DEFAULTS, adamw } from './optim/adamw';
export type { AdamWOptions } from './optim/adamw';
export { averagedParams, emaName, withEma } from './optim/ema';
export type { Optimizer } from './optim/optimizer';
export { TrainingPlan, frozenMatcher } from './plan';
export type { PlanOptions } from './plan';
export { optimizerFor } from './optim';
export type { OptimizerConfig } from './optim';
export { METADATA } from './metadata';
export { TRAIN_OPTIONS, flagOf } from './options';
export type { OptionSpec } from './options';
export {
  buildEvalModel,
  buildFlatTrainingModel,
  buildInferenceModel,
  buildLoopTrainingModel,
  buildTrainingModel,
} from './plan';
export type {
  FlatState,
  FlatTrainingGraph,
  LoopTrainingGraph,
  Precision,
  TrainingGraph,
  TrainingModelOptions,
} from './plan';

// Data
export {
  datasetFromArrays,
  defaultMnistDir,
  readIdxImages,
  readIdxLabels,
  loadDataset,
  readDataset,
} from './data/mnist';
export { readCsv } from './data/csv';
export { signatureOf, channelStats } from './data/signature';
export { readImageFolder } from './data/folder';
export type { FolderOptions } from './data/folder';
export { AUGMENTATIONS, AUGMENT_RANGES, augmentBatch, batchRng, drawWarp, warpImage } from './data/augment';
export type { AugmentKind, Warp } from './data/augment';
export { Rng } from './data/rng';
export type { Dataset } from './data/mnist';

// Training
export { Trainer } from './train/trainer';
export type { EpochEvent, StepEvent, TrainObserver, TrainerOptions } from './train/trainer';
export { resumeConfig, trainConfig } from './config';
export type { EpochResult, LogEntry, Position, TrainConfig } from './options';
export { learningRate } from './runtime/schedule';
export type { Schedule, ScheduleKind } from './runtime/schedule';
export { Checkpointer, progressLog } from './train/observers';
export type { Reporter } from './train/observers';
export { train } from './train/run';
export { ARTIFACTS, REPRODUCIBILITY, existingRun } from './run/layout';
export type { RunOptions, TrainResult } from './train/run';

// Model files: checkpoints, export, evaluation, inspection, promotion
export { readOnnxFile } from './io/params-io';
export { decodeCheckpoint, readCheckpoint } from './run/checkpoint';
export type { CheckpointState } from './run/checkpoint';
export { exportModel, evaluateModel, importModel, inspectModel, writeArtifacts } from './api';
export type { ArtifactsOptions } from './api';
export { evaluate } from './runtime/evaluate';
export type { EvalReport, EvaluateOptions, Mistake } from './runtime/evaluate';
export { promote } from './run/promote';
export type { PromoteOptions, PromotionPlan, PromotionResult } from './run/promote';
export type { EpChoice } from './runtime/session';
export { gradientsFor, WEBGPU_GRADIENTS } from './runtime/steps';

// Serving: int8 models, Triton repositories
export { quantizeInt8 } from './deploy/quantize';
export type { Calibration, QuantizeOptions } from './deploy/quantize';
export { tritonConfig, writeTritonRepository } from './deploy/triton';
export type { TritonOptions } from './deploy/triton';

// Reports
export { evaluationReport, runReport, writeTensorboard } from './report';
export { evaluationRecord, readRun, RECORD_FILES } from './run/records';
export type { EvaluationRecord, ManifestRecord, MetricsRecord, MistakeRecord, RunRecord } from './run/records';

// Errors
export {
  DivergedError,
  IngraphError,
  InterruptedError,
  IoError,
  LockedError,
  PromotionRefusedError,
  OptionError,
  UsageError,
} from './errors';
export { DataError } from './data/data-error';
export { ModelFormatError } from './onnx/model';
