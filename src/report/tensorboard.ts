/**
 * A run's metrics as a TensorBoard event file: TFRecord framing (length and data, each with a masked CRC-32C) around
 * `Event` protos (tensorflow/core/util/event.proto) whose `Summary` holds one simple scalar per value. Logged losses
 * and learning rates are at their training step; epoch results at their epoch number, as Keras writes its
 * `epoch_*` scalars.
 */
import * as protobuf from 'protobufjs';
import { MetricsRecord } from '../run/records';

/** The protos, from event.proto and summary.proto: only the fields written here, with their official numbers. */
const root = protobuf.Root.fromJSON({
  nested: {
    Event: {
      fields: {
        wallTime: { type: 'double', id: 1 },
        step: { type: 'int64', id: 2 },
        fileVersion: { type: 'string', id: 3 },
        summary: { type: 'Summary', id: 5 },
      },
    },
    Summary: {
      fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
      nested: { Value: { fields: { tag: { type: 'string', id: 1 }, simpleValue: { type: 'float', id: 2 } } } },
    },
  },
});
const Event = root.lookupType('Event');

/** CRC-32C (Castagnoli), as TFRecord uses it. */
const CRC32C_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits and offset, so a CRC of data holding CRCs stays well spread. */
function maskedCrc(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function record(data: Uint8Array): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  const crc = (b: Uint8Array) => {
    const out = Buffer.alloc(4);
    out.writeUInt32LE(maskedCrc(b));
    return out;
  };
  return Buffer.concat([length, crc(length), data, crc(data)]);
}

function event(wallTime: number, step: number, scalars: Record<string, number>): Buffer {
  const value = Object.entries(scalars).map(([tag, simpleValue]) => ({ tag, simpleValue }));
  return record(Event.encode(Event.create({ wallTime, step, summary: { value } })).finish());
}

/** The event file of a run's metrics, every event stamped `wallTime` (seconds since the epoch). */
export function tensorboardEvents(metrics: MetricsRecord, wallTime: number): Buffer {
  return Buffer.concat([
    record(Event.encode(Event.create({ wallTime, fileVersion: 'brain.Event:2' })).finish()),
    ...metrics.log.map((e) => event(wallTime, e.step, { 'train/loss': e.loss, 'train/lr': e.lr })),
    ...metrics.epochs.map((e) =>
      event(wallTime, e.epoch, {
        'epoch/test_accuracy': e.testAccuracy,
        'epoch/train_accuracy': e.trainAccuracy,
        'epoch/train_loss': e.trainLoss,
      }),
    ),
  ]);
}

/** TensorBoard finds event files by the `tfevents` in their name; one fixed name per run, so a rewrite replaces it. */
export const TENSORBOARD_FILE = 'events.out.tfevents.ingraph';
