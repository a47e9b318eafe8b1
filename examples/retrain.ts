/**
 * A nightly retraining script: continue today's run if it was interrupted, else start it; deploy the new model only
 * if it scores at least as well as the one in production; branch on ingraph's typed errors.
 *
 *   npm run build && node dist/examples/retrain.js RUNS_DIR DEPLOYED_MODEL
 */
import { existsSync } from 'fs';
import { join } from 'path';
import { IngraphError, PromotionRefusedError, defaultMnistDir, train, trainConfig } from 'ingraph';

async function main(): Promise<number> {
  const [runs = 'runs', deployed = join(runs, 'deployed.onnx')] = process.argv.slice(2);
  const out = join(runs, new Date().toISOString().slice(0, 10));
  // A run that was interrupted left its checkpoint: continue it, with the config recorded there.
  const resume = existsSync(join(out, 'checkpoint.onnx')) ? {} : null;
  try {
    const result = await train({
      config: trainConfig('residual', { epochs: 1, trainLimit: 2000, testLimit: 1000, logEvery: 20 }),
      data: defaultMnistDir(),
      out,
      init: null,
      resume,
      ep: 'auto',
      threads: null,
      checkpointEvery: 10,
      promote: { target: deployed, tolerance: 0 },
      report: { line: (text) => console.log(text), event: () => {}, progress: () => {} },
    });
    console.log(`deployed ${deployed}: test accuracy ${(100 * result.final.accuracy).toFixed(2)}%`);
    return 0;
  } catch (e) {
    if (e instanceof PromotionRefusedError) return (console.log(`kept the deployed model: ${e.message}`), 0);
    if (e instanceof IngraphError && e.code === 'locked')
      return (console.log('another retrain is running; nothing to do'), 0);
    if (e instanceof IngraphError && e.code === 'io')
      return (console.error(`disk trouble, retry later: ${e.message}`), 75);
    throw e;
  }
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
