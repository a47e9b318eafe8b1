/**
 * The checkpoint codec. A checkpoint is an ONNX model of initializers (parameters and optimizer state, readable by
 * any ONNX tool, loadable as initial weights) whose metadata records the config, the position, the epochs so far,
 * every logged loss, the schedule's horizon, the batch order's generator state and a checksum of all of it.
 */
import { createHash } from 'crypto';
import { DataFingerprint } from '../data/signature';
import { readOnnxFile } from '../io/params-io';
import { ParamSpec, Params } from '../models/module';
import { GraphBuilder } from '../onnx/builder';
import { encodeModel, ParsedModel } from '../onnx/model';
import { StateSpec } from '../optim/optimizer';
import { UsageError } from '../errors';
import { ImageSignature, signatureFromMetadata, signatureMetadata } from '../signature';
import { trainConfig } from '../config';
import { EpochResult, LogEntry, Position, TrainConfig } from '../options';
import { PACKAGE_VERSION } from '../version';
import { METADATA } from '../metadata';

/** What a checkpoint records besides the tensors. */
export interface CheckpointState {
  config: TrainConfig;
  position: Position;
  epochs: EpochResult[];
  /** Every logged loss so far, so that a resumed run's record has neither gaps nor duplicates. */
  log: LogEntry[];
  /** Total steps of the run the schedule was computed for; null in checkpoints that predate it. */
  horizon: number | null;
  /** The images and classes the run trains on (MNIST's in checkpoints that record none). */
  signature: ImageSignature;
  /** The training set's fingerprint; null in checkpoints that predate it. */
  data: DataFingerprint | null;
}

export function checkpointMetadata(s: CheckpointState): Record<string, string> {
  return {
    [METADATA.kind]: 'checkpoint',
    [METADATA.version]: PACKAGE_VERSION,
    [METADATA.model]: s.config.model,
    [METADATA.config]: JSON.stringify(s.config),
    [METADATA.position]: JSON.stringify(s.position),
    // Batch order is a pure function of (seed, epoch): this is the whole generator state a resume needs.
    [METADATA.rng]: batchOrderOf(s),
    [METADATA.epochs]: JSON.stringify(s.epochs),
    [METADATA.log]: JSON.stringify(s.log),
    ...(s.horizon === null ? {} : { [METADATA.horizon]: String(s.horizon) }),
    ...signatureMetadata(s.signature),
    ...(s.data === null ? {} : { [METADATA.data]: JSON.stringify(s.data) }),
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
  const state = decodeState(meta, where);
  checkBatchOrder(meta[METADATA.rng], state, where);
  return state;
}

/** The batch order's generator state a checkpoint records: a pure function of the seed, shuffle and epoch. */
function batchOrderOf(s: Pick<CheckpointState, 'config' | 'position'>): string {
  return JSON.stringify({ seed: s.config.seed, shuffle: s.config.shuffle, epoch: s.position.epoch });
}

/** Refuses a checkpoint whose recorded batch order disagrees with its config and position (older ones have none). */
function checkBatchOrder(recorded: string | undefined, s: CheckpointState, where: string): void {
  if (recorded === undefined || recorded === batchOrderOf(s)) return;
  throw new UsageError(
    `${where}: its batch order (${METADATA.rng} ${recorded}) disagrees with its config and position`,
  );
}

function decodeState(meta: Record<string, string>, where: string): CheckpointState {
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
      signature: signatureFromMetadata(meta, where),
      data: meta[METADATA.data] === undefined ? null : (JSON.parse(meta[METADATA.data]) as DataFingerprint),
    };
  } catch (e) {
    throw new UsageError(`${where}: unreadable checkpoint metadata (${(e as Error).message})`);
  }
}

export interface Checkpoint {
  params: Params;
  states: Params;
  metadata: Record<string, string>;
}

/** SHA-256 over every tensor (name, shape, bytes) and every metadata entry but the checksum itself. */
function contentChecksum(
  tensors: Iterable<{ name: string; shape: readonly number[]; data: Float32Array }>,
  metadata: Record<string, string>,
): string {
  const h = createHash('sha256');
  for (const t of tensors) {
    h.update(`${t.name}[${t.shape.join(',')}]`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  for (const k of Object.keys(metadata)
    .filter((key) => key !== METADATA.checksum)
    .sort())
    h.update(`${k}=${metadata[k]}\n`);
  return h.digest('hex');
}

/**
 * A checkpoint is an ONNX model holding only initializers: readable by any ONNX tool, loadable as initial weights. It
 * carries the SHA-256 of its own content, so a torn or altered file is refused on resume.
 */
export function encodeCheckpoint(
  specs: readonly ParamSpec[],
  stateSpecs: readonly StateSpec[],
  c: Checkpoint,
): Uint8Array {
  const g = new GraphBuilder();
  const stateNames = new Set(stateSpecs.map((s) => s.name));
  const tensors = [...specs, ...stateSpecs].map((s) => {
    const data = (stateNames.has(s.name) ? c.states : c.params).get(s.name);
    if (!data) throw new Error(`checkpoint: "${s.name}" has no value`);
    g.initializer(s.name, 'float32', s.shape, data);
    return { name: s.name, shape: s.shape, data };
  });
  const metadata = { ...c.metadata, [METADATA.checksum]: contentChecksum(tensors, c.metadata) };
  return encodeModel(g, {
    graphName: 'ingraph_checkpoint',
    docString: 'ingraph training checkpoint: parameters by state_dict key, optimizer state under "optim."',
    metadata,
  });
}

/** Reads a checkpoint and verifies its checksum; a torn or altered file is a usage error naming it. */
export function readCheckpoint(path: string, option = 'checkpoint'): ParsedModel {
  const m = readOnnxFile(path, option);
  const expected = m.metadata[METADATA.checksum];
  if (!expected) throw new UsageError(`${option} ${path}: not an ingraph checkpoint (no checksum)`).about(option);
  const tensors = [...m.initializers.values()].map((t) => ({
    name: t.name,
    shape: t.shape,
    data: t.data as Float32Array,
  }));
  if (contentChecksum(tensors, m.metadata) !== expected) {
    throw new UsageError(
      `${option} ${path}: checksum mismatch: the checkpoint is damaged or was altered; refusing it`,
    ).about(option);
  }
  return m;
}
