/**
 * The common Kaggle form of MNIST: a CSV of `label,pixel0,...,pixel783` rows, with or without a header line. Parsed
 * byte by byte (a 60,000-row file is 110 MB of text), every field checked; errors name the file, line and column.
 */
import { readFileSync } from 'fs';
import { imageShape, MNIST_SIGNATURE, pixelsPerImage } from '../signature';
import { DataError } from './data-error';
import type { Dataset } from './mnist';

const IMAGE_SIZE = pixelsPerImage(MNIST_SIGNATURE);
const FIELDS = 1 + IMAGE_SIZE;

/** A dataset from a CSV file of `label,pixel0..pixel783` rows (an optional header line is skipped). */
export function readCsv(path: string): Dataset {
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
    if (content > pos) rows.push(parseRow(buf, pos, content, `${path}:${line}`));
    pos = end + 1;
  }
  if (rows.length === 0) throw new DataError(`${path}: no data rows`);
  const images = new Uint8Array(rows.length * IMAGE_SIZE);
  const labels = new Uint8Array(rows.length);
  rows.forEach((r, i) => {
    labels[i] = r[0];
    images.set(r.subarray(1), i * IMAGE_SIZE);
  });
  return { images, labels, count: rows.length, shape: imageShape(MNIST_SIGNATURE), classes: MNIST_SIGNATURE.classes };
}

/** One row `label,pixel0..pixelN` of buf[start, end) (an MNIST image): integers, pixels 0..255, a label. */
function parseRow(buf: Buffer, start: number, end: number, where: string): Uint8Array {
  const row = new Uint8Array(FIELDS);
  let field = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2c : buf[i];
    if (c === 0x2c) {
      if (digits === 0) throw new DataError(`${where}: column ${field + 1} is empty`);
      if (field === FIELDS)
        throw new DataError(`${where}: more than ${FIELDS} columns (a label and ${IMAGE_SIZE} pixels)`);
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
  if (field !== FIELDS)
    throw new DataError(`${where}: ${field} columns, expected ${FIELDS} (a label and ${IMAGE_SIZE} pixels)`);
  const top = MNIST_SIGNATURE.classes - 1;
  if (row[0] > top) throw new DataError(`${where}: label ${row[0]} is out of range 0..${top}`);
  return row;
}
