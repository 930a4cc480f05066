#!/usr/bin/env bash
# Here, after bench/export_graphs_h200.sh ran on the GPU machine: puts each exported graph into
# build/<model>/ with an external data file of the right size (zeros: the compiler never reads the values).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: fetch_graphs.sh DIR-with-<model>-model.onnx}
for m in qwen06b llama1b; do
  [ -f "$SRC/$m-model.onnx" ] || continue
  mkdir -p build/$m
  cp "$SRC/$m-model.onnx" build/$m/model.onnx
  cp "$SRC/$m-graph.json" build/$m/graph.json
  truncate -s "$(/usr/bin/python3 -c "import json;print(json.load(open('build/$m/graph.json'))['data_bytes'])")" \
    build/$m/model.onnx.data
  echo "build/$m: $(du -h build/$m/model.onnx | cut -f1) graph, $(du -h --apparent-size build/$m/model.onnx.data | cut -f1) data (sparse)"
done
