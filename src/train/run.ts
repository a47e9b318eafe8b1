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
import { firstOf, readDataset } from '../data/mnist';
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
import { EpochResult, TrainConfig } from '../options';
import { Checkpointer, progressLog, Reporter } from './observers';
import { Trainer } from './trainer';
import { Dataset } from '../data/mnist';
import { METADATA } from '../metadata';

/** A run on disk: its config, data, directory, starting point, provider, checkpoints, promotion, reporting. */
export interface RunOptions {
  /** A new run's config (`trainConfig`); required unless resuming, when the checkpoint's is used. */
  config?: TrainConfig;
  /** A directory of the four MNIST IDX files, or the data itself. */
  data: string | { train: Dataset; test: Dataset };
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
  ep: 'cpu' | 'cuda';
  promotion: PromotionResult | null;
}

/** A run's options once its config is known: the given one, or the resumed checkpoint's. */
interface StartedRun extends RunOptions {
  config: TrainConfig;
  /** The checkpoint the run continues, read and decoded once. */
  resumed: { checkpoint: ParsedModel; state: CheckpointState } | null;
}

function datasets(o: StartedRun): { train: Dataset; test: Dataset } {
  if (typeof o.data !== 'string') return o.data;
  return {
    train: readDataset(o.data, 'train', o.config.trainLimit ?? undefined),
    test: readDataset(o.data, 'test', o.config.testLimit ?? undefined),
  };
}

/** The run's config and checkpoint: a new run's own, or the checkpoint in `out` (read and decoded once). */
function start(o: RunOptions): StartedRun {
  if (!o.resume) {
    if (!o.config) throw new TypeError('train: a new run needs `config` (trainConfig)');
    const earlier = existingRun(o.out);
    if (earlier) throw new UsageError(`out ${o.out}: holds an earlier run (${earlier})`).about('out').resumable(o.out);
    return { ...o, config: o.config, resumed: null };
  }
  if (o.init)
    throw new UsageError("init cannot change on resume (the run's weights are in its checkpoint)").about('init');
  const path = join(o.out, ARTIFACTS.checkpoint);
  if (!existsSync(path)) throw new UsageError(`resume ${o.out}: no ${ARTIFACTS.checkpoint} there`).about('resume');
  const checkpoint = readCheckpoint(path, 'resume');
  const state = aboutOption('resume', () => decodeCheckpoint(checkpoint, `resume ${o.out}`));
  return { ...o, config: resumeConfig(state.config, o.resume.overrides ?? {}), resumed: { checkpoint, state } };
}

async function openTrainer(o: StartedRun, network: Network): Promise<Trainer> {
  const common = { network, config: o.config, ...datasets(o), ep: o.ep, threads: o.threads ?? undefined };
  if (o.resumed) {
    const trainer = await Trainer.create({ ...common, resume: o.resumed, resumeWhere: `resume ${o.out}` });
    const stretched = horizonError(o, trainer, o.resumed.state.horizon);
    if (stretched) {
      await trainer.release();
      throw stretched;
    }
    return trainer;
  }
  const init = o.init ? { model: readOnnxFile(o.init, 'init'), where: `init ${o.init}` } : undefined;
  return aboutOption('init', () => Trainer.create({ ...common, init }));
}

/**
 * A cosine schedule anneals over the run's total steps: a resume whose epochs, max-steps or data give another
 * total would bend the curve mid-run, so it is refused. Constant and step schedules do not depend on the total.
 */
function horizonError(o: StartedRun, t: Trainer, recorded: number | null): UsageError | null {
  if (o.config.schedule.kind !== 'cosine' || recorded === null || recorded === t.totalSteps) return null;
  const steps = `its cosine schedule spans ${recorded} steps; these epochs, max-steps and data give ${t.totalSteps}`;
  const fix = "which would bend the schedule mid-run; resume with the run's own epochs and max-steps";
  return new UsageError(`resume ${o.out}: ${steps}, ${fix}`).about('resume');
}

