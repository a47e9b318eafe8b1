/**
 * `ingraph serve` and the browser page, in Debian's headless Chromium (playwright-core): a test digit drawn on the
 * canvas gets the label a trained model gives it; a file that is not a model, and a model with the wrong input, get
 * a clear message; the residual net's training graph trains in the page with a falling loss, and the model it
 * exports scores the same in Node; on WebGPU (Chromium's software adapter) a drawn digit gets the wasm path's
 * probabilities; a model of RGB images classifies a chosen PNG as onnxruntime-node does; the server answers only
 * its own files and stops on SIGTERM. Screenshots land in artifacts/screenshots/. Skipped, with a warning, without
 * /usr/bin/chromium.
 */
import { spawn } from 'child_process';
import { existsSync, mkdirSync, writeFileSync } from 'fs';
import { get, request } from 'http';
import { join } from 'path';
import { GraphBuilder, Trainer, defaultMnistDir, encodeModel, evaluateModel, readDataset, trainConfig } from 'ingraph';
import * as ort from 'onnxruntime-node';
import { PNG } from 'pngjs';
import { parseModel } from '../src/onnx/model';
import { Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from './helpers/browser';
import { CIFAR_NAMES, cifarDir } from './helpers/cifar';
import { CLI, MNIST_DIR, ROOT, rawImages, rawLabels, tempDir } from './helpers/cli';

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn('serve.test.ts: no /usr/bin/chromium (apt-get install chromium); the browser page tests are skipped');
const SHOTS = join(ROOT, 'artifacts', 'screenshots');

let trained: Promise<string> | null = null;

/** An inference model of the residual net after 150 steps on 9,600 MNIST images (it reads test image 0 as a 7), trained once. */
function digitModel(): Promise<string> {
  trained ??= (async () => {
    const mnist = defaultMnistDir();
    const trainer = await Trainer.create({
      network: 'residual',
      config: trainConfig('residual', { maxSteps: 150, momentum: 0.9 }),
      train: readDataset(mnist, 'train', 9600),
      test: readDataset(mnist, 'test', 10),
      threads: 2,
    });
    await trainer.fit();
    const model = join(tempDir(), 'inference.onnx');
    writeFileSync(model, trainer.exportModel());
    await trainer.release();
    return model;
  })();
  return trained;
}

function startServer(args: string[]): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(d.toString());
      if (m) resolve({ url: m[1], stop: () => (child.kill('SIGTERM'), exit) });
    });
  });
}

function fetchBytes(url: string): Promise<Buffer> {
  return new Promise((resolve) =>
    get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    }),
  );
}

function status(url: string): Promise<number> {
  return new Promise((resolve) => get(url, (res) => (res.resume(), resolve(res.statusCode ?? 0))));
}

describe('ingraph serve', () => {
  it('serves its own files only: traversal, encoded traversal and directories get 404; SIGTERM stops it (exit 0)', async () => {
    const server = await startServer([]);
    for (const path of ['', 'app.js', 'ort/ort.min.js'])
      expect([path, await status(server.url + path)]).toEqual([path, 200]);
    for (const path of [
      '../../etc/passwd',
      '%2e%2e/%2e%2e/etc/passwd',
      '..%2f..%2fetc%2fpasswd',
      'ort/',
      'ort/..%2fpackage.json',
      'web/',
      'model.onnx',
      'src/cli.ts',
    ]) {
      expect([path, await status(server.url + path)]).toEqual([path, 404]);
    }
    const post = await new Promise<number>((resolve) => {
      const req = request(
        `${server.url}train/export`,
        { method: 'POST' },
        (res) => (res.resume(), resolve(res.statusCode ?? 0)),
      );
      req.end(Buffer.alloc(10));
    });
    expect(post).toBe(404); // not the residual net's weights
    expect(await server.stop()).toBe(0);
  });
});

