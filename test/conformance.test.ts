/**
 * The exported model everywhere: trained weights of both networks, written for every opset from 11 to 17, checked by
 * the ONNX checker and run by onnxruntime-node, onnxruntime-web (wasm, in Node and in headless Chromium; opsets 11
 * and 17) and OpenCV's DNN module (which shares no code with onnxruntime; every opset): the same labels and logits
 * within 1e-4 on 1,000 test images. A runtime that is absent
 * is skipped with a warning; .ci/run installs them all.
 */
import { spawnSync } from 'child_process';
import { existsSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import * as ort from 'onnxruntime-node';
import {
  EXPORT_OPSETS,
  NETWORKS,
  Trainer,
  buildInferenceModel,
  defaultMnistDir,
  readDataset,
  trainConfig,
} from 'ingraph';
import { CHROMIUM, browserLogits } from './helpers/browser';
import { MNIST_DIR, ROOT, rawImages, tempDir } from './helpers/cli';

const PYTHON = '/usr/bin/python3';
const N = 1000;
const IMAGES = join(MNIST_DIR, 't10k-images-idx3-ubyte');
const WEB_VERSION = JSON.parse(
  readFileSync(join(ROOT, 'node_modules', 'onnxruntime-web', 'package.json'), 'utf8'),
).version;
const has = (module: string) => spawnSync(PYTHON, ['-c', `import ${module}`]).status === 0;
const hasOpenCv = has('cv2');
const hasOnnx = has('onnx');
if (!hasOpenCv)
  console.warn(
    'conformance.test.ts: /usr/bin/python3 has no cv2 (apt-get install python3-opencv); the OpenCV runs are skipped',
  );
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn('conformance.test.ts: no /usr/bin/chromium (apt-get install chromium); the browser runs are skipped');
if (!hasOnnx)
  console.warn(
    'conformance.test.ts: /usr/bin/python3 has no onnx (apt-get install python3-onnx); the checker runs are skipped',
  );

interface Result {
  runtime: string;
  net: string;
  opset: number;
  maxDiff: number;
  labelsEqual: boolean;
}

/** Both networks after 30 steps on 1,920 training images, exported at every opset. */
async function exports(dir: string): Promise<{ net: 'inception' | 'residual'; opset: number; path: string }[]> {
  const mnist = defaultMnistDir();
  const files: { net: 'inception' | 'residual'; opset: number; path: string }[] = [];
  for (const net of ['inception', 'residual'] as const) {
    const trainer = await Trainer.create({
      network: net,
      config: trainConfig(net, { maxSteps: 30, momentum: 0.9 }),
      train: readDataset(mnist, 'train', 1920),
      test: readDataset(mnist, 'test', 10),
      threads: 2,
    });
    await trainer.fit();
    const params = trainer.params();
    await trainer.release();
    for (const opset of EXPORT_OPSETS) {
      const path = join(dir, `${net}-opset${opset}.onnx`);
      writeFileSync(path, buildInferenceModel(NETWORKS[net], params, {}, opset));
      files.push({ net, opset, path });
    }
  }
  return files;
}

function compare(
  runtime: string,
  f: { net: string; opset: number },
  logits: ArrayLike<number>,
  reference: Float32Array,
): Result {
  let maxDiff = 0;
  let labelsEqual = true;
  for (let i = 0; i < N; i++) {
    let [a, b] = [0, 0];
    for (let k = 0; k < 10; k++) {
      maxDiff = Math.max(maxDiff, Math.abs(logits[i * 10 + k] - reference[i * 10 + k]));
      if (logits[i * 10 + k] > logits[i * 10 + a]) a = k;
      if (reference[i * 10 + k] > reference[i * 10 + b]) b = k;
    }
    labelsEqual &&= a === b;
  }
  return { runtime, net: f.net, opset: f.opset, maxDiff, labelsEqual };
}

describe('the exported model in other runtimes and opsets', () => {
  it('same labels and logits within 1e-4 on 1,000 test images: both nets, opsets 11-17, four runtimes', async () => {
    const dir = tempDir();
    const files = await exports(dir);
    const images = rawImages(MNIST_DIR).slice(0, N * 784);
    const native = new Map<string, Float32Array>();
    for (const f of files) {
      const session = await ort.InferenceSession.create(readFileSync(f.path), { intraOpNumThreads: 1 });
      native.set(
        f.path,
        (await session.run({ images: new ort.Tensor('uint8', images, [N, 1, 28, 28]) })).logits.data as Float32Array,
      );
      await session.release();
    }
    const results: Result[] = [];
    // onnxruntime-web shares onnxruntime's kernels, whatever the opset: the first and the last opset suffice.
    const webFiles = files.filter(
      (f) => f.opset === EXPORT_OPSETS[0] || f.opset === EXPORT_OPSETS[EXPORT_OPSETS.length - 1],
    );
    const web = spawnSync(
      process.execPath,
      [join(ROOT, 'test', 'helpers', 'web-logits.js'), IMAGES, String(N), ...webFiles.map((f) => f.path)],
      { encoding: 'utf8', maxBuffer: 1 << 28 },
    );
    expect(web.stderr).toBe('');
    web.stdout
      .trim()
      .split('\n')
      .forEach((line, i) =>
        results.push(
          compare(
            `onnxruntime-web ${WEB_VERSION} (wasm)`,
            webFiles[i],
            JSON.parse(line).logits,
            native.get(webFiles[i].path) as Float32Array,
          ),
        ),
      );
    if (hasChromium) {
      const chrome = await browserLogits(
        webFiles.map((f) => f.path),
        images,
        N,
      );
      chrome.logits.forEach((l, i) =>
        results.push(
          compare(
            `onnxruntime-web ${WEB_VERSION} (wasm) in Chromium ${chrome.version}`,
            webFiles[i],
            l,
            native.get(webFiles[i].path) as Float32Array,
          ),
        ),
      );
    }
    if (hasOpenCv) {
      const cv = spawnSync(
        PYTHON,
        [join(ROOT, 'test', 'helpers', 'opencv_logits.py'), IMAGES, String(N), ...files.map((f) => f.path)],
        { encoding: 'utf8' },
      );
      expect(cv.stderr).toBe('');
      for (const f of files) {
        const raw = readFileSync(`${f.path}.opencv.bin`);
        results.push(
          compare(
            `OpenCV ${cv.stdout.trim()} DNN`,
            f,
            new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4),
            native.get(f.path) as Float32Array,
          ),
        );
      }
    }
    if (hasOnnx) {
      const check = spawnSync(
        PYTHON,
        [
          '-c',
          'import onnx, sys\nfor f in sys.argv[1:]: onnx.checker.check_model(onnx.load(f), full_check=True)',
          ...files.map((f) => f.path),
        ],
        { encoding: 'utf8' },
      );
      expect(check.stderr).toBe('');
    }
    console.log(
      [
        'runtime | net | opset | max logit diff | labels',
        ...results.map(
          (r) =>
            `${r.runtime} | ${r.net} | ${r.opset} | ${r.maxDiff.toExponential(1)} | ${r.labelsEqual ? 'equal' : 'DIFFER'}`,
        ),
      ].join('\n'),
    );
    for (const r of results)
      expect([r.runtime, r.net, r.opset, r.maxDiff < 1e-4, r.labelsEqual]).toEqual([
        r.runtime,
        r.net,
        r.opset,
        true,
        true,
      ]);
  });
});
