/**
 * One of several processes promoting to the same path at once (test/io-faults.test.ts):
 * `node promote-worker.js TARGET COUNT SEED` promotes COUNT residual models with random recorded accuracies.
 */
const { join } = require('path');
const dist = join(__dirname, '..', '..', 'dist', 'src');
const { promote } = require(join(dist, 'runtime', 'promote'));
const { METADATA } = require(join(dist, 'run', 'metadata'));
const { buildInferenceModel } = require(join(dist, 'artifacts', 'graphs'));
const { createNet } = require(join(dist, 'models'));
const { initParams } = require(join(dist, 'models', 'module'));
const { PromotionRefusedError } = require(join(dist, 'errors'));

async function main() {
  const [target, count, seed] = process.argv.slice(2);
  const params = initParams(createNet('residual').parameters(), Number(seed));
  for (let i = 0; i < Number(count); i++) {
    const accuracy = Math.round(Math.random() * 1000) / 1000;
    const model = buildInferenceModel('residual', params, {
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
