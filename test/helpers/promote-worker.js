/**
 * One of several processes promoting to the same path at once (test/io-faults.test.ts):
 * `node promote-worker.js TARGET COUNT SEED` promotes COUNT residual models with random recorded accuracies.
 */
const { join } = require('path');
const dist = join(__dirname, '..', '..', 'dist', 'src');
const { promote } = require(join(dist, 'run', 'promote'));
const { METADATA } = require(join(dist, 'metadata'));
const { ForwardPlan } = require(join(dist, 'plan'));
const { PromotionRefusedError } = require(join(dist, 'errors'));

async function main() {
  const [target, count, seed] = process.argv.slice(2);
  const plan = new ForwardPlan('residual');
  const params = plan.initialParams(Number(seed));
  for (let i = 0; i < Number(count); i++) {
    const accuracy = Math.round(Math.random() * 1000) / 1000;
    const model = plan.inference(params, {
      [METADATA.testAccuracy]: String(accuracy),
      [METADATA.testImages]: '1000',
      candidate: `${seed}.${i}`,
    });
    try {
      await promote({ target, tolerance: 0 }, `worker ${seed} candidate ${i}`, model, accuracy, 1000, {
        warn: () => {},
      });
    } catch (e) {
      if (!(e instanceof PromotionRefusedError)) throw e;
    }
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exitCode = 1;
});
