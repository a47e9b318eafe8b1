// Prints the logits and labels of ONNX models for the first N test images, computed by onnxruntime-web's wasm
// backend in Node: `web-logits.js IMAGES_IDX N MODEL...`, one JSON line per model. Run as a child process:
// onnxruntime-web loads its wasm glue as an ES module, which jest's CommonJS sandbox cannot import.
const { readFileSync } = require('fs');
const ort = require('onnxruntime-web');

(async () => {
  const [imagesFile, n, ...models] = process.argv.slice(2);
  ort.env.wasm.numThreads = 1;
  const images = new Uint8Array(readFileSync(imagesFile).subarray(16, 16 + Number(n) * 784));
  for (const model of models) {
    const session = await ort.InferenceSession.create(readFileSync(model), { executionProviders: ['wasm'] });
    const out = await session.run({ images: new ort.Tensor('uint8', images, [Number(n), 1, 28, 28]) });
    process.stdout.write(
      `${JSON.stringify({ model, logits: Array.from(out.logits.data), label: Array.from(out.label.data, Number) })}\n`,
    );
    await session.release();
  }
})().catch((e) => {
  process.stderr.write(String(e));
  process.exit(1);
});