(hasChromium ? describe : describe.skip)('the browser page', () => {
  it('classifies a drawn test digit, explains bad model files, trains in the browser and exports what it trained', async () => {
    const dir = tempDir();
    const model = await digitModel();
    const notModel = join(dir, 'notes.onnx');
    writeFileSync(notModel, 'this is not a model\n');
    const wrongInput = join(dir, 'wrong-input.onnx');
    const g = new GraphBuilder();
    g.output(g.relu(g.input('pixels', 'float32', ['N', 784])), 'probabilities');
    writeFileSync(wrongInput, encodeModel(g, { graphName: 'wrong' }));
    const digit = rawImages(MNIST_DIR).slice(0, 784); // test image 0, a 7
    expect(rawLabels(MNIST_DIR)[0]).toBe(7);

    const server = await startServer(['--model-file', model]);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
      await page.goto(server.url);
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('model:'));
      await drawDigit(page, digit);
      expect(await page.textContent('#label')).toBe('7');
      expect(await page.locator('#bars li').count()).toBe(10);
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'page-digit.png') });

      await page.setInputFiles('#file', notModel);
      await page.waitForFunction(() => document.getElementById('status')?.className === 'error');
      expect(await page.textContent('#status')).toMatch(/^notes\.onnx: not an ONNX model this page can run/);
      await page.setInputFiles('#file', wrongInput);
      await page.waitForFunction(() => /wrong-input/.test(document.getElementById('status')?.textContent ?? ''));
      expect(await page.textContent('#status')).toMatch(
        /^wrong-input\.onnx: expected an input "images" \(uint8 \[N,C,H,W\]\) and an output "probabilities" \(\[N,K\]\); found inputs pixels/,
      );
      await page.screenshot({ path: join(SHOTS, 'page-bad-model.png') });

      // Train in the browser: 20 steps of the residual net's training graph, then export and score.
      const run = await trainInPage(page, 20);
      expect(run.losses).toHaveLength(20);
      expect(run.losses[19]).toBeLessThan(run.losses[0] - 0.1);
      console.log(
        `browser training: ${run.stepsPerSecond.toFixed(1)} steps/s, loss ${run.losses[0].toFixed(3)} -> ${run.losses[19].toFixed(3)}, accuracy ${run.accuracy}`,
      );
      await page.screenshot({ path: join(SHOTS, 'page-trained.png'), fullPage: true });
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const trained = join(dir, 'browser-trained.onnx');
      await download.saveAs(trained);
      const report = await evaluateModel(trained, readDataset(MNIST_DIR, 'test', 500));
      expect(Math.abs(report.accuracy - run.accuracy)).toBeLessThanOrEqual(0.004); // the same model, scored in Node
    } finally {
      await browser.close();
      expect(await server.stop()).toBe(0);
    }
  });
});

(hasChromium ? describe : describe.skip)('the browser page with a model of RGB images', () => {
  it('hides the drawing pad, classifies a chosen image file by class name, as onnxruntime-node does', async () => {
    const data = cifarDir(8, 4);
    const test = readDataset(data, 'test');
    const trainer = await Trainer.create({
      network: 'residual',
      config: trainConfig('residual', { maxSteps: 6 }),
      train: readDataset(data, 'train'),
      test,
      threads: 1,
    });
    await trainer.fit();
    const dir = tempDir();
    const model = join(dir, 'inference.onnx');
    writeFileSync(model, trainer.exportModel());
    await trainer.release();
    // Test image 3 (a cat) as a 32x32 RGB PNG: the page decodes it at its own size, so its pixels are the file's.
    const planes = test.images.subarray(3 * 3072, 4 * 3072);
    const png = new PNG({ width: 32, height: 32, colorType: 2 });
    for (let i = 0; i < 1024; i++) png.data.set([planes[i], planes[1024 + i], planes[2048 + i], 255], 4 * i);
    const picture = join(dir, 'cat.png');
    writeFileSync(picture, PNG.sync.write(png, { colorType: 2 }));
    const session = await ort.InferenceSession.create(model);
    const out = await session.run({ images: new ort.Tensor('uint8', Uint8Array.from(planes), [1, 3, 32, 32]) });
    const expected = Array.from(out.probabilities.data as Float32Array);
    await session.release();

    const server = await startServer(['--model-file', model]);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await page.goto(server.url);
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('model:'));
      expect(await page.textContent('#status')).toMatch(/3x32x32 RGB, 10 classes\)$/);
      expect(await page.isVisible('#pad')).toBe(false);
      await page.setInputFiles('#image', picture);
      await page.waitForFunction(() => (window as unknown as { classified?: string }).classified === 'cat.png');
      const probs = await page.evaluate(() => (window as unknown as { lastProbabilities: number[] }).lastProbabilities);
      expect(probs).toHaveLength(10);
      for (let k = 0; k < 10; k++) expect(Math.abs(probs[k] - expected[k])).toBeLessThan(1e-4);
      const best = expected.indexOf(Math.max(...expected));
      expect(await page.textContent('#label')).toBe(CIFAR_NAMES[best]);
      expect(await page.locator('#bars .name').allTextContents()).toEqual(CIFAR_NAMES);
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'page-rgb.png') });
    } finally {
      await browser.close();
      expect(await server.stop()).toBe(0);
    }
  });
});

