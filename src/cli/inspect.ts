import { readFileChecked } from '../io/files';
import { MAX_MODEL_BYTES } from '../io/params-io';
import { parseModel } from '../onnx/model';
import { ParamRow, summarize } from '../onnx/summary';
import { Trainability, trainability } from '../models/import';
import { parse } from './args';

export const INSPECT_HELP = `usage: ingraph inspect FILE [--json]

A summary of an ONNX file: inputs, outputs, ops by count, parameters by layer with shapes, total
parameter count, metadata, and what \`ingraph train --model FILE\` can train in it (or why not).`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  '))
    .join('\n');
}

export function inspectCommand(argv: string[]): number {
  const { values, positionals } = parse('inspect', argv, { json: { type: 'boolean' } }, 1);
  if (values.help || positionals.length === 0) return (void console.log(INSPECT_HELP), values.help ? 0 : 2);
  const file = positionals[0];
  // A positional, not an option: errors name the command and the file.
  const m = parseModel(readFileChecked(file, `inspect ${file}`, MAX_MODEL_BYTES), `inspect ${file}`);
  const s = { ...summarize(m, file), training: trainability(m, file) };
  if (values.json) return (void console.log(JSON.stringify(s)), 0);
  const fmt = (v: { name: string; dtype: string; shape: (number | string)[] }) =>
    `  ${v.name}: ${v.dtype} [${v.shape.join(',')}]`;
  const byLayer = new Map<string, ParamRow[]>();
  for (const p of s.parameters) {
    const layer = p.name.slice(0, p.name.lastIndexOf('.'));
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), p]);
  }
  const rows = [['layer', 'parameter', 'shape', 'count']];
  for (const [layer, ps] of byLayer) {
    ps.forEach((p, i) =>
      rows.push([
        i === 0 ? layer : '',
        p.name.slice(layer.length + 1),
        `[${p.shape.join(',')}]`,
        p.count.toLocaleString('en-US'),
      ]),
    );
  }
  console.log(
    [
      `${file}: graph "${s.graph}", IR ${s.irVersion}, opset ${s.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}, producer ${s.producer || 'unknown'}`,
      'inputs:',
      ...s.inputs.map(fmt),
      'outputs:',
      ...s.outputs.map(fmt),
      `ops (${s.nodes} nodes): ${Object.entries(s.ops)
        .map(([op, n]) => `${op} ${n}`)
        .join(', ')}`,
      '',
      rows.length > 1 ? table(rows) : 'no parameters',
      '',
      `total parameters: ${s.totalParameters.toLocaleString('en-US')}${s.optimizerStateTensors ? ` (plus ${s.optimizerStateTensors} optimizer state tensors)` : ''}`,
      ...(Object.keys(s.metadata).length
        ? ['metadata:', ...Object.entries(s.metadata).map(([k, v]) => `  ${k}: ${v}`)]
        : []),
      trainingLine(s.training),
    ].join('\n'),
  );
  return 0;
}

/** What `train --model FILE` would train, in one line. */
function trainingLine(t: Trainability): string {
  if (!t.trainable && t.network)
    return `ingraph train: ${t.reason}; train on from it with --model ${t.network} --init FILE`;
  if (!t.trainable) return `ingraph train --model FILE: cannot train it: ${t.reason}`;
  const extras = [t.batchNorm ? `${t.batchNorm} BatchNorm layers (running statistics)` : '', t.dropout ? 'Dropout' : '']
    .filter(Boolean)
    .join(', ');
  const what = `${t.parameters.toLocaleString('en-US')} parameters in ${t.tensors} tensors`;
  return `ingraph train --model FILE: can train it: ${what}${extras ? `; ${extras}` : ''}`;
}
