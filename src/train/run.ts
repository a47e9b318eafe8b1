/**
 * A training run on disk: a Trainer plus the observers that write its directory: the training and eval graphs,
 * checkpoints (at the start, every N steps, after each epoch, on a signal and at the end) with the metrics so far,
 * the exported inference model, its evaluation, the manifest, the report, and promotion. Everything is read and
 * checked, and the session opened, before the directory is created: a run that cannot start writes nothing.
 */
import { existsSync, readFileSync } from 'fs';
import { cpus, hostname } from 'os';
import { join, resolve } from 'path';
import { makeDir, removeCreatedDirs, writeFileAtomic, writeFileIfChanged } from '../io/files';
import { quantizeInt8 } from '../deploy/quantize';
import { acquireLock, Lock } from '../io/lock';
import { CheckpointState, decodeCheckpoint, readCheckpoint } from '../run/checkpoint';
import { readOnnxFile } from '../io/params-io';
import { DataOptions, firstOf, loadDataset } from '../data/mnist';
import { aboutOption, DivergedError, InterruptedError, IoError, PromotionRefusedError, UsageError } from '../errors';
import { Network, networkByName } from '../models';
import { ParsedModel } from '../onnx/model';
import { runReport, writeTensorboard } from '../report';
import { evaluationRecord, ManifestRecord, manifestJson, MISTAKES_SHOWN, recordJson, RunRecord } from '../run/records';
import { ARTIFACTS, existingRun, REPRODUCIBILITY } from '../run/layout';
import { EvalReport } from '../runtime/evaluate';
import { PromotionPlan, PromotionResult, promote } from '../run/promote';
import { EpChoice } from '../runtime/session';
import { PACKAGE_VERSION } from '../version';
import { resumeConfig } from '../config';
import { Ep, EpochResult, TrainConfig } from '../options';
import { Checkpointer, progressLog, Reporter } from './observers';
import { Trainer } from './trainer';
import { Dataset } from '../data/mnist';
import { METADATA } from '../metadata';
import { imageShape, isMnist } from '../signature';

/** A run on disk: its config, data, directory, starting point, provider, checkpoints, promotion, reporting. */
export interface RunOptions {
  /** A new run's config (`trainConfig`); required unless resuming, when the checkpoint's is used. */
  config?: TrainConfig;
  /** A data directory (MNIST IDX or CSV files, CIFAR binary files, an image folder), or the data itself. */
  data: string | { train: Dataset; test: Dataset };
  /** How the data's images become one shape: an image folder's channels and size, a CSV file's image shape. */
  folder?: DataOptions;
  /** The images' normalisation (Normalize's mean and std on the [0, 1] scale); default: the data's. */
  normalise?: { mean: readonly number[]; std: readonly number[] };
  /** A custom network; default: the built-in one named by `config.model`. */
  network?: Network;
  out: string;
  init: string | null;
  /**
   * Continue the run in `out` from its checkpoint, with its recorded config; `overrides` may change only the options
   * a resume may change (src/options.ts: epochs, max steps, log interval).
   */
  resume?: { overrides?: Partial<TrainConfig> } | null;
  ep: EpChoice;
  threads: number | null;
  /** Also checkpoint every N steps (always: at the start, after each epoch and at the end). */
  checkpointEvery: number | null;
  promote: PromotionPlan | null;
  /**
   * Also write `inference.int8.onnx`: the exported model quantized to int8 (`quantizeInt8`), calibrated on the first
   * `calibrationImages` training images and scored on the test set (its accuracy in the manifest's `int8`).
   */
  quantize?: { calibrationImages: number } | null;
  /** Also write the metrics as a TensorBoard event file under this directory at the end (see `writeTensorboard`). */
  tensorboard?: string | null;
  /** Where progress goes; the CLI passes a TTY-aware reporter. */
  report: Reporter;
  /**
   * Aborting (with the signal's name as reason) stops the run at its next safe point: after the
   * current step or within an evaluation, with a checkpoint to resume from. The CLI aborts it on a signal.
   */
  signal?: AbortSignal;
}