(hasChromium ? describe : describe.skip)('the browser page on WebGPU', () => {
  it('classifies a drawn digit on WebGPU (a software adapter here) with the probabilities of the wasm path', async () => {
    const model = await digitModel();
    const digit = rawImages(MNIST_DIR).slice(0, 784);
    const server = await startServer(['--model-file', model]);
    const classified: { status: string; probs: number[] }[] = [];
    try {
      for (const webgpu of [false, true]) {
        const browser = await launchChromium(webgpu);
        try {
          const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
          await page.goto(server.url);
          await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('model:'));
          await drawDigit(page, digit);
          const probs = await page.evaluate(
            () => (window as unknown as { lastProbabilities: number[] }).lastProbabilities,
          );
          classified.push({ status: (await page.textContent('#status')) ?? '', probs });
          mkdirSync(SHOTS, { recursive: true });
          if (webgpu) await page.screenshot({ path: join(SHOTS, 'page-webgpu.png') });
        } finally {
          await browser.close();
        }
      }
    } finally {
      expect(await server.stop()).toBe(0);
    }
    const [wasm, gpu] = classified;
    expect([wasm.status, gpu.status]).toEqual([expect.stringMatching(/\(wasm;/), expect.stringMatching(/\(WebGPU;/)]);
    expect(gpu.probs).toHaveLength(10);
    expect(Math.max(...gpu.probs.map((p, k) => Math.abs(p - wasm.probs[k])))).toBeLessThan(1e-4);
    expect(gpu.probs.indexOf(Math.max(...gpu.probs))).toBe(7);
  });
});

(hasChromium ? describe : describe.skip)('training in the page on WebGPU', () => {
  it('trains 3 steps on WebGPU (asked for on the software adapter) with the losses of wasm; by default wasm, saying why', async () => {
    const server = await startServer([]);
    const browser = await launchChromium(true);
    try {
      const runs: { losses: number[]; ep: string; status: string }[] = [];
      let placement: string[] = [];
      for (const backend of ['webgpu', 'wasm']) {
        const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
        const copies: string[] = [];
        page.on('console', (m) => {
          const copy = /Add (MemcpyFromHost after|MemcpyToHost before) (\S+) for/.exec(m.text());
          if (copy && backend === 'webgpu') copies.push(`${copy[1].split(' ')[0]} ${copy[2]}`);
        });
        // ?verbose logs each copy onnxruntime adds between the CPU and WebGPU: where nodes run on the CPU.
        await page.goto(`${server.url}?train=${backend}${backend === 'webgpu' ? '&verbose' : ''}`);
        await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('no model'));
        const run = await trainInPage(page, 3);
        runs.push({ ...run, status: (await page.textContent('#train-status')) ?? '' });
        if (backend === 'webgpu') placement = copies;
        if (backend === 'webgpu')
          await page.screenshot({ path: join(SHOTS, 'page-trained-webgpu.png'), fullPage: true });
        await page.close();
      }
      const [gpu, wasm] = runs;
      console.log(`browser training, 3 steps: ${gpu.status} / ${wasm.status}`);
      expect([gpu.ep, wasm.ep]).toEqual(['webgpu', 'wasm']);
      expect(gpu.status).toMatch(/trained 3 steps on WebGPU: asked for, on a software adapter/);
      gpu.losses.forEach((l, k) => expect(Math.abs(l - wasm.losses[k]) / wasm.losses[k]).toBeLessThan(1e-4));
      // Every node on WebGPU: nothing is copied from the host, and to it only what leaves the graph as an output.
      const step = parseModel(await fetchBytes(`${server.url}train/model-webgpu.onnx`));
      const outputs = new Set(step.outputs.map((o) => o.name));
      const leaving = new Set(
        step.nodes.filter((n) => n.op === 'Identity' && outputs.has(n.outputs[0])).map((n) => n.inputs[0]),
      );
      expect(placement.length).toBeGreaterThan(0);
      expect(placement.filter((c) => !(c.startsWith('MemcpyToHost') && leaving.has(c.split(' ')[1])))).toEqual([]);
      const page = await browser.newPage();
      await page.goto(server.url);
      const chosen = await page.evaluate(() =>
        (window as unknown as { trainingBackend: () => Promise<{ ep: string; why: string }> }).trainingBackend(),
      );
      expect(chosen).toEqual({
        ep: 'wasm',
        model: 'train/model.onnx',
        why: 'the WebGPU adapter is a software one, slower than wasm',
      });
    } finally {
      await browser.close();
      expect(await server.stop()).toBe(0);
    }
  }, 180000);
});

