// The page: draw a digit, see the label and the ten probabilities of an exported ingraph model (onnxruntime-web,
// wasm). A model comes from the server (`ingraph serve --model-file`) or is dropped onto the page.
'use strict';

const pad = document.getElementById('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true });
const status = document.getElementById('status');
let session = null;

function say(text, error = false) {
  status.textContent = text;
  status.className = error ? 'error' : '';
}

/** The drawing as MNIST sees a digit: 28x28 uint8, white on black, the ink's bounding box centred in 20x20. */
function toImage() {
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const s = small.getContext('2d');
  s.fillStyle = '#000';
  s.fillRect(0, 0, 28, 28);
  const box = inkBox();
  if (box) {
    const side = Math.max(box.w, box.h);
    const scale = 20 / side;
    s.imageSmoothingEnabled = true;
    s.drawImage(
      pad,
      box.x,
      box.y,
      box.w,
      box.h,
      14 - (box.w * scale) / 2,
      14 - (box.h * scale) / 2,
      box.w * scale,
      box.h * scale,
    );
  }
  const rgba = s.getImageData(0, 0, 28, 28).data;
  return Uint8Array.from({ length: 784 }, (_, i) => rgba[4 * i]);
}

function inkBox() {
  const { data, width, height } = ctx.getImageData(0, 0, pad.width, pad.height);
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0)
        [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    }
  }
  return x1 < 0 ? null : { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

async function classify() {
  if (!session) return;
  const out = await session.run({ images: new ort.Tensor('uint8', toImage(), [1, 1, 28, 28]) });
  const probs = Array.from(out.probabilities.data);
  const best = probs.indexOf(Math.max(...probs));
  document.getElementById('label').textContent = inkBox() ? String(best) : '?';
  document.getElementById('bars').innerHTML = probs
    .map(
      (p, k) =>
        `<li><span class="name">${k}</span><span class="bar" style="width:${Math.round(240 * p)}px"></span><span class="p">${(100 * p).toFixed(1)}%</span></li>`,
    )
    .join('');
}

/** Whether the browser has a WebGPU adapter; classification runs there when it does, else in wasm. */
let webGpu = null;
async function hasWebGpu() {
  if (webGpu === null) webGpu = !!(navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null)));
  return webGpu;
}

/** Opens a model, refusing with a clear message what is not an ingraph-style inference model. */
async function load(bytes, name) {
  const kept = session ? ' (the previous model is still in use)' : '';
  let s;
  try {
    s = await ort.InferenceSession.create(bytes, {
      executionProviders: (await hasWebGpu()) ? ['webgpu', 'wasm'] : ['wasm'],
    });
  } catch (e) {
    return say(`${name}: not an ONNX model this page can run (${String(e.message || e).split('\n')[0]})${kept}`, true);
  }
  if (!s.inputNames.includes('images') || !s.outputNames.includes('probabilities')) {
    return say(
      `${name}: expected an input "images" (uint8 [N,1,28,28]) and an output "probabilities"; found inputs ${s.inputNames.join(', ')} and outputs ${s.outputNames.join(', ')}${kept}`,
      true,
    );
  }
  session = s;
  say(`model: ${name} (${(await hasWebGpu()) ? 'WebGPU' : 'wasm'})`);
  await classify();
}

function draw(e) {
  const r = pad.getBoundingClientRect();
  ctx.fillStyle = '#fff';
  ctx.beginPath();
  ctx.arc(e.clientX - r.left, e.clientY - r.top, 11, 0, 2 * Math.PI);
  ctx.fill();
}

let drawing = false;
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  draw(e);
});
pad.addEventListener('pointermove', (e) => drawing && draw(e));
window.addEventListener('pointerup', () => {
  if (drawing) {
    drawing = false;
    classify();
  }
});
document.getElementById('clear').addEventListener('click', () => {
  ctx.clearRect(0, 0, pad.width, pad.height);
  classify();
});
document.getElementById('file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) await load(new Uint8Array(await f.arrayBuffer()), f.name);
});
document.addEventListener('dragover', (e) => {
  e.preventDefault();
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', async (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  const f = e.dataTransfer.files[0];
  if (f) await load(new Uint8Array(await f.arrayBuffer()), f.name);
});

// ---- training in the browser ----

const trainStatus = (text) => {
  document.getElementById('train-status').textContent = text;
};
const fetchBytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