/** Where a run tells its progress. */
export interface TrainResult {
  out: string;
  /** SHA-256 of each artifact, as read back from the disk. */
  files: Record<string, string>;
  epochs: EpochResult[];
  final: EvalReport;
  steps: number;
  ep: Ep;
  promotion: PromotionResult | null;
}

/** A run's options once its config is known: the given one, or the resumed checkpoint's. */
interface StartedRun extends RunOptions {
  config: TrainConfig;
  /** The checkpoint the run continues, read and decoded once. */
  resumed: { checkpoint: ParsedModel; state: CheckpointState } | null;
}

async function datasets(run: StartedRun): Promise<{ train: Dataset; test: Dataset }> {
  if (typeof run.data !== 'string') return run.data;
  const shaping = (split: 'train' | 'test'): DataOptions => ({
    ...resumedShaping(run),
    ...run.folder,
    onDecoded: (done, total) => run.report.loading?.(split, done, total),
  });
  return {
    train: await loadDataset(run.data, 'train', run.config.trainLimit ?? undefined, shaping('train')),
    test: await loadDataset(run.data, 'test', run.config.testLimit ?? undefined, shaping('test')),
  };
}

/**
 * How a resumed run reads its data unless told otherwise: as the images its checkpoint records (an image folder's
 * channels and size, a CSV file's shape), so a resume needs no `channels`/`resize`/`imageShape` again. A resize to
 * the images' own size changes no pixel (sharp), and a mismatch is still caught by the data's fingerprint.
 */
function resumedShaping(run: StartedRun): DataOptions {
  if (!run.resumed) return {};
  const s = run.resumed.state.signature;
  const channels: DataOptions = s.channels === 1 || s.channels === 3 ? { channels: s.channels } : {};
  const csv = isMnist(s) ? {} : { csvShape: imageShape(s) };
  return { ...channels, resize: [s.height, s.width], ...csv };
}

/** The run's config and checkpoint: a new run's own, or the checkpoint in `out` (read and decoded once). */
function start(run: RunOptions): StartedRun {
  if (!run.resume) {
    if (!run.config) throw new TypeError('train: a new run needs `config` (trainConfig)');
    const earlier = existingRun(run.out);
    if (earlier)
      throw new UsageError(`out ${run.out}: holds an earlier run (${earlier})`).about('out').resumable(run.out);
    return { ...run, config: run.config, resumed: null };
  }
  if (run.init)
    throw new UsageError("init cannot change on resume (the run's weights are in its checkpoint)").about('init');
  const path = join(run.out, ARTIFACTS.checkpoint);
  if (!existsSync(path)) throw new UsageError(`resume ${run.out}: no ${ARTIFACTS.checkpoint} there`).about('resume');
  const checkpoint = readCheckpoint(path, 'resume');
  const state = aboutOption('resume', () => decodeCheckpoint(checkpoint, `resume ${run.out}`));
  return { ...run, config: resumeConfig(state.config, run.resume.overrides ?? {}), resumed: { checkpoint, state } };
}

async function openTrainer(run: StartedRun, network: Network): Promise<Trainer> {
  const common = {
    network,
    config: run.config,
    ...(await datasets(run)),
    ep: run.ep,
    threads: run.threads ?? undefined,
    normalise: run.normalise,
  };
  if (run.resumed) {
    const trainer = await Trainer.create({ ...common, resume: run.resumed, resumeWhere: `resume ${run.out}` });
    const stretched = horizonError(run, trainer, run.resumed.state.horizon);
    if (stretched) {
      await trainer.release();
      throw stretched;
    }
    return trainer;
  }
  const init = run.init ? { model: readOnnxFile(run.init, 'init'), where: `init ${run.init}` } : undefined;
  return aboutOption('init', () => Trainer.create({ ...common, init }));
}

