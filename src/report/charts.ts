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

/** The confusion matrix as a heatmap (square root colour scale, so small counts off the diagonal still show). */
export function confusionChart(confusion: readonly (readonly number[])[]): TopLevelSpec {
  const values = confusion.flatMap((row, truth) => row.map((count, predicted) => ({ truth, predicted, count })));
  const max = Math.max(1, ...values.map((v) => v.count));
  const axis = (title: string) => ({ type: 'ordinal', title, axis: { labelAngle: 0 } });
  return {
    width: 330,
    height: 330,
    data: { values },
    encoding: { x: { field: 'predicted', ...axis('predicted label') }, y: { field: 'truth', ...axis('true label') } },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'count', type: 'quantitative', scale: { type: 'sqrt', scheme: 'blues' }, title: 'images' },
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${max / 3}`, value: 'white' }, value: 'black' },
          opacity: { condition: { test: 'datum.count == 0', value: 0 }, value: 1 },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Accuracy of each true label. */
export function perClassChart(perClass: readonly { label: number; accuracy: number; total: number }[]): TopLevelSpec {
  const values = perClass.map((c) => ({ label: c.label, accuracy: 100 * c.accuracy, total: c.total }));
  return {
    width: 330,
    height: 200,
    data: { values },
    encoding: {
      x: { field: 'label', type: 'ordinal', title: 'true label', axis: { labelAngle: 0 } },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { domain: [0, 100] } },
    },
    layer: [
      { mark: { type: 'bar', color: '#4c78a8' } },
      {
        mark: { type: 'text', dy: -6, fontSize: 10 },
        encoding: { text: { field: 'accuracy', type: 'quantitative', format: '.1f' } },
      },
    ],
  };
}
