/**
 * The CIFAR binary formats: CIFAR-10 (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`; records of a label
 * byte then 3072 pixel bytes, 1024 R, 1024 G, 1024 B, rows of 32; class names in `batches.meta.txt`) and CIFAR-100
 * (`train.bin`, `test.bin`; records of a coarse and a fine label byte then the pixels; the fine labels are the
 * classes, named in `fine_label_names.txt`). Every file is checked: a whole number of records, labels in range.
 */
import { existsSync, readFileSync, statSync } from 'fs';
import { join } from 'path';
import { DataError } from './data-error';
import type { Dataset } from './mnist';

const SHAPE = [3, 32, 32] as const;
const PIXELS = 3 * 32 * 32;

/** A CIFAR layout: its files per split, the label bytes before each image and which one is the class, its names. */
interface Layout {
  name: string;
  files: { train: string[]; test: string[] };
  labelBytes: number;
  /** The label byte that is the class (CIFAR-100: the fine label, after the coarse one). */
  classByte: number;
  classes: number;
  namesFile: string;
}

const CIFAR10: Layout = {
  name: 'CIFAR-10',
  files: { train: [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`), test: ['test_batch.bin'] },
  labelBytes: 1,
  classByte: 0,
  classes: 10,
  namesFile: 'batches.meta.txt',
};

const CIFAR100: Layout = {
  name: 'CIFAR-100',
  files: { train: ['train.bin'], test: ['test.bin'] },
  labelBytes: 2,
  classByte: 1,
  classes: 100,
  namesFile: 'fine_label_names.txt',
};

/** The CIFAR layout of `dir`, when it holds one (by its test file). */
export function cifarLayout(dir: string): Layout | null {
  return [CIFAR10, CIFAR100].find((l) => existsSync(join(dir, l.files.test[0]))) ?? null;
}

/** The class names of a layout's names file, one a line (blank lines dropped); null when there is no such file. */
function classNames(dir: string, layout: Layout): string[] | null {
  const path = join(dir, layout.namesFile);
  if (!existsSync(path)) return null;
  const names = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  if (names.length !== layout.classes)
    throw new DataError(`${path}: ${names.length} class names, expected ${layout.classes} for ${layout.name}`);
  return names;
}

/** The number of records of one file, from its size: a whole number of them. */
function recordCount(path: string, layout: Layout): number {
  if (!existsSync(path)) throw new DataError(`${path}: no such file (a ${layout.name} directory holds it)`);
  const bytes = statSync(path).size;
  const record = layout.labelBytes + PIXELS;
  if (bytes === 0 || bytes % record !== 0)
    throw new DataError(`${path}: ${bytes} bytes, not a whole number of ${layout.name} records of ${record} bytes`);
  return bytes / record;
}

/** Copies the records of one file into `images` and `labels` from record `at`, each label checked. */
function readRecords(path: string, layout: Layout, images: Uint8Array, labels: Uint8Array, at: number): number {
  const buf = readFileSync(path);
  const record = layout.labelBytes + PIXELS;
  const count = buf.length / record;
  for (let i = 0; i < count; i++) {
    const label = buf[i * record + layout.classByte];
    if (label >= layout.classes)
      throw new DataError(`${path}: record ${i} has label ${label}, beyond ${layout.name}'s ${layout.classes} classes`);
    labels[at + i] = label;
    images.set(buf.subarray(i * record + layout.labelBytes, (i + 1) * record), (at + i) * PIXELS);
  }
  return count;
}

/** The training or test split of a CIFAR directory, its files read in order. */
export function readCifar(dir: string, layout: Layout, split: 'train' | 'test'): Dataset {
  // Sized from the files first, so memory holds the pixels once and one file at a time beside them.
  const paths = layout.files[split].map((f) => join(dir, f));
  const count = paths.reduce((n, p) => n + recordCount(p, layout), 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  paths.reduce((at, p) => at + readRecords(p, layout, images, labels, at), 0);
  const names = classNames(dir, layout);
  return { images, labels, count, shape: SHAPE, classes: layout.classes, ...(names ? { classNames: names } : {}) };
}