/**
 * A cosine schedule anneals over the run's total steps: a resume whose epochs, max-steps or data give another
 * total would bend the curve mid-run, so it is refused. Constant and step schedules do not depend on the total.
 */
function horizonError(run: StartedRun, trainer: Trainer, recorded: number | null): UsageError | null {
  if (run.config.schedule.kind !== 'cosine' || recorded === null || recorded === trainer.totalSteps) return null;
  const steps = `its cosine schedule spans ${recorded} steps; these epochs, max-steps and data give ${trainer.totalSteps}`;
  const fix = "which would bend the schedule mid-run; resume with the run's own epochs and max-steps";
  return new UsageError(`resume ${run.out}: ${steps}, ${fix}`).about('resume');
}

/** The run's network: the one given (an imported one must be the run's), else the built-in one its config names. */
function runNetwork(run: StartedRun): Network {
  const name = run.config.model;
  if (run.network && run.resumed && run.network.name !== name)
    throw new UsageError(`model ${run.network.name}: that run trains ${name}`).about('model');
  if (run.network) return run.network;
  if (/\.onnx$/i.test(name))
    throw new UsageError(
      `resume ${run.out}: the run trains ${name}, a model imported from a file: give it again (model)`,
    ).about('resume');
  return networkByName(name);
}

/** Trains as `options` say and writes the run's directory; see the module comment for what is written when. */
export async function train(options: RunOptions): Promise<TrainResult> {
  const run = start(options);
  const network = runNetwork(run);
  if (run.quantize && network.imported)
    throw new UsageError(
      'quantize int8: not for an imported model yet (its export keeps the file’s float32 input)',
    ).about('quantize');
  const trainer = await openTrainer(run, network);
  let created: string[] = [];
  let lock: Lock;
  try {
    created = makeDir('out', run.out);
    lock = acquireLock(run.out, (text) => run.report.line(text));
  } catch (e) {
    await trainer.release();
    removeCreatedDirs(created);
    throw e;
  }
  try {
    return await new RunDirectory(run, trainer).write();
  } finally {
    await trainer.release();
    lock.release();
  }
}

/** One run's directory: its files, written by the stages of the run and by the Trainer's observers. */
class RunDirectory {
  /** SHA-256 of each artifact as read back from the disk. */
  private readonly files: Record<string, string> = {};
  private readonly checkpoints: Checkpointer;

  constructor(
    private readonly run: StartedRun,
    private readonly trainer: Trainer,
  ) {
    // The checkpoint holds the metrics too; a resume rewrites metrics.json from it, without gaps or duplicates.
    const metrics = () => this.save(ARTIFACTS.metrics, recordJson({ log: trainer.log, epochs: trainer.epochs }));
    this.checkpoints = new Checkpointer(
      (bytes) => this.save(ARTIFACTS.checkpoint, bytes),
      run.checkpointEvery,
      run.resumed ? trainer.position.step : null,
      metrics,
    );
  }

  async write(): Promise<TrainResult> {
    const { run, trainer } = this;
    run.report.line(`execution provider: ${trainer.ep}${trainer.epNote ? ` (${trainer.epNote})` : ''}`);
    run.report.event({
      type: 'start',
      model: trainer.network.name,
      ep: trainer.ep,
      out: run.out,
      trainImages: trainer.trainImages,
      testImages: trainer.testImages,
      resumedAtStep: trainer.position.step,
    });
    await this.explained(
      async () => {
        this.save(ARTIFACTS.training, trainer.graph.bytes);
        this.save(ARTIFACTS.eval, trainer.plan.eval());
        if (!run.resumed) this.checkpoints.save(trainer);
        await trainer.fit([progressLog(run.report), this.checkpoints], run.signal);
        this.checkpoints.save(trainer);
      },
      (e) =>
        new InterruptedError(e.signal, `${e.message.replace(/^\w+: /, '')}, checkpoint written`).resumable(run.out),
    );
    const { final, inference } = await this.explained(
      () => this.finish(),
      (e) =>
        new InterruptedError(
          e.signal,
          `stopped after training (step ${trainer.position.step}), before the export; the final checkpoint is written`,
        ).resumable(run.out),
    );
    const speed = trainer.speed();
    if (speed.stepsPerSecond !== null && speed.imagesPerSecond !== null) {
      run.report.line(
        `training speed: ${speed.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(speed.imagesPerSecond)} images/s (${trainer.ep})`,
      );
    }
    run.report.line(
      `final test accuracy: ${(100 * final.accuracy).toFixed(2)}% (${final.correct}/${final.total}); artifacts in ${run.out}`,
    );
    const promotion = await this.promote(inference, final);
    return {
      out: run.out,
      files: this.files,
      epochs: [...trainer.epochs],
      final,
      steps: trainer.position.step,
      ep: trainer.ep,
      promotion,
    };
  }

