/**
 * The checkpoint codec: the one place that knows a checkpoint's metadata keys. A checkpoint is an ONNX model of
 * initializers (parameters and optimizer state) whose metadata records the config, the position, the epochs so far,
 * every logged loss, the schedule's horizon and a checksum of all of it (params-io.ts).
 */
import { ParsedModel } from '../onnx/model';
import { UsageError } from '../errors';
import { EpochResult, LogEntry, Position, TrainConfig, trainConfig } from '../train/config';
import { PACKAGE_VERSION } from '../version';
import { METADATA } from '../run/metadata';

/** What a checkpoint records besides the tensors. */
export interface CheckpointState {
  config: TrainConfig;
  position: Position;
  epochs: EpochResult[];
  /** Every logged loss so far, so that a resumed run's record has neither gaps nor duplicates. */
  log: LogEntry[];
  /** Total steps of the run the schedule was computed for; null in checkpoints that predate it. */
  horizon: number | null;
}

export function checkpointMetadata(s: CheckpointState): Record<string, string> {
  return {
    [METADATA.kind]: 'checkpoint',
    [METADATA.version]: PACKAGE_VERSION,
    [METADATA.model]: s.config.model,
    [METADATA.config]: JSON.stringify(s.config),
    [METADATA.position]: JSON.stringify(s.position),
    // Batch order is a pure function of (seed, epoch): this is the whole generator state a resume needs.
    [METADATA.rng]: JSON.stringify({ seed: s.config.seed, shuffle: s.config.shuffle, epoch: s.position.epoch }),
    [METADATA.epochs]: JSON.stringify(s.epochs),
    [METADATA.log]: JSON.stringify(s.log),
    ...(s.horizon === null ? {} : { [METADATA.horizon]: String(s.horizon) }),
  };
}

/** Checkpoints of another minor version (another major, from 1.0 on) may not mean the same; they are refused. */
function compatible(saved: string | undefined): boolean {
  if (!saved) return false;
  const [a, b] = [saved.split('.'), PACKAGE_VERSION.split('.')];
  return a[0] === b[0] && (a[0] !== '0' || a[1] === b[1]);
}

/** The state recorded in a verified checkpoint; `where` names it in errors. */
export function decodeCheckpoint(m: ParsedModel, where: string): CheckpointState {
  const meta = m.metadata;
  if (meta[METADATA.kind] !== 'checkpoint' || !meta[METADATA.config])
    throw new UsageError(`${where}: not an ingraph checkpoint`);
  if (!compatible(meta[METADATA.version])) {
    throw new UsageError(
      `${where}: the checkpoint was written by ingraph ${meta[METADATA.version] ?? '(unknown)'}, incompatible with ${PACKAGE_VERSION}`,
    );
  }
  try {
    const horizon = meta[METADATA.horizon];
    const config = JSON.parse(meta[METADATA.config]) as TrainConfig;
    return {
      // Options added since the checkpoint was written take their defaults, which are what it trained with.
      config: trainConfig(config.model, config),
      position: JSON.parse(meta[METADATA.position]) as Position,
      epochs: JSON.parse(meta[METADATA.epochs]) as EpochResult[],
      log: JSON.parse(meta[METADATA.log] ?? '[]') as LogEntry[],
      horizon: horizon === undefined ? null : Number(horizon),
    };
  } catch (e) {
    throw new UsageError(`${where}: unreadable checkpoint metadata (${(e as Error).message})`);
  }
}
