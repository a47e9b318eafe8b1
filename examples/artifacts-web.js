// Runs training steps of ingraph's training artifacts with onnxruntime-web alone (no ingraph code): the program a
// browser application would write. Load onnxruntime-web (ort.min.js) first; then
//   const run = await trainArtifacts(trainingModelBytes, checkpointBytes, batches, lr);
// where each batch is { images: Uint8Array (N·C·H·W), labels: BigInt64Array (N), n }. Returns the losses and the
// final tensors by name (parameters, optimizer state, BatchNorm statistics). The interface is in docs/import.md.
'use strict';

/**
 * The float32 initializers of an ONNX file (a checkpoint), by name: ModelProto field 7 (graph) → GraphProto field 5
 * (initializer) → TensorProto dims (1), data_type (2), name (8), raw_data (9) or float_data (4).
 */
function readInitializers(bytes) {
  let at = 0;
  const varint = () => {
    let [v, scale] = [0, 1];
    for (;;) {
      const b = bytes[at++];
      v += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return v;
    }
  };
  const fields = (end, visit) => {
    while (at < end) {
      const tag = varint();
      const [field, wire] = [Math.floor(tag / 8), tag % 8];
      if (wire === 0) visit(field, 0, varint());
      else if (wire === 1 || wire === 5) at += wire === 1 ? 8 : 4;
      else if (wire === 2) {
        const length = varint();
        const next = at + length;
        visit(field, 2, at, next);
        at = next;
      } else throw new Error(`wire type ${wire}`);
    }
  };
  const tensors = new Map();
  fields(bytes.length, (field, wire, start, end) => {
    if (field !== 7 || wire !== 2) return;
    at = start;
    fields(end, (f, w, s, e) => {
      if (f !== 5 || w !== 2) return;
      const t = { dims: [], name: '', data: null, type: 0 };
      at = s;
      fields(e, (tf, tw, ts, te) => {
        if (tf === 1 && tw === 0) t.dims.push(ts);
        else if (tf === 1 && tw === 2) for (at = ts; at < te;) t.dims.push(varint());
        else if (tf === 2 && tw === 0) t.type = ts;
        else if (tf === 8) t.name = new TextDecoder().decode(bytes.subarray(ts, te));
        else if ((tf === 9 || tf === 4) && tw === 2) t.data = new Float32Array(bytes.slice(ts, te).buffer);
      });
      at = e;
      if (t.type === 1) tensors.set(t.name, new ort.Tensor('float32', t.data ?? new Float32Array(0), t.dims));
    });
    at = end;
  });
  return tensors;
}

async function trainArtifacts(trainingModel, checkpoint, batches, lr) {
  const session = await ort.InferenceSession.create(trainingModel, { executionProviders: ['wasm'] });
  const imagesDims = session.inputMetadata.find((i) => i.name === 'images').shape;
  const feeds = Object.fromEntries(readInitializers(checkpoint));
  feeds.lr = new ort.Tensor('float32', Float32Array.of(lr), []);
  const losses = [];
  for (const b of batches) {
    feeds.images = new ort.Tensor('uint8', b.images, [b.n, ...imagesDims.slice(1)]);
    feeds.labels = new ort.Tensor('int64', b.labels, [b.n]);
    const out = await session.run(feeds);
    // Each updated.<name> output is the next step's <name> input: parameters, optimizer state, BatchNorm statistics.
    for (const name of session.outputNames) if (name.startsWith('updated.')) feeds[name.slice(8)] = out[name];
    losses.push(out.loss.data[0]);
  }
  await session.release();
  const tensors = {};
  for (const name of session.inputNames)
    if (!['images', 'labels', 'lr'].includes(name)) tensors[name] = Array.from(feeds[name].data);
  return { losses, tensors };
}