  /** Errors of a stage told with what they leave: the last complete checkpoint, and how to continue. */
  private async explained<T>(
    stage: () => Promise<T>,
    interrupted: (e: InterruptedError) => InterruptedError,
  ): Promise<T> {
    try {
      return await stage();
    } catch (e) {
      const kept = this.checkpoints.step !== null && existsSync(join(this.run.out, ARTIFACTS.checkpoint));
      if (e instanceof InterruptedError) throw interrupted(e);
      if (e instanceof DivergedError)
        throw new DivergedError(
          `${e.message}; the last good checkpoint (step ${this.checkpoints.step ?? 0}) is kept in ${this.run.out}`,
        );
      if (!(e instanceof IoError)) throw e;
      const next = kept
        ? `the last complete checkpoint (step ${this.checkpoints.step}) is kept`
        : 'no checkpoint of this run remains: once fixed, run it again';
      const error = new IoError(`${e.message}; ${next}`, e.path, e.errno);
      throw kept ? error.resumable(this.run.out) : error;
    }
  }

  private save(name: string, bytes: Uint8Array | string): void {
    this.files[name] = writeFileIfChanged(join(this.run.out, name), bytes);
  }

  /**
   * The final evaluation, the exported model and the manifest. The final checkpoint is on disk before this starts,
   * so a signal here stops the run and resuming it does this stage again.
   */
  private async finish(): Promise<{ final: EvalReport; inference: Uint8Array }> {
    const { run, trainer } = this;
    await trainer.release();
    const final = await trainer.evaluate(run.signal, join(run.out, ARTIFACTS.inference), MISTAKES_SHOWN);
    // The recorded accuracy goes into the model's metadata, so deployment tooling can compare models by it.
    const inference = trainer.exportModel(inferenceMetadata(run.config, final));
    this.save(ARTIFACTS.inference, inference);
    const evaluation = evaluationRecord(final, trainer.testData, ARTIFACTS.inference);
    this.save(ARTIFACTS.evaluation, recordJson(evaluation));
    const int8 = run.quantize ? await this.int8(inference, run.quantize.calibrationImages) : null;
    const manifest = this.manifest(final, int8);
    writeFileAtomic(join(run.out, ARTIFACTS.manifest), manifestJson(manifest));
    // The report renders from the records in memory: the same records the files above hold.
    const record: RunRecord = {
      dir: resolve(run.out),
      manifest,
      metrics: { log: [...trainer.log], epochs: [...trainer.epochs] },
      evaluation,
    };
    writeFileAtomic(join(run.out, ARTIFACTS.report), await runReport(record));
    if (run.tensorboard) writeTensorboard(record, run.tensorboard);
    return { final, inference };
  }

