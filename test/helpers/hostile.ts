/**
 * Crafted ONNX files that a reader must refuse in bounded memory and time: tensors claiming more data than the file
 * holds, broken protobuf framing, messages nested deeper than any stack, data in external files, and files that are
 * not regular files or are larger than ingraph reads. Written with the protobuf wire format by hand (and onnx-proto
 * for the well-formed parts), independently of src/onnx.
 */
import { execFileSync } from 'child_process';
import { closeSync, openSync, ftruncateSync, writeFileSync } from 'fs';
import { join } from 'path';
import { onnx } from 'onnx-proto';

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

/** A model whose only content is one initializer built from `t`. */
function modelWith(t: onnx.ITensorProto): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'g', initializer: [{ name: 'conv1.weight', ...t }] },
  }).finish();
}

/** ModelProto.graph → GraphProto.node → NodeProto.attribute → AttributeProto.g → GraphProto ..., `depth` times. */
function deeplyNested(depth: number): Buffer {
  // Lengths from the innermost graph (empty) outwards, then the bytes from the outside in.
  const lengths: [number, number, number][] = []; // [node, attribute, inner graph] lengths per level
  let graph = 0;
  for (let i = 0; i < depth; i++) {
    const attr = 1 + varint(graph).length + graph;
    const node = 1 + varint(attr).length + attr;
    lengths.push([node, attr, graph]);
    graph = 1 + varint(node).length + node;
  }
  const bytes: number[] = [0x08, 8, 0x42, 2, 0x10, 17, 0x3a, ...varint(graph)]; // ir_version, opset_import, graph
  for (let i = depth - 1; i >= 0; i--) {
    const [node, attr, inner] = lengths[i];
    bytes.push(0x0a, ...varint(node), 0x2a, ...varint(attr), 0x32, ...varint(inner));
  }
  return Buffer.from(bytes);
}

export interface HostileFile {
  name: string;
  path: string;
  /** What the one-line refusal must say after the file's name. */
  message: RegExp;
}

export function writeHostileFiles(dir: string): HostileFile[] {
  const files: [string, Uint8Array | null, RegExp][] = [
    [
      'huge-dims.onnx',
      modelWith({ dataType: 1, dims: [2 ** 40, 2 ** 40], rawData: new Uint8Array(8) }),
      /tensor "conv1\.weight" holds 2 values for shape/,
    ],
    [
      'overflowing-dims.onnx',
      modelWith({ dataType: 1, dims: [2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31], rawData: new Uint8Array(16) }),
      /holds 4 values for shape/,
    ],
    [
      'negative-dims.onnx',
      modelWith({ dataType: 1, dims: [-4, -1], rawData: new Uint8Array(16) }),
      /holds 4 values for shape \[-4,-1\]/,
    ],
    [
      'ragged-raw-data.onnx',
      modelWith({ dataType: 1, dims: [2], rawData: new Uint8Array(7) }),
      /7 bytes of float32 data, not a whole number of values/,
    ],
    [
      'external-data.onnx',
      modelWith({ dataType: 1, dims: [4], dataLocation: 1, externalData: [{ key: 'location', value: '/etc/passwd' }] }),
      /keeps its data in an external file/,
    ],
    ['truncated-varint.onnx', Uint8Array.from([0x08, 8, 0x3a, 0xff, 0xff]), /not an ONNX model \(index out of range/],
    [
      'huge-length.onnx',
      Uint8Array.from([0x08, 8, 0x3a, ...varint(2 ** 40)]),
      /not an ONNX model \(index out of range/,
    ],
    ['deep-nesting.onnx', deeplyNested(200_000), /not an ONNX model \(nested too deeply\)/],
    ['oversized.onnx', null, /\d+ bytes, more than the 536870912 bytes ingraph reads from one file/],
    ['fifo.onnx', null, /not a regular file/],
  ];
  return files.map(([name, bytes, message]) => {
    const path = join(dir, name);
    if (bytes) writeFileSync(path, bytes);
    else if (name === 'fifo.onnx') execFileSync('mkfifo', [path]);
    else {
      const fd = openSync(path, 'w'); // sparse: claims 600 MB, occupies nothing
      ftruncateSync(fd, 600 * 1024 * 1024);
      closeSync(fd);
    }
    return { name, path, message };
  });
}
