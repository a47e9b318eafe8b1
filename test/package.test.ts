/**
 * The package as a user installs it: `npm pack`, installed into an empty project (with the install line the README
 * gives), then `npx ingraph --help`, and a TypeScript file compiled against the shipped types and run.
 */
import { execFileSync, spawnSync } from 'child_process';
import { readdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { ROOT, tempDir } from './helpers/cli';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

const consumer = `
import { IngraphError, NETWORKS, Trainer, datasetFromArrays, trainConfig, type StepEvent } from 'ingraph';

async function main(): Promise<void> {
  const images = new Uint8Array(64 * 784).map((_, i) => (i * 7) % 256);
  const labels = Array.from({ length: 64 }, (_, i) => i % 10);
  const data = datasetFromArrays(images, labels);
  const trainer = await Trainer.create({ network: NETWORKS.residual, config: trainConfig('residual', { batchSize: 32, maxSteps: 2 }), train: data, test: data, ep: 'cpu' });
  const steps: StepEvent[] = [];
  await trainer.fit([{ onStep: (_, e) => void steps.push(e) }]);
  const bytes: Uint8Array = trainer.exportModel();
  await trainer.release();
  try {
    datasetFromArrays(new Uint8Array(3), [1]);
  } catch (e) {
    if (e instanceof IngraphError) console.log(JSON.stringify({ steps: steps.length, modelBytes: bytes.length, code: e.code }));
  }
}
main();
`;

describe('the packed package', () => {
  it('installs into an empty project and works from its CLI, require() and TypeScript with its types', () => {
    const packDir = tempDir();
    // dist/ is built by `npm test`; --ignore-scripts keeps `prepare` from rebuilding it under the other tests' feet.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], { cwd: ROOT, stdio: 'ignore' });
    const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith('.tgz')) as string);
    const project = tempDir();
    // The README's install line for library users: deny onnxruntime-node's download of its CUDA provider.
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        version: '1.0.0',
        private: true,
        dependencies: { ingraph: `file:${tarball}` },
        allowScripts: { 'onnxruntime-node': false, ingraph: false },
      }),
    );
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project, stdio: 'ignore' });

    const help = spawnSync('npx', ['ingraph', '--help'], { cwd: project, encoding: 'utf8' });
    expect([help.status, help.stdout]).toEqual([
      0,
      expect.stringMatching(/^ingraph \d+\.\d+\.\d+: train MNIST networks inside ONNX graphs/),
    ]);

    writeFileSync(join(project, 'main.ts'), consumer);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'commonjs',
          target: 'ES2022',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          skipLibCheck: false,
        },
        files: ['main.ts'],
      }),
    );
    const compiled = spawnSync(process.execPath, [TSC, '-p', '.'], { cwd: project, encoding: 'utf8' });
    expect([compiled.status, compiled.stdout]).toEqual([0, '']);
    const run = spawnSync(process.execPath, ['main.js'], { cwd: project, encoding: 'utf8' });
    expect(JSON.parse(run.stdout)).toEqual({ steps: 2, modelBytes: expect.any(Number), code: 'usage' });

    // The types are real: a wrong option is a compile error.
    writeFileSync(
      join(project, 'main.ts'),
      `import { trainConfig } from 'ingraph';\ntrainConfig('residual', { epochs: 'two' });\n`,
    );
    const wrong = spawnSync(process.execPath, [TSC, '-p', '.'], { cwd: project, encoding: 'utf8' });
    expect([wrong.status, wrong.stdout]).toEqual([
      2,
      expect.stringMatching(/main\.ts\(2,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/),
    ]);
  });
});
