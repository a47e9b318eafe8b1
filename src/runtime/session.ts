/** onnxruntime-node sessions: execution-provider choice (cpu, cuda, webgpu, auto) and its fallback, in one place. */
import { existsSync, readdirSync } from 'fs';
import { dirname, join } from 'path';
import * as ort from 'onnxruntime-node';
import { UsageError } from '../errors';

import { Ep, EpChoice } from '../options';

export type { EpChoice } from '../options';
export { EP_CHOICES } from '../options';

export interface SessionOptions {
  ep?: EpChoice;
  threads?: number;
  /** Writes onnxruntime's per-op profile (JSON) with this file prefix. */
  profilePrefix?: string;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session runs on. */
  ep: Ep;
  /** Why `auto` chose the CPU, when it did. */
  note?: string;
}

/** Where onnxruntime-node keeps its native libraries; the CUDA provider must sit beside them. */
function ortBinaryDir(): string {
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why the CUDA provider cannot load here, or null when its library is installed. */
export function cudaUnavailableReason(): string | null {
  const lib = join(ortBinaryDir(), 'libonnxruntime_providers_cuda.so');
  return existsSync(lib) ? null : `the CUDA execution provider is not installed (${lib} is missing)`;
}

/** Whether `ep` runs on the CPU without trying CUDA: 'cpu', or 'auto' where the CUDA provider is not installed (with why). */
export function choosesCpu(ep: EpChoice): { note?: string } | null {
  if (ep === 'cpu') return {};
  const reason = ep === 'auto' ? cudaUnavailableReason() : null;
  return reason ? { note: `${reason}; using CPU` } : null;
}

export async function openSession(model: Uint8Array, o: SessionOptions = {}): Promise<OpenedSession> {
  const ep = o.ep ?? 'auto';
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(o.threads ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
    ...(o.profilePrefix ? { enableProfiling: true, profileFilePrefix: o.profilePrefix } : {}),
  };
  if (ep === 'webgpu') return { session: await webGpuSession(model, base), ep: 'webgpu' };
  if (ep !== 'cpu') {
    const reason = cudaUnavailableReason();
    if (!reason) {
      try {
        const session = await ort.InferenceSession.create(model, { ...base, executionProviders: ['cuda'] });
        return { session, ep: 'cuda' };
      } catch (e) {
        if (ep === 'cuda')
          throw new UsageError(`ep cuda: the CUDA provider failed to load (${firstLine(e)})`).about('ep');
        return {
          session: await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] }),
          ep: 'cpu',
          note: `CUDA provider failed to load (${firstLine(e)}); using CPU`,
        };
      }
    }
    if (ep === 'cuda') throw new UsageError(`ep cuda: ${reason}`).about('ep');
    const session = await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] });
    return { session, ep: 'cpu', note: `${reason}; using CPU` };
  }
  return { session: await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] }), ep: 'cpu' };
}

/**
 * A session on onnxruntime-node's bundled WebGPU provider (Dawn, over Vulkan on Linux); without an adapter (no GPU,
 * or a Vulkan driver Dawn refuses) a UsageError about `ep`, in one line.
 */
async function webGpuSession(
  model: Uint8Array,
  base: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  const noDriver = vulkanMissing();
  if (noDriver) throw new UsageError(`ep webgpu: ${noDriver}`).about('ep');
  try {
    return await ort.InferenceSession.create(model, { ...base, executionProviders: ['webgpu'] });
  } catch (e) {
    const why =
      /Failed to get a WebGPU adapter[^\n]*/.exec(String(e instanceof Error ? e.message : e))?.[0] ?? firstLine(e);
    throw new UsageError(`ep webgpu: onnxruntime-node's WebGPU provider cannot run here (${why})`).about('ep');
  }
}

/** Where no Vulkan driver is installed (Linux, where Dawn runs on Vulkan), why; asked first so Dawn prints nothing. */
function vulkanMissing(): string | null {
  if (process.platform !== 'linux' || process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return null;
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
  const found = dirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
  const why = `no Vulkan driver is installed (no ICD file in ${dirs.join(' or ')})`;
  return found ? null : `${why}, which onnxruntime-node's WebGPU provider runs on`;
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0];
}
