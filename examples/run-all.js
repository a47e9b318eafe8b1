#!/usr/bin/env node
/** `npm run examples`: runs every example (built into dist/examples by `npm run build`) in a temporary directory. */
const { spawnSync } = require('child_process');
const { mkdtempSync } = require('fs');
const { tmpdir } = require('os');
const { join } = require('path');

const dist = join(__dirname, '..', 'dist', 'examples');
const work = mkdtempSync(join(tmpdir(), 'ingraph-examples-'));
const runs = [
  ['custom-network.js', [join(work, 'lenet5.onnx')]],
  ['export-evaluate.js', [join(work, 'residual-init.onnx')]],
  ['retrain.js', [join(work, 'runs'), join(work, 'deployed.onnx')]],
  ['retrain.js', [join(work, 'runs'), join(work, 'deployed.onnx')]],
];
for (const [script, args] of runs) {
  console.log(`\n$ node dist/examples/${script} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(dist, script), ...args], { stdio: 'inherit', cwd: work });
  if (r.status !== 0) {
    console.error(`examples: ${script} exited with ${r.status}`);
    process.exit(1);
  }
}
console.log(`\nexamples: all ${runs.length} runs passed (files in ${work})`);
