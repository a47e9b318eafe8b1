/**
 * The report: one self-contained HTML file (inline SVG plots, digits as PNG data URLs, no script, no network) with
 * a run's curves (a second run overlaid to compare), its evaluation and its facts.
 */
import { basename } from 'path';
import { PACKAGE_VERSION } from '../version';
import { accuracyChart, confusionChart, Curves, lossChart, lrChart, perClassChart, renderSvg } from './charts';
import { imagePngUrl } from './png';
import { recordImageShape, EvaluationRecord, MistakeRecord, RunRecord } from '../run/records';

/** What a report shows. */
export interface ReportInput {
  title: string;
  /** Finished runs: the first is the subject; a second is overlaid on its curves for comparison. */
  runs: readonly RunRecord[];
  /** The evaluation shown: the first run's, or that of any model (`evaluationReport`). */
  evaluation: EvaluationRecord | null;
  /** Facts about the evaluated model when no run tells them (file, hash, speed, provider), as label/value rows. */
  facts?: readonly (readonly [string, string])[];
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:14px;margin:16px 0 4px}
.row{display:flex;flex-wrap:wrap;gap:32px}table{border-collapse:collapse;font-size:13px}
td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}th{white-space:nowrap}td.hash{font-family:monospace;font-size:12px}
.digits{display:grid;grid-template-columns:repeat(auto-fill,minmax(84px,1fr));gap:10px}
.digits figure{margin:0;text-align:center;font-size:12px}.digits img{width:56px;height:56px;image-rendering:pixelated;border:1px solid #ccc}
.muted{color:#777}`;

/** Distinct names for the runs in legends: their directory names, or whole paths when those collide. */
function runNames(runs: readonly RunRecord[]): string[] {
  const names = runs.map((r) => basename(r.dir));
  return new Set(names).size === names.length ? names : runs.map((r) => r.dir);
}

async function figure(title: string, svg: Promise<string>): Promise<string> {
  return `<div class="chart"><h3>${escapeHtml(title)}</h3>${await svg}</div>`;
}

/** A chart of `points` points, or a line saying there is nothing to draw (an empty chart renders at no size). */
async function chartOrNote(title: string, points: number, spec: () => ReturnType<typeof lossChart>, none: string) {
  if (points > 0) return figure(title, renderSvg(spec()));
  return `<div class="chart"><h3>${escapeHtml(title)}</h3><p class="muted">${escapeHtml(none)}</p></div>`;
}

async function trainingSection(runs: readonly RunRecord[], names: string[]): Promise<string> {
  const curves: Curves[] = runs.map((r, i) => ({ run: names[i], log: r.metrics.log, epochs: r.metrics.epochs }));
  const logged = curves.reduce((n, c) => n + c.log.length, 0);
  const epochs = curves.reduce((n, c) => n + c.epochs.length, 0);
  const noLog = 'No loss was logged: the run stopped before its first log line.';
  const parts = await Promise.all([
    chartOrNote(
      'Training loss: the mean of the steps since the previous log line',
      logged,
      () => lossChart(curves),
      noLog,
    ),
    chartOrNote('Learning rate', logged, () => lrChart(curves), noLog),
    chartOrNote('Accuracy after each epoch', epochs, () => accuracyChart(curves), 'No epoch ended in this run.'),
  ]);
  return `<h2>Training</h2><div class="row"><div>${parts[0]}${parts[1]}</div>${parts[2]}</div>`;
}

function digit(m: MistakeRecord, e: EvaluationRecord): string {
  const src = imagePngUrl(new Uint8Array(Buffer.from(m.pixels, 'base64')), recordImageShape(e));
  const name = (k: number) => escapeHtml(e.classNames?.[k] ?? String(k));
  const probability = `<span class="muted">${(100 * m.probability).toFixed(0)}%</span>`;
  const caption = `true ${name(m.label)} → ${name(m.predicted)} ${probability}`;
  return `<figure data-label="${m.label}" data-predicted="${m.predicted}" data-index="${m.index}"><img alt="test image ${m.index}" src="${src}"><figcaption>${caption}</figcaption></figure>`;
}

async function evaluationSection(e: EvaluationRecord): Promise<string> {
  const [confusion, perClass] = await Promise.all([
    figure(
      'Confusion matrix (rows: true label, columns: predicted)',
      renderSvg(confusionChart(e.confusion, e.classNames)),
    ),
    figure('Accuracy per class', renderSvg(perClassChart(e.perClass))),
  ]);
  const mistakes = e.mistakes.length
    ? `<div class="digits">${e.mistakes.map((m) => digit(m, e)).join('')}</div>`
    : '<p class="muted">No misclassified images.</p>';
  return `<h2>Evaluation: ${escapeHtml(e.model)}</h2>
<p>Test accuracy <b>${percent(e.accuracy)}</b> (${e.correct} of ${e.total} images).</p>
<div class="row">${confusion}${perClass}</div>
<h3>The most confident mistakes (${e.mistakes.length} of ${e.total - e.correct}): true label → predicted, with its probability</h3>${mistakes}`;
}

/** The facts of each run side by side: configuration, result, speed, host, versions and file hashes. */
function factsSection(runs: readonly RunRecord[], names: string[]): string {
  const rows: [string, (r: RunRecord) => string][] = [
    ['directory', (r) => r.dir],
    ['network', (r) => r.manifest.model],
    [
      'final test accuracy',
      (r) => `${percent(r.manifest.final.accuracy)} (${r.manifest.final.correct}/${r.manifest.final.total})`,
    ],
    [
      'int8 export accuracy',
      (r) =>
        r.manifest.int8
          ? `${percent(r.manifest.int8.accuracy)} (calibrated on ${r.manifest.int8.calibrationImages} training images)`
          : '—',
    ],
    ['steps', (r) => String(r.manifest.steps)],
    ...Object.keys(runs[0].manifest.config)
      .filter((k) => k !== 'model')
      .map((k): [string, (r: RunRecord) => string] => [
        k,
        (r) => JSON.stringify(r.manifest.config[k as keyof typeof r.manifest.config] ?? null),
      ]),
    ['execution provider', (r) => r.manifest.ep],
    [
      'training speed',
      (r) =>
        r.manifest.host.imagesPerSecond === null
          ? '—'
          : `${Math.round(r.manifest.host.imagesPerSecond)} images/s, ${r.manifest.host.stepsPerSecond?.toFixed(1)} steps/s`,
    ],
    [
      'threads',
      ({ manifest: { host } }) => {
        const workers = host.workers && host.workers > 1 ? ` (${host.workers} data-parallel workers)` : '';
        return `${host.threads ?? 'all cores'}${workers}`;
      },
    ],
    ['peak memory', (r) => `${Math.round(r.manifest.host.peakRssMB)} MB`],
    [
      'host',
      (r) =>
        `${r.manifest.host.hostname} (${r.manifest.host.cpus} CPUs, Node ${r.manifest.host.node}), finished ${r.manifest.host.finishedAt}`,
    ],
    ['versions', (r) => `ingraph ${r.manifest.ingraph}, onnxruntime ${r.manifest.onnxruntime}`],
  ];
  const files = [...new Set(runs.flatMap((r) => Object.keys(r.manifest.files)))];
  const head = `<tr><th></th>${names.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}</tr>`;
  const body = rows.map(
    ([label, value]) =>
      `<tr><th>${escapeHtml(label)}</th>${runs.map((r) => `<td>${escapeHtml(value(r))}</td>`).join('')}</tr>`,
  );
  const hashes = files.map(
    (f) =>
      `<tr><th>${escapeHtml(f)}</th>${runs.map((r) => `<td class="hash">${r.manifest.files[f]?.sha256 ?? '—'}</td>`).join('')}</tr>`,
  );
  return `<h2>Run</h2><table>${head}${body.join('')}<tr><th colspan="${runs.length + 1}">SHA-256 of the files</th></tr>${hashes.join('')}</table>`;
}

function factsTable(facts: readonly (readonly [string, string])[]): string {
  return `<table>${facts.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

/** The report's HTML. */
export async function renderReport(input: ReportInput): Promise<string> {
  const names = runNames(input.runs);
  const sections = [
    input.facts?.length ? factsTable(input.facts) : '',
    input.runs.length ? await trainingSection(input.runs, names) : '',
    input.evaluation ? await evaluationSection(input.evaluation) : '',
    input.runs.length ? factsSection(input.runs, names) : '',
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(input.title)}</h1>
<p class="muted">Written by ingraph ${PACKAGE_VERSION} on ${new Date().toISOString()}.</p>
${sections.filter(Boolean).join('\n')}
</body></html>
`;
}
