#!/usr/bin/env bash
# Checks CUDA training end to end on a machine with an NVIDIA GPU; installs nothing from the network.
# Run from the repository root after `npm ci` (or with a bundle from tools/device-bundle.sh unpacked):
#   bash tools/cuda-check.sh                       # uses the CUDA provider installed in onnxruntime-node
#   INGRAPH_ORT_CUDA_DIR=/path bash tools/cuda-check.sh   # first copies libonnxruntime_providers_*.so from /path
# Prints the GPU, whether onnxruntime-node's CUDA provider loads, then for both nets a short training run with
# --ep cuda: the provider actually used, steps/s and test accuracy, and the residual export in float32 and float16 on
# CUDA. Exit 0 only if both runs used CUDA.
set -u
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
tmp=$(mktemp -d)
ortbin=node_modules/onnxruntime-node/bin/napi-v6/linux/x64

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi not found"
echo "== CUDA libraries the provider needs"
ldconfig -p 2>/dev/null | grep -E "libcudart|libcublas\.|libcudnn\.so" | head -5 || true
if [ -n "${INGRAPH_ORT_CUDA_DIR:-}" ]; then
  cp -v "$INGRAPH_ORT_CUDA_DIR"/libonnxruntime_providers_*.so "$ortbin"/
fi
echo "== onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version") provider libraries"
ls "$ortbin"
echo "== other onnxruntime CUDA providers on this machine"
find / -xdev -name 'libonnxruntime_providers_cuda.so' -not -path "*/$ortbin/*" 2>/dev/null | head -5

status=0
for model in residual inception; do
  echo "== $model: $STEPS steps, batch 64, --ep cuda"
  node dist/src/cli.js train --model "$model" --ep cuda --max-steps "$STEPS" --test-limit 2000 --json --out "$tmp/$model" \
    >"$tmp/$model.jsonl" 2>"$tmp/$model.err"
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "exit $rc: $(tail -1 "$tmp/$model.err")"
    status=1
    continue
  fi
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
    const start = lines.find((e) => e.type === "start"), done = lines.find((e) => e.type === "done");
    console.log(`provider used: ${start.ep}; ${done.stepsPerSecond.toFixed(1)} steps/s, ${Math.round(done.imagesPerSecond)} images/s; test accuracy ${(100 * done.accuracy).toFixed(2)}% on ${done.total}`);
    process.exit(start.ep === "cuda" ? 0 : 1);
  ' "$tmp/$model.jsonl" || status=1
done
echo "== nodes of the residual training step that onnxruntime placed on the CPU provider"
node -e '
  require("onnxruntime-node").InferenceSession.create(process.argv[1], { executionProviders: ["cuda"], logSeverityLevel: 0, logVerbosityLevel: 0 })
    .then(() => console.log("session created"), (e) => console.log(String(e).split("\n")[0]));
' "$tmp/residual/training_model.onnx" 2>&1 | grep -E -A12 "placed on \[CPUExecutionProvider\]|session created|Error" | grep -vE "^\s*$" | head -30
echo "== the residual export on CUDA: float32 against float16 (--half), accuracy and images/s at batch 1000"
node dist/src/cli.js export --model residual --init "$tmp/residual/inference.onnx" --half --out "$tmp/residual-half.onnx" >/dev/null
for f in "$tmp/residual/inference.onnx" "$tmp/residual-half.onnx"; do
  node dist/src/cli.js eval --model-file "$f" --ep cuda --json 2>&1 | node -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(`${process.argv[1]}: ${d.ep}, accuracy ${(100 * d.accuracy).toFixed(2)}%, ${Math.round(d.imagesPerSecond)} images/s`);
  ' "$(basename "$f")" || echo "$(basename "$f"): eval failed"
done
echo "== --ep auto"
node dist/src/cli.js train --model residual --max-steps 20 --test-limit 100 --out "$tmp/auto" 2>&1 | head -1
exit $status
