/**
 * Export and evaluate a model file without training: the residual net's initial weights (seed 0) as an inference
 * model, its summary, and its accuracy on the MNIST test set (near chance, 10%).
 *
 *   npm run build && node dist/examples/export-evaluate.js [out.onnx]
 */
import { NETWORKS, evaluateModel, exportModel, initParams, inspectModel } from 'ingraph';

async function main(): Promise<void> {
  const out = process.argv[2] ?? 'residual-init.onnx';
  const weights = initParams(NETWORKS.residual.create().parameters(), 0);
  const sha = exportModel('residual', weights, out, { 'ingraph.weights': 'initial (seed 0)' });
  const summary = inspectModel(out);
  console.log(`${out}: sha256 ${sha.slice(0, 16)}..., ${summary.nodes} nodes, ${summary.totalParameters} parameters`);
  const report = await evaluateModel(out);
  console.log(
    `accuracy ${(100 * report.accuracy).toFixed(2)}% on ${report.total} test images; per class ${report.perClass.map((c) => c.correct).join(' ')}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
