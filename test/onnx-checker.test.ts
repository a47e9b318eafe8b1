/**
 * The official ONNX checker (with full shape inference) on every graph we emit (the data-parallel pair included) and
 * on a checkpoint, through
 * Debian's python3-onnx, which .ci/run installs. Where it is absent the test says so and checks nothing.
 */
import { spawnSync } from 'child_process';
import { readdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import {
  buildFlatTrainingModel,
  buildInferenceModel,
  buildLoopTrainingModel,
  buildShardedTrainingModels,
  buildTrainingModel,
} from '../src/plan';
import { withEma } from '../src/optim/ema';
import { encodeCheckpoint } from '../src/run/checkpoint';
import { ADAMW_DEFAULTS, adamw } from '../src/optim/adamw';
import { sgd } from '../src/optim/sgd';
import { resolveNetwork } from '../src/models';
import { initParams } from '../src/models/module';
import { runCli, tempDir } from './helpers/cli';

const PYTHON = '/usr/bin/python3';
const hasOnnx = spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;
const CHECK = `
import onnx, sys
for f in sys.argv[1:]:
    m = onnx.load(f)
    onnx.checker.check_model(m, full_check=True)
    print("ok", f, len(m.graph.initializer))
`;

(hasOnnx ? describe : describe.skip)('ONNX checker (python3-onnx)', () => {
  it('passes every emitted graph and a checkpoint, which the onnx package reads back whole', () => {
    const dir = tempDir();
    expect(runCli(['graphs', '--out', dir]).code).toBe(0);
    const specs = resolveNetwork('inception').create().parameters();
    const params = initParams(specs, 0);
    const states = new Map([...params].map(([k, v]) => [`optim.momentum_buffer.${k}`, v]));
    writeFileSync(
      join(dir, 'checkpoint.onnx'),
      encodeCheckpoint(
        specs,
        specs.map((s) => ({ name: `optim.momentum_buffer.${s.name}`, shape: s.shape })),
        {
          params,
          states,
          metadata: { 'ingraph.kind': 'checkpoint' },
        },
      ),
    );
    // The data-parallel pair: each shard's gradient graph and the flat update over 3 shards, for both optimizers.
    for (const [name, optimizer] of [
      ['sgd', sgd({ momentum: 0.9, weightDecay: 1e-4 })],
      ['adamw', adamw(ADAMW_DEFAULTS)],
    ] as const) {
      const sharded = buildShardedTrainingModels('inception', optimizer, 3);
      writeFileSync(join(dir, `sharded-gradient-${name}.onnx`), sharded.gradient);
      writeFileSync(join(dir, `sharded-update-${name}.onnx`), sharded.update);
    }
    // Conv weight gradients as Convs, the recipe's options, and a moving average of the weights.
    const recipe = buildTrainingModel('inception', withEma(sgd({ momentum: 0.9, weightDecay: 5e-4 }), 0.999), {
      labelSmoothing: 0.1,
      gradients: { convWeightGradient: 'conv' },
    });
    writeFileSync(join(dir, 'training-recipe.onnx'), recipe.bytes);
    writeFileSync(
      join(dir, 'training-flat.onnx'),
      buildFlatTrainingModel('inception', withEma(adamw(ADAMW_DEFAULTS), 0.999), {
        isFrozen: (n) => n.startsWith('conv1.'),
      }).bytes,
    );
    // Several AdamW steps per run (its float64 scalar factors inside a Loop body); `graphs` wrote the SGD ones.
    writeFileSync(join(dir, 'training-loop.onnx'), buildLoopTrainingModel('residual', adamw(ADAMW_DEFAULTS)).bytes);
    writeFileSync(join(dir, 'inference-half.onnx'), buildInferenceModel('inception', params, {}, 17, 'float16'));
    const files = readdirSync(dir).map((f) => join(dir, f));
    const r = spawnSync(PYTHON, ['-c', CHECK, ...files], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(21);
    expect(r.stdout).toContain(`ok ${join(dir, 'checkpoint.onnx')} ${2 * specs.length}`);
  });
});

if (!hasOnnx) {
  // Visible in the run's output: this check needs `apt-get install python3-onnx` (.ci/run does it).
  console.warn('onnx-checker.test.ts: /usr/bin/python3 has no onnx module; the ONNX checker test is skipped');
}
