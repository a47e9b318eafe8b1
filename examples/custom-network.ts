/**
 * Your own network, trained in-graph: LeNet-5 on the first 6,000 MNIST training images for one epoch, then exported
 * as an inference model and scored on the test set by the evaluator, like the built-in networks.
 *
 *   npm run build && node dist/examples/custom-network.js [out.onnx]
 */
import { Trainer, countParams, defaultMnistDir, evaluateModel, exportModel, readDataset, trainConfig } from 'ingraph';
import { lenet5 } from './lenet5';

async function main(): Promise<void> {
  const out = process.argv[2] ?? 'lenet5.onnx';
  const mnist = defaultMnistDir();
  const trainer = await Trainer.create({
    network: lenet5,
    config: trainConfig('lenet5', { epochs: 1, momentum: 0.9, trainLimit: 6000 }),
    train: readDataset(mnist, 'train', 6000),
    test: readDataset(mnist, 'test', 2000),
    threads: 2,
  });
  console.log(`lenet5: ${countParams(lenet5.create().parameters())} parameters, training on ${trainer.ep}`);
  await trainer.fit([
    {
      onStep: (_, e) => void (e.step % 25 === 0 && console.log(`step ${e.step}: loss ${e.loss.toFixed(3)}`)),
      onEpoch: (_, e) => console.log(`epoch ${e.epoch}: test accuracy ${(100 * e.testAccuracy).toFixed(2)}%`),
    },
  ]);
  await trainer.release(); // the final weights stay readable
  exportModel(lenet5, trainer.params(), out, { 'ingraph.example': 'custom-network' }); // complete or not at all
  const report = await evaluateModel(out);
  console.log(
    `${out}: ${(100 * report.accuracy).toFixed(2)}% on the ${report.total} MNIST test images (${Math.round(report.imagesPerSecond)} images/s)`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
