/**
 * Run reports: what a run records for them (metrics.json against the run's own --json event stream; evaluation.json
 * against onnxruntime's in-graph probabilities and the raw test files), the report opened in Debian's headless
 * Chromium (every plot laid out with its marks, every digit decoded with exactly the test image's pixels), two runs
 * compared, `eval --report` of a random-weight model (its predictions collapse onto a few classes), and bad input.
 * Screenshots land in artifacts/screenshots/. The browser checks are skipped, with a warning, without Chromium.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'fs';
import { spawnSync } from 'child_process';
import { basename, join } from 'path';
import * as ort from 'onnxruntime-node';
import { Reader } from 'protobufjs';
import { Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from './helpers/browser';
import { mnistSlice, rawImages, rawLabels, ROOT, runCli, tempDir } from './helpers/cli';

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn('report.test.ts: no /usr/bin/chromium (apt-get install chromium); the browser checks are skipped');
const inBrowser = hasChromium ? it : it.skip;
const SHOTS = join(ROOT, 'artifacts', 'screenshots');
const TEST_IMAGES = 400;
const data = mnistSlice(640, TEST_IMAGES);
const base = [
  'train',
  '--model',
  'residual',
  '--data',
  data,
  '--epochs',
  '2',
  '--log-every',
  '2',
  '--ep',
  'cpu',
  '--threads',
  '2',
  '--json',
];

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const events = (stdout: string, type: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === type);

/** What the page shows, measured by the browser's layout: each plot's size and marks, each digit's decoded pixels. */
async function rendered(page: Page) {
  return page.evaluate(async () => {
    const visible = (e: Element) => {
      const b = (e as SVGGraphicsElement).getBBox();
      return b.width > 0 || b.height > 0;
    };
    const charts = Array.from(document.querySelectorAll('.chart')).map((c) => {
      const svg = c.querySelector('svg') as SVGSVGElement;
      const marks = (kind: string) =>
        Array.from(svg.querySelectorAll(`.mark-${kind}.role-mark > path`)).filter(visible).length;
      return {
        title: c.querySelector('h3')?.textContent ?? '',
        width: svg.getBoundingClientRect().width,
        lines: marks('line'),
        symbols: marks('symbol'),
        rects: marks('rect'),
        texts: Array.from(svg.querySelectorAll('.mark-text.role-mark text'))
          .filter(visible)
          .map((t) => t.textContent),
      };
    });
    const images = Array.from(document.querySelectorAll<HTMLImageElement>('.digits img'));
    await Promise.all(images.map((img) => img.decode()));
    const digits = images.map((img) => {
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 28;
      const g = canvas.getContext('2d') as CanvasRenderingContext2D;
      g.drawImage(img, 0, 0);
      const rgba = g.getImageData(0, 0, 28, 28).data;
      const d = (img.parentElement as HTMLElement).dataset;
      return {
        index: Number(d.index),
        label: Number(d.label),
        predicted: Number(d.predicted),
        natural: img.naturalWidth,
        shown: img.getBoundingClientRect().width,
        pixels: Array.from({ length: 784 }, (_, k) => rgba[4 * k]),
      };
    });
    return { charts, digits };
  });
}

async function openReport(file: string, shot: string): Promise<Awaited<ReturnType<typeof rendered>>> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    // Nothing outside the file may load: the report is self-contained.
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${file}`);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, shot), fullPage: true });
    const shown = await rendered(page);
    expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
    return shown;
  } finally {
    await browser.close();
  }
}

/**
 * TFRecord framing read by Debian's python3-crc32c (a CRC-32C implementation independent of ingraph's): every length
 * and record checked against its masked CRC; the records' bytes come back as hex.
 */
const TFRECORD = `
import crc32c, json, struct, sys
mask = lambda c: ((((c >> 15) | (c << 17)) & 0xffffffff) + 0xa282ead8) & 0xffffffff
data, out, at = open(sys.argv[1], 'rb').read(), [], 0
while at < len(data):
    head = data[at:at + 8]
    (n,) = struct.unpack('<Q', head)
    assert struct.unpack('<I', data[at + 8:at + 12])[0] == mask(crc32c.crc32c(head)), 'length crc'
    body = data[at + 12:at + 12 + n]
    assert struct.unpack('<I', data[at + 12 + n:at + 16 + n])[0] == mask(crc32c.crc32c(body)), 'data crc'
    out.append(body.hex())
    at += 16 + n
