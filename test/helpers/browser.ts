/**
 * onnxruntime-web in a real browser: Debian's Chromium, headless, driven by playwright-core (no browser download),
 * loading onnxruntime-web's wasm build from a server on 127.0.0.1 that serves only the files named here.
 */
import { existsSync, readFileSync } from 'fs';
import { AddressInfo } from 'net';
import { createServer } from 'http';
import { join } from 'path';
import { Browser, chromium, Page } from 'playwright-core';
import { ROOT } from './cli';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless Chromium as root on a machine without network: no sandbox, GPU or background connections; with `webgpu`,
 * a WebGPU adapter instead (`--enable-unsafe-webgpu`: SwiftShader's, in software, where there is no GPU).
 */
export function launchChromium(webgpu = false): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      webgpu ? '--enable-unsafe-webgpu' : '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
const ORT_DIST = join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');
const PAGE = '<!doctype html><script src="/ort/ort.min.js"></script><body>ingraph conformance</body>';
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
};

/**
 * Runs `work` in a page of headless Chromium at http://127.0.0.1:PORT/ whose server answers `served` (path → body)
 * and onnxruntime-web's files under /ort/, then closes both.
 */
export async function withPage<T>(
  served: Map<string, Buffer | string>,
  work: (page: Page) => Promise<T>,
): Promise<{ version: string; result: T }> {
  const pages = new Map<string, Buffer | string>([['/', PAGE], ...served]);
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const ort = /^\/ort\/([\w.-]+)$/.exec(url);
    const body =
      pages.get(url) ?? (ort && existsSync(join(ORT_DIST, ort[1])) ? readFileSync(join(ORT_DIST, ort[1])) : undefined);
    if (body === undefined) return void res.writeHead(404).end();
    res
      .writeHead(200, { 'Content-Type': TYPES[/\.\w+$/.exec(url)?.[0] ?? '.html'] ?? 'application/octet-stream' })
      .end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { version: browser.version(), result: await work(page) };
  } finally {
    await browser.close();
    server.close();
  }
}

/** Logits of each model (a file path) for the `n` images (uint8, n·784), as onnxruntime-web computes them in Chromium. */
export async function browserLogits(
  models: string[],
  images: Uint8Array,
  n: number,
): Promise<{ version: string; logits: number[][] }> {
  const served = new Map<string, Buffer | string>([['/images.bin', Buffer.from(images)]]);
  models.forEach((m, i) => served.set(`/model${i}.onnx`, readFileSync(m)));
  const { version, result } = await withPage(served, (page) =>
    page.evaluate(
      async ({ count, n }) => {
        const ort = (globalThis as unknown as { ort: typeof import('onnxruntime-web') }).ort;
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.wasmPaths = '/ort/';
        const images = new Uint8Array(await (await fetch('/images.bin')).arrayBuffer());
        const out: number[][] = [];
        for (let i = 0; i < count; i++) {
          const session = await ort.InferenceSession.create(`/model${i}.onnx`, { executionProviders: ['wasm'] });
          const r = await session.run({ images: new ort.Tensor('uint8', images, [n, 1, 28, 28]) });
          out.push(Array.from(r.logits.data as Float32Array));
          await session.release();
        }
        return out;
      },
      { count: models.length, n },
    ),
  );
  return { version, logits: result };
}

/** The one output of `model` for one float32 input (`dims`), as onnxruntime-web computes it in Chromium (wasm). */
export async function browserRun(model: Uint8Array, input: string, x: Float32Array, dims: number[]): Promise<number[]> {
  const served = new Map<string, Buffer | string>([
    ['/model.onnx', Buffer.from(model)],
    ['/x.bin', Buffer.from(x.buffer, x.byteOffset, x.byteLength)],
  ]);
  const { result } = await withPage(served, (page) =>
    page.evaluate(
      async ({ input, dims }) => {
        const ort = (globalThis as unknown as { ort: typeof import('onnxruntime-web') }).ort;
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.wasmPaths = '/ort/';
        const data = new Float32Array(await (await fetch('/x.bin')).arrayBuffer());
        const session = await ort.InferenceSession.create('/model.onnx', { executionProviders: ['wasm'] });
        const out = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
        const values = Array.from(out[session.outputNames[0]].data as Float32Array);
        await session.release();
        return values;
      },
      { input, dims },
    ),
  );
  return result;
}
