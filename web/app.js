// The page: classify with an exported ingraph model (onnxruntime-web: WebGPU where the browser has an adapter, else
// wasm). A model of MNIST's shape (1x28x28 grey) gets the drawing pad; any model classifies a chosen or dropped
// image file, resized to its input. A model comes from the server (`ingraph serve --model-file`) or is dropped onto
// the page.
'use strict';

const pad = document.getElementById('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true });
const status = document.getElementById('status');
/** The open model: its session, input [C, H, W], class count and names; null until one loads. */
let model = null;
/** What the classifier looks at: 'pad' (the drawing) or an image file's pixels. */
let subject = 'pad';

function say(text, error = false) {
  status.textContent = text;
  status.className = error ? 'error' : '';
}

/** Whether the model takes MNIST's images, so that a drawn digit is something it can classify. */
const takesDigits = (m) => m.channels === 1 && m.height === 28 && m.width === 28;

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
  return planes(s.getImageData(0, 0, 28, 28).data, 1);
}

/**
 * RGBA pixels as the model's uint8 channel planes (C, H, W): RGB as they are, grey as luma (Rec. 709 weights, as
 * libvips' grey conversion that `ingraph train` uses on image folders).
 */
function planes(rgba, channels) {
  const n = rgba.length / 4;
  const out = new Uint8Array(channels * n);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (channels === 1) out[i] = Math.round(0.2126 * r + 0.7152 * g + 0.0722 * b);
    else [out[i], out[n + i], out[2 * n + i]] = [r, g, b];
  }
  return out;
}

/** An image file decoded and resized to the model's H x W (no colour management: the file's own values). */
async function imagePixels(file, m) {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = document.getElementById('preview');
  [canvas.width, canvas.height] = [m.width, m.height];
  const c = canvas.getContext('2d', { willReadFrequently: true });
  c.imageSmoothingEnabled = true;
  c.imageSmoothingQuality = 'high';
  c.drawImage(bitmap, 0, 0, m.width, m.height);
  bitmap.close();
  return planes(c.getImageData(0, 0, m.width, m.height).data, m.channels);
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

/** At most this many bars: every class up to ten, else the ten likeliest. */
const MAX_BARS = 10;

/**
 * Classifies what the page shows, one run at a time: onnxruntime-web refuses a second run of a session while one is
 * in flight, and a first run on WebGPU (compiling its shaders) can outlast the next pen stroke.
 */
let classifying = Promise.resolve();
function classify() {
  classifying = classifying
    .then(classifyNow)
    .catch((e) => say(`classification failed: ${String(e.message || e)}`, true));
  return classifying;
}

async function classifyNow() {
  if (!model) return;
  const m = model;
  const pixels = subject === 'pad' ? (takesDigits(m) ? toImage() : null) : subject;
  const blank = subject === 'pad' && !inkBox();
  if (!pixels) return;
  const out = await m.session.run({ images: new ort.Tensor('uint8', pixels, [1, m.channels, m.height, m.width]) });
  const probs = Array.from(out.probabilities.data);
  window.lastProbabilities = probs;
  const order = probs.map((_, k) => k);
  if (probs.length > MAX_BARS) order.sort((a, b) => probs[b] - probs[a]).splice(MAX_BARS);
  const best = probs.indexOf(Math.max(...probs));
  document.getElementById('label').textContent = blank ? '?' : m.names[best];
  document.getElementById('label').classList.toggle('word', m.names[best].length > 2);
  const bars = document.getElementById('bars');
  bars.style.setProperty('--name-width', `${Math.max(...order.map((k) => m.names[k].length))}ch`);
  bars.innerHTML = order
    .map(
      (k) =>
        `<li><span class="name">${escapeHtml(m.names[k])}</span><span class="bar" style="width:${Math.round(240 * probs[k])}px"></span><span class="p">${(100 * probs[k]).toFixed(1)}%</span></li>`,
    )
    .join('');
}

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Whether the browser has a WebGPU adapter; classification runs there when it does, else in wasm. */
let webGpu = null;
async function hasWebGpu() {
  if (webGpu === null) webGpu = !!(navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null)));
  return webGpu;
}

/**
 * The entries of an ONNX file's metadata_props (ModelProto field 14), read by walking the top-level protobuf fields:
 * onnxruntime-web does not expose them, and the class names live there (`ingraph.signature`).
 */
