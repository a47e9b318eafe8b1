/**
 * Images as CSV rows `label,pixel0,...,pixelN`, with or without a header line: the common Kaggle form of MNIST
 * (784 pixels, labels 0..9) by default, or images of a given [C,H,W] (pixels channel plane by plane, the classes as
 * many as the largest label says). Parsed byte by byte (a 60,000-row file is 110 MB of text), every field checked;
 * errors name the file, line and column.
 */
import { readFileSync } from 'fs';
import { imageShape, MNIST_SIGNATURE, pixelsPerImage } from '../signature';
import { DataError } from './data-error';
import type { Dataset } from './mnist';

/** A dataset from a CSV file of `label,pixel...` rows of images of `shape` (default MNIST's); a header is skipped. */
export function readCsv(path: string, shape?: readonly [number, number, number]): Dataset {
  const pixels = shape ? shape[0] * shape[1] * shape[2] : pixelsPerImage(MNIST_SIGNATURE);
  const topLabel = shape ? 255 : MNIST_SIGNATURE.classes - 1;
  const buf = readFileSync(path);
  let pos = 0;
  let line = 1;
  // A header line starts with a letter ("label,pixel0,...").
  if (buf.length > 0 && /[A-Za-z]/.test(String.fromCharCode(buf[0]))) {
    pos = buf.indexOf(0x0a) + 1 || buf.length;
    line = 2;
  }
  const rows: Uint8Array[] = [];
  for (; pos < buf.length; line++) {
    const newline = buf.indexOf(0x0a, pos);
    const end = newline === -1 ? buf.length : newline;
    const content = buf[end - 1] === 0x0d ? end - 1 : end; // CRLF line ends
    if (content > pos) rows.push(parseRow(buf, pos, content, `${path}:${line}`, pixels, topLabel));
    pos = end + 1;
  }
  if (rows.length === 0) throw new DataError(`${path}: no data rows`);
  const images = new Uint8Array(rows.length * pixels);
  const labels = new Uint8Array(rows.length);
  rows.forEach((r, i) => {
    labels[i] = r[0];
    images.set(r.subarray(1), i * pixels);
  });
  const classes = shape ? labels.reduce((m, l) => Math.max(m, l), 0) + 1 : MNIST_SIGNATURE.classes;
  return { images, labels, count: rows.length, shape: shape ? [...shape] : imageShape(MNIST_SIGNATURE), classes };
}

/** One row `label,pixel0..pixelN` of buf[start, end): integers, `pixels` pixels 0..255, a label up to `top`. */
function parseRow(buf: Buffer, start: number, end: number, where: string, pixels: number, top: number): Uint8Array {
  const fields = 1 + pixels;
  const row = new Uint8Array(fields);
  let field = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2c : buf[i];
    if (c === 0x2c) {
      if (digits === 0) throw new DataError(`${where}: column ${field + 1} is empty`);
      if (field === fields) throw new DataError(`${where}: more than ${fields} columns (a label and ${pixels} pixels)`);
      row[field++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      digits++;
      if (value > 255) throw new DataError(`${where}: column ${field + 1}: a value over 255`);
    } else {
      throw new DataError(
        `${where}: column ${field + 1}: "${String.fromCharCode(c)}" is not part of a non-negative integer`,
      );
    }
  }
  if (field !== fields)
    throw new DataError(`${where}: ${field} columns, expected ${fields} (a label and ${pixels} pixels)`);
  if (row[0] > top) throw new DataError(`${where}: label ${row[0]} is out of range 0..${top}`);
  return row;
}
