/** A PNG encoder for grey and RGB images: enough to draw test images into a report as data URLs, no image library. */
import { crc32, deflateSync } from 'zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit grayscale PNG of `pixels` (row-major, 0 black to 255 white). */
export function grayPng(pixels: Uint8Array, width: number, height: number): Buffer {
  if (pixels.length !== width * height) throw new RangeError(`grayPng: ${pixels.length} pixels for ${width}x${height}`);
  return png(pixels, width, height, 1);
}

/** An 8-bit RGB PNG of an image stored as channel planes (R, G, B, each row-major), as CHW tensors hold it. */
export function rgbPng(planes: Uint8Array, width: number, height: number): Buffer {
  const plane = width * height;
  if (planes.length !== 3 * plane) throw new RangeError(`rgbPng: ${planes.length} values for 3x${width}x${height}`);
  const interleaved = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) interleaved[3 * i + c] = planes[c * plane + i];
  return png(interleaved, width, height, 3);
}

/** A PNG of interleaved 8-bit `pixels` with 1 (grey) or 3 (RGB) channels. */
function png(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth; then the colour type, deflate, no filter method, no interlace
  header[9] = channels === 3 ? 2 : 0;
  const stride = width * channels;
  // Each row starts with its filter type, 0 (none).
  const rows = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) rows.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An image of C = 1 (grey) or 3 (RGB) channel planes as a PNG data URL. */
export function imagePngUrl(pixels: Uint8Array, [c, h, w]: readonly [number, number, number]): string {
  const bytes = c === 3 ? rgbPng(pixels, w, h) : grayPng(pixels.subarray(0, h * w), w, h);
  return `data:image/png;base64,${bytes.toString('base64')}`;
}
