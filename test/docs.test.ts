/**
 * The README and docs/ as a newcomer runs them: every `ingraph <command>` line in their code blocks names a command
 * that exists and only flags that command takes (train's from the option schema, the others' from their --help),
 * and every link to a docs page or a file of the repository points at something that exists.
 */
import { existsSync, readdirSync, readFileSync } from 'fs';
import { dirname, join, resolve } from 'path';
import { ARTIFACTS_HELP } from '../src/cli/artifacts';
import { EVAL_HELP } from '../src/cli/eval';
import { EXPORT_HELP } from '../src/cli/export';
import { GRAPHS_HELP } from '../src/cli/graphs';
import { INSPECT_HELP } from '../src/cli/inspect';
import { REPORT_HELP } from '../src/cli/report';
import { SERVE_HELP } from '../src/cli/serve';
import { TRAIN_OPTIONS } from '../src/options';
import { ROOT } from './helpers/cli';

const PAGES = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f)),
];

const FLAGS: Record<string, (flag: string) => boolean> = {
  train: (f) => f === 'help' || TRAIN_OPTIONS.some((o) => o.flag === f),
  ...Object.fromEntries(
    Object.entries({
      artifacts: ARTIFACTS_HELP,
      eval: EVAL_HELP,
      export: EXPORT_HELP,
      graphs: GRAPHS_HELP,
      inspect: INSPECT_HELP,
      report: REPORT_HELP,
      serve: SERVE_HELP,
    }).map(([command, help]) => [command, (f: string) => f === 'help' || help.includes(`--${f}`)]),
  ),
};

/** The `ingraph <command> ...` lines of a page's fenced code blocks, comments cut. */
function commandLines(text: string): string[] {
  const blocks = [...text.matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => /^(\S+=\S* )*(npx )?ingraph \w/.test(l));
}

describe('the README and docs/', () => {
  it.each(PAGES.map((p) => [p.slice(ROOT.length + 1), p]))(
    '%s: every ingraph command line takes the flags it shows',
    (_, page) => {
      const problems: string[] = [];
      for (const line of commandLines(readFileSync(page, 'utf8'))) {
        const command = /ingraph (\w[\w-]*)/.exec(line)?.[1] as string;
        const takes = FLAGS[command];
        if (!takes) {
          problems.push(`${line}: no command "${command}"`);
          continue;
        }
        for (const [, flag] of line.matchAll(/\s--([a-z][a-z0-9-]*)/g))
          if (!takes(flag)) problems.push(`${line}: ${command} takes no --${flag}`);
      }
      expect(problems).toEqual([]);
    },
  );

  it.each(PAGES.map((p) => [p.slice(ROOT.length + 1), p]))(
    '%s: every relative link points at a file that exists',
    (_, page) => {
      const links = [...readFileSync(page, 'utf8').matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
        .map((m) => m[1])
        .filter((l) => !/^[a-z]+:/.test(l));
      expect(links.filter((l) => !existsSync(resolve(dirname(page), l)))).toEqual([]);
    },
  );

  it('finds the main job in the README', () => {
    const lines = commandLines(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(lines).toEqual(expect.arrayContaining(['npx ingraph train', 'npx ingraph train --model residual']));
  });
});
