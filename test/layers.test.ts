/**
 * The architecture, as the folders of src/ show it: each layer imports only from layers below it (or from itself),
 * so the core never reaches up into the Trainer, the run directory or the CLI. A new upward import fails here.
 */
import { readdirSync, readFileSync, statSync } from 'fs';
import { dirname, join, normalize, relative } from 'path';
import { ROOT } from './helpers/cli';

/** The layers, lowest first; a module is in the layer of its top folder (or its own name at the top of src/). */
const LAYERS = [
  ['errors', 'version', 'options', 'metadata', 'signature', 'config'],
  ['onnx'],
  ['autodiff', 'data'],
  ['models', 'optim'],
  ['plan'],
  ['io'],
  ['runtime'],
  ['run'],
  ['deploy', 'report'],
  ['train'],
  ['api', 'index'],
  ['cli'],
];
const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The layer name of a path under src/. */
const layerOf = (path: string) => relative(join(ROOT, 'src'), path).split('/')[0].replace(/\.ts$/, '');

describe('layers', () => {
  it('every module of src/ is in a layer, and imports only from its own layer or those below', () => {
    const problems: string[] = [];
    for (const file of sourceFiles(join(ROOT, 'src'))) {
      const from = layerOf(file);
      if (!rank.has(from)) problems.push(`${relative(ROOT, file)}: in no layer`);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/from '(\.[^']*)'/g)) {
        const to = layerOf(normalize(join(dirname(file), spec)));
        // Within a layer, folders may use each other (e.g. config derives from options); upward, never.
        if ((rank.get(to) ?? Infinity) > (rank.get(from) ?? -1))
          problems.push(`${relative(ROOT, file)} imports ${spec} (${to} is above ${from})`);
      }
    }
    expect(problems).toEqual([]);
  });
});