print(json.dumps(out))
`;
const hasCrc32c = spawnSync('/usr/bin/python3', ['-c', 'import crc32c'], { encoding: 'utf8' }).status === 0;
if (!hasCrc32c)
  console.warn(
    'report.test.ts: /usr/bin/python3 has no crc32c module (apt-get install python3-crc32c); the TensorBoard file test is skipped',
  );

/** An Event proto by its wire format (event.proto: wall_time 1, step 2, file_version 3, summary 5; summary.proto: value 1 {tag 1, simple_value 2}). */
function decodeEvent(bytes: Uint8Array): { step: number; fileVersion?: string; scalars: Record<string, number> } {
  const r = Reader.create(bytes);
  const e: { step: number; fileVersion?: string; scalars: Record<string, number> } = { step: 0, scalars: {} };
  while (r.pos < r.len) {
    const key = r.uint32();
    if (key >>> 3 === 1) r.double();
    else if (key >>> 3 === 2) e.step = Number(r.int64());
    else if (key >>> 3 === 3) e.fileVersion = r.string();
    else if (key >>> 3 === 5) {
      const summary = Reader.create(r.bytes());
      while (summary.pos < summary.len) {
        summary.uint32();
        const value = Reader.create(summary.bytes());
        let tag = '';
        let x = NaN;
        while (value.pos < value.len) {
          const k = value.uint32();
          if (k >>> 3 === 1) tag = value.string();
          else if (k >>> 3 === 2) x = value.float();
          else value.skipType(k & 7);
        }
        e.scalars[tag] = x;
      }
    } else r.skipType(key & 7);
  }
  return e;
}

describe('a run report', () => {
  const run = tempDir();
  const tensorboard = tempDir();
  let stdout = '';
  beforeAll(() => {
    const r = runCli([...base, '--out', run, '--tensorboard', tensorboard]);
    expect([r.code, r.stderr]).toEqual([0, expect.any(String)]);
    stdout = r.stdout;
  });

  it('metrics.json holds every logged loss and learning rate and every epoch, as the run reported them', () => {
    const metrics = readJson(join(run, 'metrics.json'));
    expect(metrics.log).toEqual(
      events(stdout, 'log').map(({ step, epoch, batch, loss, lr }) => ({ step, epoch, batch, loss, lr })),
    );
    expect(metrics.log).toHaveLength(10);
    expect(metrics.epochs).toEqual(
      events(stdout, 'epoch').map(({ epoch, trainLoss, trainAccuracy, testAccuracy }) => ({
        epoch,
        trainLoss,
        trainAccuracy,
        testAccuracy,
      })),
    );
    const manifest = readJson(join(run, 'manifest.json'));
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(['metrics.json', 'evaluation.json']));
  });

  it("evaluation.json: the confusion matrix of the test labels, mistakes with their pixels and onnxruntime's probability", async () => {
    const e = readJson(join(run, 'evaluation.json'));
    const labels = rawLabels(data);
    const images = rawImages(data);
    expect(e.confusion.map((row: number[]) => row.reduce((a, b) => a + b, 0))).toEqual(
      Array.from({ length: 10 }, (_, k) => labels.filter((l) => l === k).length),
    );
    expect(e.total - e.correct).toBe(
      e.confusion.flat().reduce((a: number, b: number) => a + b, 0) -
        e.confusion.reduce((a: number, row: number[], k: number) => a + row[k], 0),
    );
    expect(e.mistakes.length).toBe(Math.min(48, e.total - e.correct));
    const session = await ort.InferenceSession.create(join(run, 'inference.onnx'));
    const out = await session.run({ images: new ort.Tensor('uint8', images, [TEST_IMAGES, 1, 28, 28]) });
    const probabilities = out.probabilities.data as Float32Array;
    const predicted = out.label.data as BigInt64Array;
    for (const m of e.mistakes) {
      expect(
        Buffer.from(m.pixels, 'base64').equals(Buffer.from(images.subarray(m.index * 784, (m.index + 1) * 784))),
      ).toBe(true);
      expect([m.label, m.predicted]).toEqual([labels[m.index], Number(predicted[m.index])]);
      expect(m.probability).toBeCloseTo(probabilities[m.index * 10 + m.predicted], 5);
    }
    const shown = e.mistakes.map((m: { probability: number }) => m.probability);
    expect(shown).toEqual([...shown].sort((a, b) => b - a));
    await session.release();
  });

  inBrowser(
    'report.html renders in Chromium: curves, heatmap, per-class bars and the digits, pixel for pixel',
    async () => {
      const metrics = readJson(join(run, 'metrics.json'));
      const e = readJson(join(run, 'evaluation.json'));
      const { charts, digits } = await openReport(join(run, 'report.html'), 'report-run.png');
      const chart = (title: RegExp) => charts.find((c) => title.test(c.title)) as (typeof charts)[0];
      expect(charts.every((c) => c.width > 200)).toBe(true);
      expect(chart(/^Training loss/)).toMatchObject({ lines: 1, symbols: metrics.log.length });
      expect(chart(/^Learning rate/).lines).toBe(1);
      expect(chart(/^Accuracy after each epoch/)).toMatchObject({ lines: 2, symbols: 4 });
      const heatmap = chart(/^Confusion/);
      expect(heatmap.rects).toBe(100);
      expect(heatmap.texts.map(Number)).toEqual(e.confusion.flat());
      expect(chart(/per class/).rects).toBe(10);
      const images = rawImages(data);
      expect(digits.length).toBe(e.mistakes.length);
      for (const d of digits) {
        expect([d.natural, d.shown >= 56, d.label === d.predicted]).toEqual([28, true, false]);
        expect(d.pixels).toEqual(Array.from(images.subarray(d.index * 784, (d.index + 1) * 784)));
      }
    },
  );

  inBrowser('ingraph report --compare overlays a second run on the curves', async () => {
    const other = tempDir();
    expect(runCli([...base, '--seed', '7', '--out', other]).code).toBe(0);
    const out = join(tempDir(), 'compare.html');
    const r = runCli(['report', run, '--compare', other, '--out', out]);
    expect([r.code, r.stdout.trim()]).toEqual([0, `wrote ${out}`]);
    const { charts } = await openReport(out, 'report-compare.png');
    expect(charts.find((c) => /^Training loss/.test(c.title))?.lines).toBe(2);
    expect(charts.find((c) => /^Accuracy after/.test(c.title))?.lines).toBe(4);
  });

  (hasCrc32c ? it : it.skip)(
    '--tensorboard: an event file TensorBoard reads, with every logged loss and epoch; report writes the same',
    () => {
      const file = join(tensorboard, basename(run), 'events.out.tfevents.ingraph');
      const r = spawnSync('/usr/bin/python3', ['-c', TFRECORD, file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      const events = (JSON.parse(r.stdout) as string[]).map((hex) => decodeEvent(Buffer.from(hex, 'hex')));
      expect(events[0]).toMatchObject({ fileVersion: 'brain.Event:2' });
      const metrics = readJson(join(run, 'metrics.json'));
      const f32 = (x: number) => Math.fround(x);
      expect(events.slice(1)).toEqual([
        ...metrics.log.map((e: { step: number; loss: number; lr: number }) => ({
          step: e.step,
          scalars: { 'train/loss': f32(e.loss), 'train/lr': f32(e.lr) },
        })),
        ...metrics.epochs.map(
          (e: { epoch: number; testAccuracy: number; trainAccuracy: number; trainLoss: number }) => ({
            step: e.epoch,
            scalars: {
              'epoch/test_accuracy': f32(e.testAccuracy),
              'epoch/train_accuracy': f32(e.trainAccuracy),
              'epoch/train_loss': f32(e.trainLoss),
            },
          }),
        ),
      ]);
      const again = tempDir();
      expect(runCli(['report', run, '--out', join(again, 'r.html'), '--tensorboard', again]).code).toBe(0);
      expect(readFileSync(join(again, basename(run), 'events.out.tfevents.ingraph')).equals(readFileSync(file))).toBe(
        true,
      );
    },
  );

  describe('bad input: exit 2, one line naming the file, nothing written', () => {
    const cases: Record<string, (dir: string) => void> = {
      'a directory that is not a run': (dir) => writeFileSync(join(dir, 'notes.txt'), 'x'),
      'a run stopped before its end (no manifest.json)': (dir) =>
        copyFileSync(join(run, 'checkpoint.onnx'), join(dir, 'checkpoint.onnx')),
      'a torn metrics.json': (dir) => (copyRun(dir), truncateSync(join(dir, 'metrics.json'), 100)),
      'a missing evaluation.json': (dir) => (copyRun(dir), rmSync(join(dir, 'evaluation.json'))),
      'an emptied evaluation.json': (dir) => (copyRun(dir), truncateSync(join(dir, 'evaluation.json'), 0)),
      'a torn manifest.json': (dir) => (copyRun(dir), truncateSync(join(dir, 'manifest.json'), 50)),
      'a run of an ingraph that kept no metrics': (dir) => {
        copyRun(dir);
        const manifest = readJson(join(dir, 'manifest.json'));
        delete manifest.files['metrics.json'];
        writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
      },
    };
    const messages: Record<string, RegExp> = {
      'a directory that is not a run': /^ingraph: run \S+: not a finished training run \(no manifest\.json\)$/,
      'a run stopped before its end (no manifest.json)':
        /^ingraph: run \S+: not a finished training run \(no manifest\.json\)$/,
      'a torn metrics.json':
        /^ingraph: run \S+: metrics\.json: does not match its sha256 in manifest\.json \(torn or changed since the run\)$/,
      'a missing evaluation.json': /^ingraph: run \S+: evaluation\.json: no such file$/,
      'an emptied evaluation.json': /^ingraph: run \S+: evaluation\.json: does not match its sha256/,
      'a torn manifest.json': /^ingraph: run \S+: manifest\.json: torn or not JSON \(/,
      'a run of an ingraph that kept no metrics':
        /^ingraph: run \S+: its manifest records no metrics\.json \(made by an ingraph that kept no metrics\); train it again for a report$/,
    };
    const copyRun = (dir: string) => readdirSync(run).forEach((f) => copyFileSync(join(run, f), join(dir, f)));

    it.each(Object.keys(cases))('%s', (name) => {
      const dir = tempDir();
      cases[name](dir);
      const before = readdirSync(dir).sort();
      const r = runCli(['report', dir]);
      expect([r.code, r.stderr.trim().split('\n').length]).toEqual([2, 1]);
      expect(r.stderr.trim()).toMatch(messages[name]);
      expect(readdirSync(dir).sort()).toEqual(before);
    });

    it('a missing run directory, and --compare naming a non-run', () => {
      const missing = runCli(['report', join(tempDir(), 'nope')]);
      expect([missing.code, missing.stderr.trim()]).toEqual([
        2,
        expect.stringMatching(/^ingraph: run \S+nope: no such directory$/),
      ]);
      const out = join(tempDir(), 'r.html');
      const r = runCli(['report', run, '--compare', data, '--out', out]);
      expect([r.code, r.stderr.trim()]).toEqual([
        2,
        `ingraph: --compare ${data}: not a finished training run (no manifest.json)`,
      ]);
      expect(existsSync(out)).toBe(false);
    });
  });
});

describe('ingraph eval --report', () => {
  inBrowser('a random-weight model: the heatmap shows the collapse onto a few predicted classes', async () => {
    const dir = tempDir();
    const model = join(dir, 'random.onnx');
    expect(runCli(['export', '--model', 'residual', '--seed', '0', '--out', model]).code).toBe(0);
    const r = runCli(['eval', '--model-file', model, '--data', data, '--report', join(dir, 'eval.html'), '--json']);
    expect(r.code).toBe(0);
    const columns = Array.from({ length: 10 }, (_, k) =>
      JSON.parse(r.stdout).confusion.reduce((a: number, row: number[]) => a + row[k], 0),
    ).sort((a, b) => b - a);
    expect(columns[0] + columns[1]).toBeGreaterThan(0.9 * TEST_IMAGES);
    const { charts, digits } = await openReport(join(dir, 'eval.html'), 'report-eval-random.png');
    expect(charts.map((c) => c.title)).toEqual([expect.stringMatching(/^Confusion/), 'Accuracy per class']);
    expect(charts[0].rects).toBe(100);
    expect(digits.length).toBe(48);
  });

  it('--report into a missing directory: exit 2, one line, nothing evaluated or written', () => {
    const dir = tempDir();
    const r = runCli(['eval', '--model-file', join(dir, 'none.onnx'), '--report', join(dir, 'no', 'such', 'r.html')]);
    expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringMatching(/^ingraph: --report \S+r\.html: /)]);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('the report of a run that stopped before its first log line and epoch', () => {
  it('says so instead of drawing empty charts (an empty chart rendered at 1.8e308 pixels and blanked the page)', () => {
    const out = join(tempDir(), 'run');
    expect(runCli(['train', '--model', 'residual', '--data', data, '--max-steps', '2', '--out', out]).code).toBe(0);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).not.toContain('e+308');
    expect(html).toContain('No epoch ended in this run.');
    expect(html).toContain('No loss was logged: the run stopped before its first log line.');
  });
});
