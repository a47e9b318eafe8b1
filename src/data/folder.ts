/**
 * Image folders as torchvision's ImageFolder reads them: `DIR/train/<class>/*` and `DIR/test/<class>/*`, classes
 * sorted by name, files sorted within a class, the extensions it takes. Decoded by sharp (libvips: PNG, JPEG, WebP,
 * TIFF, ...; its own thread pool decodes several files at once), to grey or RGB by the data's own channels or an
 * explicit count, every image the same size or resized to one. Memory: the uint8 pixels, allocated once from the
 * headers, plus the few files in flight.
 */
import { existsSync, readdirSync, statSync } from 'fs';
import { join } from 'path';
import sharp from 'sharp';
import { DataError } from './data-error';
import type { Dataset } from './mnist';

/** The file extensions torchvision's ImageFolder takes. */
const EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

/** How to make an image folder's images one shape: their channels and size. */
export interface FolderOptions {
  /** 1 (grey) or 3 (RGB); default: 3 if any image has colour, else 1. */
  channels?: 1 | 3;
  /** Every image resized to this [height, width]; default: they must all have one size. */
  resize?: readonly [number, number];
  /** Called as images are decoded (`done` of `total`), for a progress bar: a large folder takes a while. */
  onDecoded?: (done: number, total: number) => void;
}

/** Whether `dir` is an image folder: it has `train` and `test` sub-directories, each holding class directories. */
export function isImageFolder(dir: string): boolean {
  const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
  return ['train', 'test'].every(
    (s) => isDir(join(dir, s)) && readdirSync(join(dir, s)).some((c) => isDir(join(dir, s, c))),
  );
}

/** The classes of a split (sorted sub-directory names) and each class's image files (sorted). */
function listSplit(root: string): { classes: string[]; files: { path: string; label: number }[] } {
  const classes = readdirSync(root)
    .filter((c) => statSync(join(root, c)).isDirectory())
    .sort();
  const files = classes.flatMap((c, label) => {
    const images = readdirSync(join(root, c))
      .filter((f) => EXTENSIONS.some((e) => f.toLowerCase().endsWith(e)))
      .sort()
      .map((f) => ({ path: join(root, c, f), label }));
    if (images.length === 0)
      throw new DataError(`${join(root, c)}: an empty class folder (no ${EXTENSIONS.join(' ')} files)`);
    return images;
  });
  return { classes, files };
}

/** A file's header: its size and channels; a file sharp cannot read is named. */
async function header(path: string): Promise<{ width: number; height: number; channels: number }> {
  try {
    const m = await sharp(path).metadata();
    return { width: m.width, height: m.height, channels: m.channels - (m.hasAlpha ? 1 : 0) };
  } catch (e) {
    throw new DataError(`${path}: not an image ingraph can decode (${(e as Error).message})`);
  }
}

/** Runs `work` on every item, at most `limit` at a time, in order of start. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** The shape every image of `files` takes: the options', else the files' own (one size, the most channels). */
async function commonShape(files: readonly { path: string }[], o: FolderOptions): Promise<[number, number, number]> {
  const heads = new Array<{ width: number; height: number; channels: number }>(files.length);
  await eachLimited(files, 16, async (f, i) => void (heads[i] = await header(f.path)));
  const channels = o.channels ?? (heads.some((h) => h.channels >= 3) ? 3 : 1);
  if (o.resize) return [channels, o.resize[0], o.resize[1]];
  const first = heads[0];
  const odd = heads.findIndex((h) => h.width !== first.width || h.height !== first.height);
  if (odd >= 0) {
    const sizes = `${heads[odd].height}x${heads[odd].width}, not ${first.height}x${first.width} as ${files[0].path}`;
    throw new DataError(`${files[odd].path}: ${sizes}; images of mixed sizes need the resize option (HxW)`);
  }
  return [channels, first.height, first.width];
}

/** One image decoded to `shape`'s channels and size, as channel planes (C, H, W). */
async function decode(path: string, [channels, height, width]: readonly [number, number, number]): Promise<Uint8Array> {
  let image = sharp(path).removeAlpha();
  image = channels === 1 ? image.grayscale() : image.toColourspace('srgb');
  const { data, info } = await image
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((e: Error) => {
      throw new DataError(`${path}: cannot be decoded (${e.message})`);
    });
  if (info.channels !== channels) throw new DataError(`${path}: decoded to ${info.channels} channels, not ${channels}`);
  // sharp gives pixels interleaved (HWC); the graphs take planes (CHW).
  const plane = height * width;
  const planes = new Uint8Array(channels * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) planes[c * plane + i] = data[i * channels + c];
  return planes;
}

/**
 * The `split` of the image folder `dir` (its first `limit` files, where given): the training split decides the
 * images' shape; the test split must have its classes and size.
 */
export async function readImageFolder(
  dir: string,
  split: 'train' | 'test',
  o: FolderOptions = {},
  limit?: number,
): Promise<Dataset> {
  const train = listSplit(join(dir, 'train'));
  const listed = split === 'train' ? train : listSplit(join(dir, 'test'));
  const { classes } = listed;
  if (classes.join('\n') !== train.classes.join('\n')) {
    const theirs = `classes ${classes.join(', ')}, not the training split's ${train.classes.join(', ')}`;
    throw new DataError(`${join(dir, 'test')}: ${theirs}`);
  }
  const files = listed.files.slice(0, limit);
  const shape = await commonShape(train.files.slice(0, split === 'train' ? limit : undefined), o);
  if (split === 'test') {
    const own = await commonShape(files, { channels: shape[0] as 1 | 3, resize: o.resize });
    if (own[1] !== shape[1] || own[2] !== shape[2]) {
      const sizes = `${own[1]}x${own[2]} images, the training split ${shape[1]}x${shape[2]}`;
      throw new DataError(`${join(dir, 'test')}: ${sizes}; the resize option (HxW) takes both`);
    }
  }
  const size = shape[0] * shape[1] * shape[2];
  const images = new Uint8Array(files.length * size);
  let done = 0;
  await eachLimited(files, 16, async (f, i) => {
    images.set(await decode(f.path, shape), i * size);
    o.onDecoded?.(++done, files.length);
  });
  const labels = Uint8Array.from(files, (f) => f.label);
  return { images, labels, count: files.length, shape, classes: classes.length, classNames: classes };
}
