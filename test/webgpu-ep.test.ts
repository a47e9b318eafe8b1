/**
 * `--ep webgpu`: onnxruntime-node's bundled WebGPU provider where it finds an adapter; elsewhere (this project's
 * machines: no GPU, no Vulkan driver) a one-line refusal naming the flag, exit 2, nothing written.
 */
import { existsSync } from 'fs';
import { join } from 'path';
import { exportedModel, mnistSlice, runCli, tempDir } from './helpers/cli';

const REFUSAL =
  /^ingraph: --ep webgpu: (no Vulkan driver is installed|onnxruntime-node's WebGPU provider cannot run here)/;

describe('--ep webgpu', () => {
  const data = mnistSlice(128, 50);

  it('trains and evaluates on WebGPU where an adapter exists, else refuses in one line and writes nothing', () => {
    const out = join(tempDir(), 'run');
    const r = runCli([
      'train',
      '--model',
      'residual',
      '--data',
      data,
      '--max-steps',
      '2',
      '--ep',
      'webgpu',
      '--out',
      out,
    ]);
    if (r.code === 0) {
      expect(exportedModel(out).shapes[0]).toEqual(['N', 1, 28, 28]);
      const scored = runCli([
        'eval',
        '--model-file',
        join(out, 'inference.onnx'),
        '--data',
        data,
        '--ep',
        'webgpu',
        '--json',
      ]);
      expect([scored.code, JSON.parse(scored.stdout).ep]).toEqual([0, 'webgpu']);
      return;
    }
    expect([r.code, r.stderr.trim().split('\n').pop()]).toEqual([2, expect.stringMatching(REFUSAL)]);
    expect(existsSync(out)).toBe(false);
    const model = join(tempDir(), 'm.onnx');
    expect(runCli(['export', '--model', 'residual', '--out', model]).code).toBe(0);
    const scored = runCli(['eval', '--model-file', model, '--data', data, '--ep', 'webgpu']);
    expect([scored.code, scored.stderr.trim().split('\n').pop()]).toEqual([2, expect.stringMatching(REFUSAL)]);
  });
});