/** Trains as `o` says and writes the run's directory; see the module comment for what is written when. */
export async function train(options: RunOptions): Promise<TrainResult> {
  const o = start(options);
  const network = o.network ?? networkByName(o.config.model);
  const trainer = await openTrainer(o, network);
  let created: string[] = [];
  let lock: Lock;
  try {
    created = makeDir('out', o.out);
    lock = acquireLock(o.out, (text) => o.report.line(text));
  } catch (e) {
    await trainer.release();
    removeCreatedDirs(created);
    throw e;
  }
  try {
    return await new RunDirectory(o, trainer).run();
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
    private readonly o: StartedRun,
    private readonly t: Trainer,
  ) {
    // The checkpoint holds the metrics too; a resume rewrites metrics.json from it, without gaps or duplicates.
    const metrics = () => this.save(ARTIFACTS.metrics, recordJson({ log: t.log, epochs: t.epochs }));
    this.checkpoints = new Checkpointer(
      (bytes) => this.save(ARTIFACTS.checkpoint, bytes),
      o.checkpointEvery,
      o.resumed ? t.position.step : null,
      metrics,
    );
  }

  async run(): Promise<TrainResult> {
    const { o, t } = this;
    o.report.line(`execution provider: ${t.ep}${t.epNote ? ` (${t.epNote})` : ''}`);
    o.report.event({
      type: 'start',
      model: t.network.name,
      ep: t.ep,
      out: o.out,
      trainImages: t.trainImages,
      testImages: t.testImages,
      resumedAtStep: t.position.step,
    });
    await this.explained(
      async () => {
        this.save(ARTIFACTS.training, t.graph.bytes);
        this.save(ARTIFACTS.eval, t.plan.eval());
        if (!o.resumed) this.checkpoints.save(t);
        await t.fit([progressLog(o.report), this.checkpoints], o.signal);
        this.checkpoints.save(t);
      },
      (e) => new InterruptedError(e.signal, `${e.message.replace(/^\w+: /, '')}, checkpoint written`).resumable(o.out),
    );
    const { final, inference } = await this.explained(
      () => this.finish(),
      (e) =>
        new InterruptedError(
          e.signal,
          `stopped after training (step ${t.position.step}), before the export; the final checkpoint is written`,
        ).resumable(o.out),
    );
    const speed = t.speed();
    if (speed.stepsPerSecond !== null && speed.imagesPerSecond !== null) {
      o.report.line(
        `training speed: ${speed.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(speed.imagesPerSecond)} images/s (${t.ep})`,
      );
    }
    o.report.line(
      `final test accuracy: ${(100 * final.accuracy).toFixed(2)}% (${final.correct}/${final.total}); artifacts in ${o.out}`,
    );
    const promotion = await this.promote(inference, final);
    return { out: o.out, files: this.files, epochs: [...t.epochs], final, steps: t.position.step, ep: t.ep, promotion };
  }

  /** Errors of a stage told with what they leave: the last complete checkpoint, and how to continue. */
  private async explained<T>(
    stage: () => Promise<T>,
    interrupted: (e: InterruptedError) => InterruptedError,
  ): Promise<T> {
    try {
      return await stage();
    } catch (e) {
      const kept = this.checkpoints.step !== null && existsSync(join(this.o.out, ARTIFACTS.checkpoint));
      if (e instanceof InterruptedError) throw interrupted(e);
      if (e instanceof DivergedError)
        throw new DivergedError(
          `${e.message}; the last good checkpoint (step ${this.checkpoints.step ?? 0}) is kept in ${this.o.out}`,
        );
      if (!(e instanceof IoError)) throw e;
      const next = kept
        ? `the last complete checkpoint (step ${this.checkpoints.step}) is kept`
        : 'no checkpoint of this run remains: once fixed, run it again';
      const error = new IoError(`${e.message}; ${next}`, e.path, e.errno);
      throw kept ? error.resumable(this.o.out) : error;
    }
  }

  private save(name: string, bytes: Uint8Array | string): void {
    this.files[name] = writeFileIfChanged(join(this.o.out, name), bytes);
  }

  /**
   * The final evaluation, the exported model and the manifest. The final checkpoint is on disk before this starts,
   * so a signal here stops the run and resuming it does this stage again.
   */
  private async finish(): Promise<{ final: EvalReport; inference: Uint8Array }> {
    const { o, t } = this;
    await t.release();
    const final = await t.evaluate(o.signal, join(o.out, ARTIFACTS.inference), MISTAKES_SHOWN);
    // The recorded accuracy goes into the model's metadata, so deployment tooling can compare models by it.
    const inference = t.exportModel(inferenceMetadata(o.config, final));
    this.save(ARTIFACTS.inference, inference);
    const evaluation = evaluationRecord(final, t.testData, ARTIFACTS.inference);
    this.save(ARTIFACTS.evaluation, recordJson(evaluation));
    const int8 = o.quantize ? await this.int8(inference, o.quantize.calibrationImages) : null;
    const manifest = this.manifest(final, int8);
    writeFileAtomic(join(o.out, ARTIFACTS.manifest), manifestJson(manifest));
    // The report renders from the records in memory: the same records the files above hold.
    const run: RunRecord = {
      dir: resolve(o.out),
      manifest,
      metrics: { log: [...t.log], epochs: [...t.epochs] },
      evaluation,
    };
    writeFileAtomic(join(o.out, ARTIFACTS.report), await runReport(run));
    if (o.tensorboard) writeTensorboard(run, o.tensorboard);
    return { final, inference };
  }

  /** inference.int8.onnx: the export quantized, calibrated on the first `n` training images, scored on the test set. */
  private async int8(inference: Uint8Array, n: number): Promise<NonNullable<ManifestRecord['int8']>> {
    const { o, t } = this;
    const images = firstOf(t.trainData, n);
    const bytes = await quantizeInt8(inference, { images });
    const path = join(o.out, ARTIFACTS.int8);
    const r = await t.evaluate(o.signal, path, 0, bytes);
    this.save(ARTIFACTS.int8, bytes);
    o.report.line(
      `int8 export: test accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.correct}/${r.total}), ${bytes.length} bytes, in ${path}`,
    );
    return { accuracy: r.accuracy, correct: r.correct, total: r.total, calibrationImages: images.count };
  }

  private manifest(final: EvalReport, int8: ManifestRecord['int8'] | null): ManifestRecord {
    const { o, t } = this;
    return {
      ingraph: PACKAGE_VERSION,
      onnxruntime: ortVersion(),
      model: t.network.name,
      config: o.config,
      steps: t.position.step,
      ep: t.ep,
      epochs: [...t.epochs],
      final: { accuracy: final.accuracy, correct: final.correct, total: final.total },
      ...(int8 ? { int8 } : {}),
      files: Object.fromEntries(Object.entries(this.files).map(([name, hash]) => [name, { sha256: hash }])),
      reproducibility: REPRODUCIBILITY,
      host: {
        finishedAt: new Date().toISOString(),
        hostname: hostname(),
        cpus: cpus().length,
        node: process.version,
        threads: o.threads,
        workers: t.parallelism,
        ...this.speed(),
      },
    };
  }

  private speed() {
    const s = this.t.speed();
    return {
      stepsPerSecond: s.stepsPerSecond,
      imagesPerSecond: s.imagesPerSecond,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    };
  }

  /** Promotion, then the `done` event (also when promotion is refused: the run itself is complete). */
  private async promote(inference: Uint8Array, final: EvalReport): Promise<PromotionResult | null> {
    const { o, t } = this;
    const paths = Object.fromEntries(
      Object.entries(this.files).map(([name, hash]) => [name, { path: join(o.out, name), sha256: hash }]),
    );
    const done = (promotion: PromotionResult | 'refused' | null) =>
      o.report.event({
        type: 'done',
        out: o.out,
        steps: t.position.step,
        ep: t.ep,
        ...this.speed(),
        accuracy: final.accuracy,
        correct: final.correct,
        total: final.total,
        files: paths,
        promotion,
      });
    const plan = o.promote;
    if (!plan) return (void done(null), null);
    let promotion: PromotionResult;
    try {
      promotion = await promote(plan, join(o.out, ARTIFACTS.inference), inference, final.accuracy, final.total, {
        warn: (text) => o.report.line(text),
        signal: o.signal,
      });
    } catch (e) {
      if (e instanceof PromotionRefusedError) done('refused');
      throw e;
    }
    o.report.line(
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
