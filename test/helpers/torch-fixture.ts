/** Loads the PyTorch reference values written by tools/make_torch_fixtures.py. */
import { readFileSync } from 'fs';
import { join } from 'path';

export interface TorchFixture {
  config: { optimizer: 'sgd' | 'adamw'; lr: number; momentum?: number; weightDecay: number };
  batch: number;
  losses: number[];
  get(key: string): Float32Array;
  images(): Uint8Array;
  labels(): BigInt64Array;
  /** A uint8 tensor by key. */
  uint8(key: string): Uint8Array;
  keys(prefix: string): string[];
}

export function loadTorchFixture(net: string, optimizer: string): TorchFixture {
  return loadFixture(join(__dirname, '..', 'fixtures', `torch_step_${net}_${optimizer}`));
}

/** A fixture of tools/make_*_fixture*.py at `base` (the path without .json / .bin). */
export function loadFixture(base: string): TorchFixture {
  const index = JSON.parse(readFileSync(`${base}.json`, 'utf8'));
  const bin = readFileSync(`${base}.bin`);
  const entry = (key: string) => {
    const e = index.tensors[key];
    if (!e) throw new Error(`fixture ${base}: no tensor ${key}`);
    const count = e.shape.reduce((a: number, b: number) => a * b, 1);
    return { e, count };
  };
  const bytes = (offset: number, length: number) =>
    new Uint8Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + length));
  const losses = Object.keys(index)
    .filter((k) => /^loss\d+$/.test(k))
    .sort()
    .map((k) => index[k]);
  return {
    config: index.config,
    batch: index.batch,
    losses,
    get(key) {
      const { e, count } = entry(key);
      return new Float32Array(bytes(e.offset, count * 4).buffer);
    },
    images() {
      const { e, count } = entry('images');
      return bytes(e.offset, count);
    },
    uint8(key) {
      const { e, count } = entry(key);
      return bytes(e.offset, count);
    },
    labels() {
      const { e, count } = entry('labels');
      return BigInt64Array.from(bytes(e.offset, count), (v) => BigInt(v));
    },
    keys(prefix) {
      return Object.keys(index.tensors)
        .filter((k) => k.startsWith(prefix))
        .map((k) => k.slice(prefix.length));
    },
  };
}

/** max |a - b| / max |b|: the relative error of a whole tensor. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

/**
 * The tensors of `ours` farther from fixture `fx`'s float64 values after `steps` steps (`param<steps>/<name>` and
 * `running<steps>/<name>`) than `multiple` times PyTorch float32's own distance to them (`..._f32/`), or 1e-6: what
 * a K-step parity test expects to be empty. Also how many tensors were compared.
 */
export function fartherThanTorch32(
  fx: TorchFixture,
  steps: number,
  ours: Map<string, Float32Array>,
  multiple = 5,
): { far: string[]; compared: number } {
  const keys = ['param', 'running'].flatMap((kind) => fx.keys(`${kind}${steps}/`).map((k) => `${kind}${steps}/${k}`));
  const far = keys.filter((key) => {
    const name = key.slice(key.indexOf('/') + 1);
    const [f64, f32] = [fx.get(key), fx.get(key.replace('/', '_f32/'))];
    const theirs = ours.get(name);
    return !theirs || !(relError(theirs, f64) <= Math.max(multiple * relError(f32, f64), 1e-6));
  });
  return { far, compared: keys.length };
}
