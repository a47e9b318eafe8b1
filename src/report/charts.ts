/**
 * The report's plots as Vega-Lite specs, rendered to SVG in Node by Vega (no browser, no canvas, no network): the
 * report stays a static file whose pictures need no script to appear.
 */
import type { TopLevelSpec } from 'vega-lite';
import { EpochResult, LogEntry } from '../options';

/** A run's curves, under the name that tells it apart in an overlay. */
export interface Curves {
  run: string;
  log: readonly LogEntry[];
  epochs: readonly EpochResult[];
}

const CONFIG = {
  font: 'sans-serif',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { orient: 'bottom', labelLimit: 400 },
};

/** The SVG of a Vega-Lite spec. Vega is loaded on first use: it takes longer to load than a command takes to start. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile({ ...spec, config: CONFIG } as TopLevelSpec).spec), {
    renderer: 'none',
  });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Colour by run, in the runs' order, only when there are several: a single run keeps one plain line. */
function byRun(curves: readonly Curves[]): object {
  return curves.length > 1
    ? { color: { field: 'run', type: 'nominal', title: null, scale: { domain: curves.map((c) => c.run) } } }
    : {};
}

/** The mean training loss of every logged step (log scale: the interesting part is the long tail). */
export function lossChart(curves: readonly Curves[]): TopLevelSpec {
  const values = curves.flatMap((c) => c.log.map((e) => ({ run: c.run, step: e.step, loss: e.loss, epoch: e.epoch })));
  return {
    width: 480,
    height: 220,
    data: { values },
    mark: { type: 'line', point: values.length <= 60, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'loss (log scale)', scale: { type: 'log', nice: false } },
      ...byRun(curves),
    },
  };
}

/** The learning rate at every logged step. */
export function lrChart(curves: readonly Curves[]): TopLevelSpec {
  const values = curves.flatMap((c) => c.log.map((e) => ({ run: c.run, step: e.step, lr: e.lr })));
  return {
    width: 480,
    height: 80,
    data: { values },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'lr', type: 'quantitative', title: 'learning rate' },
      ...byRun(curves),
    },
  };
}

/** Test (and training) accuracy after each epoch. */
export function accuracyChart(curves: readonly Curves[]): TopLevelSpec {
  const values = curves.flatMap((c) =>
    c.epochs.flatMap((e) => [
      { run: c.run, epoch: e.epoch, set: 'test', accuracy: 100 * e.testAccuracy },
      { run: c.run, epoch: e.epoch, set: 'training (running, during the epoch)', accuracy: 100 * e.trainAccuracy },
    ]),
  );
  return {
    width: 420,
    height: 220,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'ordinal', title: 'epoch', axis: { labelAngle: 0 } },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { zero: false } },
      strokeDash: { field: 'set', type: 'nominal', title: null },
      ...byRun(curves),
    },
  };
}

/** How a chart labels K classes: by name where they have names, smaller and turned where there are many. */
function classAxis(classes: number, names?: readonly string[]) {
  const many = classes > 20;
  const order = Array.from({ length: classes }, (_, k) => names?.[k] ?? String(k));
  const axis = { labelAngle: names || many ? -90 : 0, ...(many ? { labelFontSize: 8 } : {}) };
  return { order, axis, side: Math.max(330, classes * (many ? 9 : 33)), many };
}

/**
 * The confusion matrix as a heatmap (square root colour scale, so small counts off the diagonal still show), its
 * classes named where `names` are given; counts are written in the cells up to 20 classes.
 */
export function confusionChart(confusion: readonly (readonly number[])[], names?: readonly string[]): TopLevelSpec {
  const k = classAxis(confusion.length, names);
  const label = (i: number) => (names ? k.order[i] : i);
  const values = confusion.flatMap((row, t) =>
    row.map((count, p) => ({ truth: label(t), predicted: label(p), count })),
  );
  const max = Math.max(1, ...values.map((v) => v.count));
  // Names read across on the rows, turned on the columns.
  const axis = (title: string, across: boolean) => ({
    type: 'ordinal',
    title,
    axis: across ? { ...k.axis, labelAngle: 0 } : k.axis,
    ...(names ? { sort: k.order } : {}),
  });
  return {
    width: k.side,
    height: k.side,
    data: { values },
    encoding: {
      x: { field: 'predicted', ...axis('predicted label', false) },
      y: { field: 'truth', ...axis('true label', true) },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'count', type: 'quantitative', scale: { type: 'sqrt', scheme: 'blues' }, title: 'images' },
        },
      },
      ...(k.many
        ? []
        : [
            {
              mark: { type: 'text', fontSize: 10 },
              encoding: {
                text: { field: 'count', type: 'quantitative' },
                color: { condition: { test: `datum.count > ${max / 3}`, value: 'white' }, value: 'black' },
                opacity: { condition: { test: 'datum.count == 0', value: 0 }, value: 1 },
              },
            },
          ]),
    ],
  } as TopLevelSpec;
}

/** Accuracy of each true label, named where the classes have names; values written on the bars up to 20 classes. */
export function perClassChart(
  perClass: readonly { label: number; name?: string; accuracy: number; total: number }[],
): TopLevelSpec {
  const names = perClass.every((c) => c.name !== undefined) ? perClass.map((c) => c.name as string) : undefined;
  const k = classAxis(perClass.length, names);
  const values = perClass.map((c) => ({ label: c.name ?? c.label, accuracy: 100 * c.accuracy, total: c.total }));
  return {
    width: k.side,
    height: 200,
    data: { values },
    encoding: {
      x: { field: 'label', type: 'ordinal', title: 'true label', axis: k.axis, ...(names ? { sort: k.order } : {}) },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { domain: [0, 100] } },
    },
    layer: [
      { mark: { type: 'bar', color: '#4c78a8' } },
      ...(k.many
        ? []
        : [
            {
              mark: { type: 'text', dy: -6, fontSize: 10 },
              encoding: { text: { field: 'accuracy', type: 'quantitative', format: '.1f' } },
            },
          ]),
    ],
  } as TopLevelSpec;
}
