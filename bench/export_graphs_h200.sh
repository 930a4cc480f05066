#!/usr/bin/env bash
# On the lent GPU machine (transformers is there, not here): exports the ONNX graphs of the benchmark models
# (Qwen3-0.6B and Llama-3.2-1B shapes, random weights from fixed seeds) without their weights, so that plans can
# be compiled here (the compiler reads the graph and checks the external data file's size only; docs/parity.md).
# There: export OUT; bash bench/export_graphs_h200.sh   -> $OUT/<model>-model.onnx, $OUT/<model>-graph.json
# Here:  bash bench/fetch_graphs.sh DIR                  -> build/<model>/model.onnx (+ sized model.onnx.data)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
for m in qwen06b llama1b; do
  timeout 240 python3 test/fixtures/hf/export_hf.py $m --out /tmp/g-$m --graph-only 2>&1 | grep -v -i warn | tail -2
  cp /tmp/g-$m/graph/model.onnx "$OUT/$m-model.onnx"
  cp /tmp/g-$m/graph.json "$OUT/$m-graph.json"
done
ls -la "$OUT"
