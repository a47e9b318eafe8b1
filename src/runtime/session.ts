/** onnxruntime-node sessions: execution-provider choice (cpu, cuda, auto) and its fallback, in one place. */
import { existsSync } from 'fs';
import { dirname, join } from 'path';
import * as ort from 'onnxruntime-node';
import { UsageError } from '../errors';

import { EpChoice } from '../options';

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
  ep: 'cpu' | 'cuda';
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

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0];
}
