#!/usr/bin/env bash
# ingraph against PyTorch on one GPU (issue 12's side-by-side number); run after tools/cuda-check.sh passes, from the
# repository root. PyTorch comes from `python3` on PATH (INGRAPH_PYTHON overrides). Writes
# tools/results/bench-cuda-<gpu>-<date>[-b512|-convdw|-flat|-loop8].json: batch 64 and 512, PyTorch eager and
# compiled (CUDA graphs), and ingraph with conv weight gradients by Gather+MatMul (the CPU's choice) and by Conv
# (cuDNN's), with the flat one-session step (-flat), and with 8 flat steps per run in a Loop (-loop8).
set -eu
cd "$(dirname "$0")/.."
export INGRAPH_PYTHON=${INGRAPH_PYTHON:-$(command -v python3)}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
base="tools/results/bench-cuda-$gpu-$(date +%F)"
common=(--ep cuda --threads 1 --steps ${STEPS:-200} --warmup 20 --repeats ${REPEATS:-5} --rss-steps 50)
node dist/tools/bench.js "${common[@]}" --torch-compile --json "$base.json"
node dist/tools/bench.js "${common[@]}" --conv-weight-gradient conv --no-reference --json "$base-convdw.json"
node dist/tools/bench.js "${common[@]}" --batch 512 --torch-compile --json "$base-b512.json"
node dist/tools/bench.js "${common[@]}" --flat-step --no-reference --json "$base-flat.json"
node dist/tools/bench.js "${common[@]}" --steps-per-run 8 --no-reference --json "$base-loop8.json"