  /** inference.int8.onnx: the export quantized, calibrated on the first `n` training images, scored on the test set. */
  private async int8(inference: Uint8Array, n: number): Promise<NonNullable<ManifestRecord['int8']>> {
    const { run, trainer } = this;
    const images = firstOf(trainer.trainData, n);
    const bytes = await quantizeInt8(inference, { images });
    const path = join(run.out, ARTIFACTS.int8);
    const r = await trainer.evaluate(run.signal, path, 0, bytes);
    this.save(ARTIFACTS.int8, bytes);
    run.report.line(
      `int8 export: test accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.correct}/${r.total}), ${bytes.length} bytes, in ${path}`,
    );
    return { accuracy: r.accuracy, correct: r.correct, total: r.total, calibrationImages: images.count };
  }

  private manifest(final: EvalReport, int8: ManifestRecord['int8'] | null): ManifestRecord {
    const { run, trainer } = this;
    return {
      ingraph: PACKAGE_VERSION,
      onnxruntime: ortVersion(),
      model: trainer.network.name,
      config: run.config,
      steps: trainer.position.step,
      ep: trainer.ep,
      signature: trainer.plan.signature,
      epochs: [...trainer.epochs],
      final: { accuracy: final.accuracy, correct: final.correct, total: final.total },
      ...(int8 ? { int8 } : {}),
      files: Object.fromEntries(Object.entries(this.files).map(([name, hash]) => [name, { sha256: hash }])),
      reproducibility: REPRODUCIBILITY,
      host: {
        finishedAt: new Date().toISOString(),
        hostname: hostname(),
        cpus: cpus().length,
        node: process.version,
        threads: run.threads,
        workers: trainer.parallelism,
        ...this.speed(),
      },
    };
  }

  private speed() {
    const s = this.trainer.speed();
    return {
      stepsPerSecond: s.stepsPerSecond,
      imagesPerSecond: s.imagesPerSecond,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    };
  }

  /** Promotion, then the `done` event (also when promotion is refused: the run itself is complete). */
  private async promote(inference: Uint8Array, final: EvalReport): Promise<PromotionResult | null> {
    const { run, trainer } = this;
    const paths = Object.fromEntries(
      Object.entries(this.files).map(([name, hash]) => [name, { path: join(run.out, name), sha256: hash }]),
    );
    const done = (promotion: PromotionResult | 'refused' | null) =>
      run.report.event({
        type: 'done',
        out: run.out,
        steps: trainer.position.step,
        ep: trainer.ep,
        ...this.speed(),
        accuracy: final.accuracy,
        correct: final.correct,
        total: final.total,
        files: paths,
        promotion,
      });
    const plan = run.promote;
    if (!plan) return (void done(null), null);
    let promotion: PromotionResult;
    try {
      promotion = await promote(plan, join(run.out, ARTIFACTS.inference), inference, final.accuracy, final.total, {
        warn: (text) => run.report.line(text),
        signal: run.signal,
      });
    } catch (e) {
      if (e instanceof PromotionRefusedError) done('refused');
      throw e;
    }
    run.report.line(
      `promoted to ${plan.target} (test accuracy ${(100 * final.accuracy).toFixed(2)}%${promotion.previousAccuracy === null ? '' : `, was ${(100 * promotion.previousAccuracy).toFixed(2)}%`})`,
    );
    done(promotion);
    return promotion;
  }
}

function ortVersion(): string {
  return (JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string })
    .version;
}

function inferenceMetadata(c: TrainConfig, final: EvalReport): Record<string, string> {
  return {
    [METADATA.version]: PACKAGE_VERSION,
    [METADATA.training]: JSON.stringify({
      optimizer: c.optimizer,
      lr: c.lr,
      momentum: c.momentum,
      weightDecay: c.weightDecay,
      epochs: c.epochs,
      batchSize: c.batchSize,
      seed: c.seed,
      schedule: c.schedule,
      warmupEpochs: c.warmupEpochs,
      labelSmoothing: c.labelSmoothing,
      augment: c.augment,
      ema: c.ema,
    }),
    [METADATA.testAccuracy]: String(final.accuracy),
    [METADATA.testImages]: String(final.total),
  };
}