function metadataProps(bytes) {
  let at = 0;
  const varint = (end) => {
    let [v, scale] = [0, 1];
    while (at < end) {
      const b = bytes[at++];
      v += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return v;
    }
    throw new Error('truncated');
  };
  const fields = (end, visit) => {
    while (at < end) {
      const tag = varint(end);
      const wire = tag % 8;
      if (wire === 0) varint(end);
      else if (wire === 1 || wire === 5) at += wire === 1 ? 8 : 4;
      else if (wire === 2) {
        const length = varint(end);
        const next = at + length;
        visit(Math.floor(tag / 8), at, next);
        at = next;
      } else throw new Error(`wire type ${wire}`);
    }
  };
  const text = (start, end) => new TextDecoder().decode(bytes.subarray(start, end));
  const props = {};
  try {
    fields(bytes.length, (field, start, end) => {
      if (field !== 14) return;
      const entry = {};
      fields(end, (f, s, e) => (entry[f] = text(s, e)));
      if (entry[1] !== undefined) props[entry[1]] = entry[2] ?? '';
    });
  } catch {
    return {}; // the session opened the file, so only the metadata is unreadable: go without names
  }
  return props;
}

/** The model's input shape and classes, from its input and output metadata; names from `ingraph.signature`. */
function describe(s, bytes) {
  const input = s.inputMetadata.find((i) => i.name === 'images');
  const output = s.outputMetadata.find((o) => o.name === 'probabilities');
  const dims = input && input.isTensor && input.type === 'uint8' ? input.shape : [];
  const [, channels, height, width] = dims;
  const classes = output && output.isTensor ? output.shape[1] : undefined;
  if (dims.length !== 4 || ![channels, height, width, classes].every((d) => Number.isInteger(d) && d > 0)) return null;
  let names;
  try {
    names = JSON.parse(metadataProps(bytes)['ingraph.signature'] ?? '{}').classNames;
  } catch {
    names = undefined;
  }
  if (!Array.isArray(names) || names.length !== classes) names = Array.from({ length: classes }, (_, k) => String(k));
  return { session: s, channels, height, width, classes, names: names.map(String) };
}

/** Opens a model, refusing with a clear message what is not an ingraph-style inference model. */
async function load(bytes, name) {
  const kept = model ? ' (the previous model is still in use)' : '';
  let s;
  try {
    s = await ort.InferenceSession.create(bytes, {
      executionProviders: (await hasWebGpu()) ? ['webgpu', 'wasm'] : ['wasm'],
    });
  } catch (e) {
    return say(`${name}: not an ONNX model this page can run (${String(e.message || e).split('\n')[0]})${kept}`, true);
  }
  const m = describe(s, bytes);
  if (!m) {
    await s.release();
    return say(
      `${name}: expected an input "images" (uint8 [N,C,H,W]) and an output "probabilities" ([N,K]); found inputs ${s.inputNames.join(', ')} and outputs ${s.outputNames.join(', ')}${kept}`,
      true,
    );
  }
  if (model) await model.session.release();
  model = m;
  subject = 'pad';
  const digits = takesDigits(m);
  document.getElementById('drawing').hidden = !digits;
  document.getElementById('picture').hidden = digits;
  document.getElementById('preview').getContext('2d').clearRect(0, 0, 1e4, 1e4);
  document.getElementById('label').textContent = '?';
  document.getElementById('bars').innerHTML = '';
  const shape = `${m.channels}x${m.height}x${m.width} ${m.channels === 1 ? 'grey' : 'RGB'}, ${m.classes} classes`;
  say(`model: ${name} (${(await hasWebGpu()) ? 'WebGPU' : 'wasm'}; ${shape})`);
  await classify();
}

/** An image file to classify: decoded, resized to the model's input and shown as the model sees it. */
async function classifyFile(file) {
  if (!model) return say(`${file.name}: load a model first`, true);
  try {
    subject = await imagePixels(file, model);
  } catch {
    return say(`${file.name}: not an image this browser can decode`, true);
  }
  document.getElementById('picture').hidden = false;
  document.getElementById('picture-name').textContent = file.name;
  await classify();
  window.classified = file.name;
}

