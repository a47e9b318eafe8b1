#!/usr/bin/env node
/** The `ingraph` command: exit 0 on success, the typed error's code on a known failure (src/errors.ts), 1 on an internal one. */
import { describeErrno } from './io/files';
import { cliMessage, exitCodeOf } from './cli/errors';
import { IngraphError, UsageError } from './errors';
import { artifactsCommand, ARTIFACTS_HELP } from './cli/artifacts';
import { evalCommand, EVAL_HELP } from './cli/eval';
import { exportCommand, EXPORT_HELP } from './cli/export';
import { graphsCommand, GRAPHS_HELP } from './cli/graphs';
import { inspectCommand, INSPECT_HELP } from './cli/inspect';
import { reportCommand, REPORT_HELP } from './cli/report';
import { serveCommand, SERVE_HELP } from './cli/serve';
import { trainCommand, TRAIN_HELP } from './cli/train';
import { PACKAGE_VERSION } from './version';

const COMMANDS: Record<string, { run: (argv: string[]) => number | Promise<number>; help: string; summary: string }> = {
  train: { run: trainCommand, help: TRAIN_HELP, summary: 'train a network in-graph and export it' },
  eval: { run: evalCommand, help: EVAL_HELP, summary: 'score a classifier on the MNIST test set (or --data)' },
  export: { run: exportCommand, help: EXPORT_HELP, summary: 'write an inference model (random or given weights)' },
  graphs: { run: graphsCommand, help: GRAPHS_HELP, summary: 'write the emitted graphs of both networks' },
  report: {
    run: reportCommand,
    help: REPORT_HELP,
    summary: 'write an HTML report of a run: curves, confusion, mistakes',
  },
  artifacts: {
    run: artifactsCommand,
    help: ARTIFACTS_HELP,
    summary: "write a model's training artifacts (training, eval, checkpoint) without training",
  },
  inspect: {
    run: inspectCommand,
    help: INSPECT_HELP,
    summary: 'summarise an ONNX file; say what ingraph can train in it',
  },
  serve: { run: serveCommand, help: SERVE_HELP, summary: 'serve the browser page: draw a digit, classify it' },
};

const USAGE = `ingraph ${PACKAGE_VERSION}: train MNIST networks inside ONNX graphs

usage: ingraph <command> [flags]   (ingraph <command> --help for its flags)
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') return (void console.log(PACKAGE_VERSION), 0);
  const command = COMMANDS[name];
  if (!command)
    throw new UsageError(`ingraph: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  return command.run(rest);
}

/**
 * A stdout or stderr that fails (a redirect onto a full disk, a closed pipe) stops taking output instead of crashing
 * the run with it; the first fault other than a closed pipe (whose reader left on purpose) is reported at exit.
 */
function guardOutput(): () => { stream: string; text: string } | null {
  let fault: { stream: string; text: string } | null = null;
  for (const [stream, s] of [
    ['stdout', process.stdout],
    ['stderr', process.stderr],
  ] as const) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!fault && e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED')
        fault = { stream, text: describeErrno(e)?.text ?? e.message };
    });
  }
  return () => fault;
}

if (require.main === module) {
  const outputFault = guardOutput();
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      const fault = outputFault();
      if (fault && code === 0) {
        process.stderr.write(
          `ingraph: cannot write ${fault.stream}: ${fault.text}; output after that was lost (the command itself completed)\n`,
        );
        process.exitCode = 6;
      }
    },
    (e: unknown) => {
      if (e instanceof IngraphError) {
        process.stderr.write(`ingraph: ${cliMessage(e)}\n`);
        process.exitCode = exitCodeOf(e);
      } else {
        process.stderr.write(`ingraph: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
        if (process.env.INGRAPH_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
        process.exitCode = 1;
      }
    },
  );
}
