/** The public API (src/index.ts): every exported name documented, and nothing of the CLI inside the core. */
import { readFileSync, readdirSync, statSync } from 'fs';
import { join } from 'path';
import * as ts from 'typescript';
import { ROOT } from './helpers/cli';

function exportsWithoutDocs(): string[] {
  const program = ts.createProgram([join(ROOT, 'src', 'index.ts')], {
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const index = program.getSourceFile(join(ROOT, 'src', 'index.ts')) as ts.SourceFile;
  const moduleSymbol = checker.getSymbolAtLocation(index) as ts.Symbol;
  return checker
    .getExportsOfModule(moduleSymbol)
    .filter((exported) => {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      return !(symbol.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0);
    })
    .map((s) => s.name);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('public API', () => {
  it('every name src/index.ts exports has a JSDoc comment', () => {
    expect(exportsWithoutDocs()).toEqual([]);
  });

  it('the core (every folder of src/ but cli) mentions no flags, flag parameters, exit codes, process exits or signals', () => {
    // Every folder of src/ but the CLI's, so that a new one is covered as it comes.
    const src = join(ROOT, 'src');
    const folders = readdirSync(src).filter((d) => d !== 'cli' && statSync(join(src, d)).isDirectory());
    expect(folders).toEqual(expect.arrayContaining(['onnx', 'plan', 'run', 'train', 'io', 'deploy']));
    const core = folders.flatMap((d) => sourceFiles(join(ROOT, 'src', d)));
    const offending = core
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => [f, i + 1, line] as const),
      )
      .filter(([, , line]) =>
        /process\.(exit|on\(|exitCode)|exitCode|SIGINT|SIGTERM|[\s`'"(]--[a-z]|\bflag\??: string/.test(line),
      )
      .map(([f, n, line]) => `${f.slice(ROOT.length + 1)}:${n}: ${line.trim()}`);
    expect(offending).toEqual([]);
  });
});
