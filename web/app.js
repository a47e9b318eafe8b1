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
    s.drawImage(pad, box.x, box.y, box.w, box.h, 14 - (box.w * scale) / 2, 14 - (box.h * scale) / 2, box.w * scale, box.h * scale);
  }
  const rgba = s.getImageData(0, 0, 28, 28).data;
  return Uint8Array.from({ length: 784 }, (_, i) => rgba[4 * i]);
}

function inkBox() {
  const { data, width, height } = ctx.getImageData(0, 0, pad.width, pad.height);
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
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
  document.getElementById('bars').innerHTML = probs.map((p, k) =>
    `<li><span class="name">${k}</span><span class="bar" style="width:${Math.round(240 * p)}px"></span><span class="p">${(100 * p).toFixed(1)}%</span></li>`).join('');
}

/** Opens a model, refusing with a clear message what is not an ingraph-style inference model. */
async function load(bytes, name) {
  const kept = session ? ' (the previous model is still in use)' : '';
  let s;
  try {
    s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  } catch (e) {
    return say(`${name}: not an ONNX model this page can run (${String(e.message || e).split('\n')[0]})${kept}`, true);
  }
  if (!s.inputNames.includes('images') || !s.outputNames.includes('probabilities')) {
    return say(`${name}: expected an input "images" (uint8 [N,1,28,28]) and an output "probabilities"; found inputs ${s.inputNames.join(', ')} and outputs ${s.outputNames.join(', ')}${kept}`, true);
  }
  session = s;
  say(`model: ${name}`);
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
pad.addEventListener('pointerdown', (e) => { drawing = true; draw(e); });
pad.addEventListener('pointermove', (e) => drawing && draw(e));
window.addEventListener('pointerup', () => { if (drawing) { drawing = false; classify(); } });
document.getElementById('clear').addEventListener('click', () => { ctx.clearRect(0, 0, pad.width, pad.height); classify(); });
document.getElementById('file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) await load(new Uint8Array(await f.arrayBuffer()), f.name);
});
document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', async (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  const f = e.dataTransfer.files[0];
  if (f) await load(new Uint8Array(await f.arrayBuffer()), f.name);
});

(async () => {
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const r = await fetch('model.onnx');
  if (r.ok) await load(new Uint8Array(await r.arrayBuffer()), 'model.onnx (from the server)');
  else say('no model yet: drop an exported inference.onnx onto the page');
})();
