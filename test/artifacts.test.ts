/**
 * `ingraph artifacts`: the training artifacts of an imported PyTorch export, written without training, run by a
 * program that uses onnxruntime-web alone (examples/artifacts-web.js, in headless Chromium): three steps give the
 * losses and tensors ingraph's own step gives from the same files. Skipped without /usr/bin/chromium.
 */
import { existsSync, readFileSync } from 'fs';
import { join } from 'path';
import { readCheckpoint } from '../src/run/checkpoint';
import { paramsFromModel } from '../src/io/params-io';
import { TrainingStep } from '../src/runtime/step';
import { parseModel } from '../src/onnx/model';
import { CHROMIUM, withPage } from './helpers/browser';
import { ROOT, runCli, tempDir } from './helpers/cli';
import { relError } from './helpers/torch-fixture';

const MODEL = join(__dirname, 'fixtures', 'import', 'smallnet_train.onnx');
const BATCH = 8;

/** Three batches of 3x16x16 images in 4 classes, from a fixed generator. */
function batches(): { images: Uint8Array; labels: BigInt64Array }[] {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24;
  return [0, 1, 2].map(() => ({
    images: Uint8Array.from({ length: BATCH * 768 }, next),
    labels: BigInt64Array.from({ length: BATCH }, () => BigInt(next() % 4)),
  }));
}

describe('ingraph artifacts', () => {
  const out = join(tempDir(), 'artifacts');
  const written = runCli(['artifacts', MODEL, '--out', out, '--mean', '0.5,0.45,0.4', '--std', '0.25,0.25,0.3']);

  it('writes training_model.onnx, eval_model.onnx and checkpoint.onnx, and refuses to overwrite them', () => {
    expect([written.code, written.stderr]).toEqual([0, '']);
    for (const f of ['training_model.onnx', 'eval_model.onnx', 'checkpoint.onnx'])
      expect(existsSync(join(out, f))).toBe(true);
    const again = runCli(['artifacts', MODEL, '--out', out, '--mean', '0.5', '--std', '0.25']);
    expect([again.code, again.stderr]).toEqual([2, expect.stringMatching(/--out .*: holds artifacts already/)]);
    const bare = runCli(['artifacts', MODEL, '--out', join(tempDir(), 'x')]);
    expect([bare.code, bare.stderr.trim()]).toEqual([
      2,
      'ingraph: --mean: needed, with --std, for 3x16x16 images (what they are normalised by)',
    ]);
  });

  (existsSync(CHROMIUM) ? it : it.skip)(
    'run three steps in onnxruntime-web alone, as ingraph runs them (losses, parameters, BatchNorm statistics)',
    async () => {
      const training = readFileSync(join(out, 'training_model.onnx'));
      const checkpoint = readFileSync(join(out, 'checkpoint.onnx'));
      const data = batches();
      const served = new Map<string, Buffer | string>([
        ['/artifacts-web.js', readFileSync(join(ROOT, 'examples', 'artifacts-web.js'))],
        ['/training_model.onnx', training],
        ['/checkpoint.onnx', checkpoint],
        ['/batches.bin', Buffer.concat(data.flatMap((b) => [Buffer.from(b.images), Buffer.from(b.labels.buffer)]))],
      ]);
      const { result: web } = await withPage(served, async (page) => {
        await page.addScriptTag({ url: '/artifacts-web.js' });
        return page.evaluate(async (batch) => {
          const w = globalThis as unknown as {
            ort: typeof import('onnxruntime-web');
            trainArtifacts: (...a: unknown[]) => Promise<{ losses: number[]; tensors: Record<string, number[]> }>;
          };
          w.ort.env.wasm.numThreads = 1;
          w.ort.env.wasm.wasmPaths = '/ort/';
          const get = async (url: string) => new Uint8Array(await (await fetch(url)).arrayBuffer());
          const all = await get('/batches.bin');
          const size = batch * 768 + batch * 8;
          const bs = [0, 1, 2].map((k) => ({
            images: all.slice(k * size, k * size + batch * 768),
            labels: new BigInt64Array(all.slice(k * size + batch * 768, (k + 1) * size).buffer),
            n: batch,
          }));
          return w.trainArtifacts(await get('/training_model.onnx'), await get('/checkpoint.onnx'), bs, 0.01);
        }, BATCH);
      });

      const graph = parseModel(training);
      const names = (pred: (n: string) => boolean) => graph.inputs.filter((i) => pred(i.name));
      const specs = (list: { name: string; shape: (number | string)[] }[]) =>
        list.map((i) => ({ name: i.name, shape: i.shape as number[], fanIn: 1 }));
      const stored = readCheckpoint(join(out, 'checkpoint.onnx'));
      const isState = (n: string) => n.startsWith('optim.') || n.includes('running_');
      const params = specs(names((n) => !['images', 'labels', 'lr'].includes(n) && !isState(n)));
      const states = specs(names(isState));
      const step = await TrainingStep.open(
        {
          bytes: training,
          imageShape: [3, 16, 16],
          params,
          trainable: params.map((p) => p.name),
          states,
        },
        paramsFromModel(stored, params, 'checkpoint'),
        paramsFromModel(stored, states, 'checkpoint'),
        { ep: 'cpu', threads: 1 },
      );
      const losses = [];
      for (const b of data) losses.push((await step.run(b.images, b.labels, BATCH, 0.01)).loss);
      const ours = new Map([...step.params(), ...step.states()]);
      await step.release();
      expect(relError(web.losses, losses)).toBeLessThan(1e-5);
      expect(losses[2]).not.toBe(losses[0]);
      // Relative to each tensor's largest value, or a hundredth of the largest of all where that is smaller: the
      // momentum of a bias before a BatchNorm (whose gradient is exactly 0) holds only rounding, which wasm and native
      // kernels round apart.
      const largest = Math.max(...[...ours.values()].map((v) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
      const error = (name: string, v: Float32Array) => {
        const theirs = web.tensors[name] ?? [];
        const diff = v.reduce(
          (m, x, i) => Math.max(m, Math.abs(x - theirs[i])),
          theirs.length === v.length ? 0 : Infinity,
        );
        return diff / Math.max(1e-2 * largest, ...Array.from(v, Math.abs));
      };
      expect([...ours].filter(([name, v]) => !(error(name, v) < 1e-4)).map(([name]) => name)).toEqual([]);
      expect(ours.size).toBe(Object.keys(web.tensors).length);
    },
  );
});