/** Loss per step as a polyline across the SVG, from the highest loss so far (top) to the lowest (bottom). */
function plot(losses, steps) {
  const [hi, lo] = [Math.max(...losses), Math.min(...losses)];
  const y = (l) => 10 + (140 * (hi - l)) / Math.max(hi - lo, 1e-6);
  document
    .getElementById('loss')
    .setAttribute('points', losses.map((l, i) => `${(480 * (i + 1)) / steps},${y(l)}`).join(' '));
}

async function train(steps) {
  const spec = await (await fetch('train/spec.json')).json();
  const [step, init, data] = await Promise.all([
    ort.InferenceSession.create(await fetchBytes('train/model.onnx'), { executionProviders: ['wasm'] }),
    fetchBytes('train/init.bin'),
    fetchBytes('train/train.bin'),
  ]);
  const feeds = {};
  let offset = 0;
  for (const p of spec.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    feeds[p.name] = new ort.Tensor('float32', new Float32Array(init.buffer.slice(offset, offset + 4 * n)), p.shape);
    offset += 4 * n;
  }
  for (const s of spec.states)
    feeds[s.name] = new ort.Tensor('float32', new Float32Array(s.shape.reduce((a, b) => a * b, 1)), s.shape);
  feeds.lr = new ort.Tensor('float32', Float32Array.of(spec.lr), []);
  const { batch, trainImages: count } = spec;
  const losses = [];
  const t0 = performance.now();
  for (let k = 0; k < steps; k++) {
    const start = (k * batch) % count;
    feeds.images = new ort.Tensor('uint8', data.slice(start * 784, (start + batch) * 784), [batch, 1, 28, 28]);
    feeds.labels = new ort.Tensor(
      'int64',
      BigInt64Array.from(data.slice(count * 784 + start, count * 784 + start + batch), BigInt),
      [batch],
    );
    const out = await step.run(feeds);
    for (const name of [...spec.params.map((p) => p.name), ...spec.states.map((s) => s.name)]) {
      if (out[`updated.${name}`]) feeds[name] = out[`updated.${name}`];
    }
    losses.push(out.loss.data[0]);
    plot(losses, steps);
    trainStatus(
      `step ${k + 1}/${steps}: loss ${losses[k].toFixed(3)} (${((1000 * (k + 1)) / (performance.now() - t0)).toFixed(1)} steps/s)`,
    );
  }
  const stepsPerSecond = (1000 * steps) / (performance.now() - t0);
  await step.release();
  const weights = new Blob(spec.params.map((p) => feeds[p.name].data));
  const model = new Uint8Array(await (await fetch('train/export', { method: 'POST', body: weights })).arrayBuffer());
  const accuracy = await testAccuracy(model, spec.testImages);
  const link = document.getElementById('download');
  link.href = URL.createObjectURL(new Blob([model], { type: 'application/octet-stream' }));
  link.hidden = false;
  trainStatus(
    `trained ${steps} steps (${stepsPerSecond.toFixed(1)} steps/s): loss ${losses[0].toFixed(3)} → ${losses[steps - 1].toFixed(3)}, test accuracy ${(100 * accuracy).toFixed(1)}% on ${spec.testImages} images; the classifier now uses this model`,
  );
  await load(model, 'the model trained here');
  return { losses, stepsPerSecond, accuracy };
}

async function testAccuracy(model, count) {
  const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  const test = await fetchBytes('train/test.bin');
  const out = await s.run({ images: new ort.Tensor('uint8', test.slice(0, count * 784), [count, 1, 28, 28]) });
  const labels = out.label.data;
  let correct = 0;
  for (let i = 0; i < count; i++) if (Number(labels[i]) === test[count * 784 + i]) correct++;
  await s.release();
  return correct / count;
}

document.getElementById('train').addEventListener('click', async (e) => {
  e.target.disabled = true;
  try {
    window.lastTraining = await train(
      Math.max(1, Math.min(2000, Number(document.getElementById('steps').value) || 100)),
    );
  } catch (err) {
    trainStatus(`training failed: ${String(err.message || err).split('\n')[0]}`);
  } finally {
    e.target.disabled = false;
  }
});

(async () => {
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const r = await fetch('model.onnx');
  if (r.ok) await load(new Uint8Array(await r.arrayBuffer()), 'model.onnx (from the server)');
  else say('no model yet: drop an exported inference.onnx onto the page');
})();
