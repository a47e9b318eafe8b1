/**
 * `ingraph serve`: the browser page (web/) on localhost, with onnxruntime-web's files and, optionally, a model. It
 * serves a fixed set of names and nothing else: no directory listing, no path outside those files.
 */
import { existsSync, readdirSync, readFileSync } from 'fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'http';
import { AddressInfo } from 'net';
import { dirname, join } from 'path';
import { readModelBytes } from '../io/params-io';
import { UsageError } from '../errors';
import { PROJECT_ROOT } from '../version';
import { OptionSpec, RUN_OPTION as run } from '../options';
import { MODEL_FILE_OPTION, optionsHelp, parseCommand } from './options';
import { exportTrained, trainingFiles } from './browser-training';

/** The flags of `ingraph serve`. */
export const SERVE_OPTIONS: readonly OptionSpec[] = [
  {
    ...run,
    name: 'port',
    flag: 'port',
    kind: 'int',
    default: 8080,
    min: 0,
    max: 65535,
    arg: 'N',
    doc: 'the port; 0 picks a free one',
  },
  {
    ...run,
    name: 'host',
    flag: 'host',
    kind: 'text',
    default: '127.0.0.1',
    arg: 'ADDRESS',
    doc: 'the address to bind',
  },
  { ...MODEL_FILE_OPTION, doc: 'an inference model the page loads at once' },
];

export const SERVE_HELP = `usage: ingraph serve [flags]

Serves the browser page on http://127.0.0.1:N/: draw a digit (a model of MNIST's 1x28x28 grey images) or choose an
image file (any model: resized to its input) and see the label and the probabilities of an exported model, by
class name, run by onnxruntime-web in the browser (WebGPU where the browser has an adapter, else wasm). Any exported
inference.onnx can also be dropped onto it. Needs the onnxruntime-web package (a dev dependency of ingraph: \`npm install onnxruntime-web\` where ingraph is
a dependency). Stops on SIGINT/SIGTERM.
${optionsHelp(SERVE_OPTIONS)}`;

const PAGE_FILES = ['index.html', 'app.js', 'style.css'];
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript',
  mjs: 'text/javascript',
  css: 'text/css',
  wasm: 'application/wasm',
  onnx: 'application/octet-stream',
  json: 'application/json',
  bin: 'application/octet-stream',
};

function ortDist(): string {
  try {
    return dirname(require.resolve('onnxruntime-web')); // its main file lies in dist/, beside the browser builds
  } catch {
    throw new UsageError('ingraph serve: the onnxruntime-web package is not installed (npm install onnxruntime-web)');
  }
}

/** The bytes for a request path, or null (404). Names are matched exactly; nothing is joined from the request. */
function resolver(model: Uint8Array | null): (path: string) => Buffer | Uint8Array | string | null {
  const web = join(PROJECT_ROOT, 'web');
  const ort = ortDist();
  const ortFiles = new Set(existsSync(ort) ? readdirSync(ort) : []);
  const training = trainingFiles();
  return (path) => {
    if (path === '/') path = '/index.html';
    if (path === '/model.onnx') return model;
    if (training.has(path)) return training.get(path) ?? null;
    const page = /^\/([\w.-]+)$/.exec(path);
    if (page && PAGE_FILES.includes(page[1])) return readFileSync(join(web, page[1]));
    const lib = /^\/ort\/([\w.-]+)$/.exec(path);
    return lib && ortFiles.has(lib[1]) ? readFileSync(join(ort, lib[1])) : null;
  };
}

/** The request handler; a request that fails (e.g. a client that drops an upload) gets a 500, not a crash. */
function handler(find: (path: string) => Buffer | Uint8Array | string | null) {
  const respond = serveFile(find);
  return (req: IncomingMessage, res: ServerResponse) => {
    respond(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end();
    });
  };
}

function serveFile(find: (path: string) => Buffer | Uint8Array | string | null) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    // The raw path, not decoded: "/%2e%2e/etc/passwd" is not a name this server knows, so it is a 404 like any other.
    const path = (req.url ?? '/').split('?')[0];
    const body =
      req.method === 'GET' || req.method === 'HEAD'
        ? find(path)
        : req.method === 'POST' && path === '/train/export'
          ? await exportTrained(req)
          : null;
    if (!body) return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    const ext =
      path === '/train/export' ? 'onnx' : (/\.(\w+)$/.exec(path === '/' ? '/index.html' : path)?.[1] ?? 'html');
    // Cross-origin isolation lets onnxruntime-web use several wasm threads (SharedArrayBuffer).
    res
      .writeHead(200, {
        'Content-Type': TYPES[ext] ?? 'application/octet-stream',
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cache-Control': 'no-store',
      })
      .end(req.method === 'HEAD' ? undefined : body);
  };
}

export async function serveCommand(argv: string[]): Promise<number> {
  const flags = parseCommand('serve', argv, SERVE_OPTIONS);
  if (flags.help) return (void console.log(SERVE_HELP), 0);
  const port = flags.value<number>('port');
  const host = flags.value<string>('host');
  const modelFile = flags.value<string | null>('model-file');
  const model = modelFile ? readModelBytes(modelFile, 'model-file') : null;
  const server = createServer(handler(resolver(model)));
  await listen(server, port, host);
  const { port: bound } = server.address() as AddressInfo;
  console.log(
    `serving the ingraph page on http://${host.includes(':') ? `[${host}]` : host}:${bound}/ (Ctrl-C stops it)`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new UsageError(`--port ${port}: cannot listen on ${host} (${e.code ?? e.message})`)),
    );
    server.listen(port, host, resolve);
  });
}