/** What the page's panel reports of a training: the loss per step, speed, test accuracy and provider. */
interface PageTraining {
  losses: number[];
  stepsPerSecond: number;
  accuracy: number;
  ep: string;
}

/** Trains `steps` steps in the page's panel and returns what it reports (window.lastTraining). */
async function trainInPage(page: Page, steps: number): Promise<PageTraining> {
  await page.fill('#steps', String(steps));
  await page.click('#train');
  await page.waitForFunction(
    () =>
      (window as unknown as { lastTraining?: unknown }).lastTraining ||
      /failed/.test(document.getElementById('train-status')?.textContent ?? ''),
    null,
    { timeout: 120000 },
  );
  return page.evaluate(() => (window as unknown as { lastTraining: PageTraining }).lastTraining);
}

/** Draws a 28x28 digit 10x onto the pad, then touches its centre with the pen, which classifies the drawing. */
async function drawDigit(page: Page, digit: Uint8Array): Promise<void> {
  await page.evaluate((pixels) => {
    const pad = document.getElementById('pad') as HTMLCanvasElement;
    const ctx = pad.getContext('2d') as CanvasRenderingContext2D;
    for (let i = 0; i < 784; i++) {
      if (pixels[i] === 0) continue;
      ctx.fillStyle = `rgb(${pixels[i]},${pixels[i]},${pixels[i]})`;
      ctx.fillRect((i % 28) * 10, Math.floor(i / 28) * 10, 10, 10);
    }
  }, Array.from(digit));
  const box = await page.locator('#pad').boundingBox();
  const centre = inkCentre(digit);
  await page.mouse.move((box?.x ?? 0) + centre.x * 10 + 5, (box?.y ?? 0) + centre.y * 10 + 5);
  await page.mouse.down();
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById('label')?.textContent !== '?');
}

/** The ink pixel nearest the centre of the ink's bounding box (where a pen touch changes nothing that matters). */
function inkCentre(pixels: Uint8Array): { x: number; y: number } {
  const ink = [...pixels.keys()].filter((i) => pixels[i] > 128).map((i) => ({ x: i % 28, y: Math.floor(i / 28) }));
  const cx = (Math.min(...ink.map((p) => p.x)) + Math.max(...ink.map((p) => p.x))) / 2;
  const cy = (Math.min(...ink.map((p) => p.y)) + Math.max(...ink.map((p) => p.y))) / 2;
  return ink.reduce((best, p) => (Math.hypot(p.x - cx, p.y - cy) < Math.hypot(best.x - cx, best.y - cy) ? p : best));
}