/** A chosen or dropped file: a model (.onnx) opens, anything else is classified as an image. */
async function openFile(file) {
  if (/\.onnx$/i.test(file.name)) await load(new Uint8Array(await file.arrayBuffer()), file.name);
  else await classifyFile(file);
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
  subject = 'pad';
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
  subject = 'pad';
  classify();
});
for (const id of ['file', 'image']) {
  document.getElementById(id).addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (f) await openFile(f);
  });
}
document.addEventListener('dragover', (e) => {
  e.preventDefault();
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', async (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  const f = e.dataTransfer.files[0];
  if (f) await openFile(f);
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

/**
 * Where the page trains: WebGPU (the step in WebGPU's ops) where the browser has a hardware adapter, else wasm, and
 * why. A software adapter (SwiftShader, what headless Chromium offers without a GPU) trained 30 times slower than
 * wasm when measured, so it gets wasm unless `?train=webgpu` asks for it; `?train=wasm` always gets wasm.
 */
async function trainingBackend() {
  const asked = new URLSearchParams(location.search).get('train');
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (asked === 'wasm') return { ep: 'wasm', model: 'train/model.onnx', why: 'asked for' };
  if (!adapter) return { ep: 'wasm', model: 'train/model.onnx', why: 'no WebGPU adapter' };
  const info = adapter.info ?? {};
  const software = info.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader/i.test(info.architecture ?? '');
  if (software && asked !== 'webgpu')
    return { ep: 'wasm', model: 'train/model.onnx', why: 'the WebGPU adapter is a software one, slower than wasm' };
  return { ep: 'webgpu', model: 'train/model-webgpu.onnx', why: software ? 'asked for, on a software adapter' : '' };
}

/**
 * `?verbose`: onnxruntime-web's verbose log in the console, which names each copy it adds between the CPU and WebGPU
 * (`Add MemcpyFromHost after ...`): where a session's nodes run.
 */
function logging() {
  if (!new URLSearchParams(location.search).has('verbose')) return {};
  ort.env.logLevel = 'verbose';
  return { logSeverityLevel: 0, logVerbosityLevel: 0 };
}

/** A batch as the WebGPU step takes it: float32 pixels (0..255) and one-hot float32 labels (no integer tensors). */
function floatBatch(pixels, labels, batch) {
  const oneHot = new Float32Array(batch * 10);
  labels.forEach((l, i) => (oneHot[i * 10 + l] = 1));
  return {
    images: new ort.Tensor('float32', Float32Array.from(pixels), [batch, 1, 28, 28]),
    labels: new ort.Tensor('float32', oneHot, [batch, 10]),
  };
}

async function train(steps) {
  const spec = await (await fetch('train/spec.json')).json();
  const backend = await trainingBackend();
  const on = `${backend.ep === 'webgpu' ? 'WebGPU' : 'wasm'}${backend.why ? `: ${backend.why}` : ''}`;
  const [step, init, data] = await Promise.all([
    ort.InferenceSession.create(await fetchBytes(backend.model), { executionProviders: [backend.ep], ...logging() }),
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
    const [pixels, labels] = [
      data.slice(start * 784, (start + batch) * 784),
      data.slice(count * 784 + start, count * 784 + start + batch),
    ];
    Object.assign(
      feeds,
      backend.ep === 'webgpu'
        ? floatBatch(pixels, labels, batch)
        : {
            images: new ort.Tensor('uint8', pixels, [batch, 1, 28, 28]),
            labels: new ort.Tensor('int64', BigInt64Array.from(labels, BigInt), [batch]),
          },
    );
    const out = await step.run(feeds);
    for (const name of [...spec.params.map((p) => p.name), ...spec.states.map((s) => s.name)]) {
      if (out[`updated.${name}`]) feeds[name] = out[`updated.${name}`];
    }
    losses.push(out.loss.data[0]);
    plot(losses, steps);
    trainStatus(
      `step ${k + 1}/${steps}: loss ${losses[k].toFixed(3)} (${((1000 * (k + 1)) / (performance.now() - t0)).toFixed(1)} steps/s on ${on})`,
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
    `trained ${steps} steps on ${on} (${stepsPerSecond.toFixed(1)} steps/s): loss ${losses[0].toFixed(3)} → ${losses[steps - 1].toFixed(3)}, test accuracy ${(100 * accuracy).toFixed(1)}% on ${spec.testImages} images; the classifier now uses this model`,
  );
  await load(model, 'the model trained here');
  return { losses, stepsPerSecond, accuracy, ep: backend.ep };
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
