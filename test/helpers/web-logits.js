// Prints the logits and labels of an ONNX model for the first N test images, computed by onnxruntime-web's wasm
// backend in Node. Run as a child process: onnxruntime-web loads its wasm glue as an ES module, which jest's
// CommonJS sandbox cannot import.
const { readFileSync } = require('fs');
const ort = require('onnxruntime-web');

(async () => {
  const [model, imagesFile, n] = process.argv.slice(2);
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(model), { executionProviders: ['wasm'] });
  const images = new Uint8Array(readFileSync(imagesFile).subarray(16, 16 + Number(n) * 784));
  const out = await session.run({ images: new ort.Tensor('uint8', images, [Number(n), 1, 28, 28]) });
  process.stdout.write(JSON.stringify({ logits: Array.from(out.logits.data), label: Array.from(out.label.data, Number) }));
})().catch((e) => {
  process.stderr.write(String(e));
  process.exit(1);
});
