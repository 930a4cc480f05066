#!/usr/bin/env bash
# Qwen3-0.6B-shaped parity and speed run on the lent GPU machine (docs/parity.md).
#
# First: export the graph alone there and compile the plan here (docs/parity.md, "Reproduce": the
# compiler needs only the graph and an external data file of the right size, not the weights).
# There (device tool, carry .gl build/bin/tessera-rt build/qwen06b/plan.tplan build/qwen06b/graph.json):
#   export OUT; bash bench/qwen06b_parity.sh
# It re-makes the random model from its seed (test/fixtures/hf/export_hf.py qwen06b), checks that the
# ONNX graph is the one the plan was compiled from, trains it with real PEFT (fp32, CUDA) and with
# tessera-rt (fp32, Vulkan) from the same initial adapter on the same data, and writes both curves.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
Q=/tmp/q
STEPS=${STEPS:-300}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 test/fixtures/hf/export_hf.py qwen06b --out "$Q" --steps "$STEPS" 2>&1 | grep -v -i warn | tail -5
python3 - "$Q/graph.json" build/qwen06b/graph.json <<'PY' || exit 1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["graph_sha256"] == b["graph_sha256"] and a["data_bytes"] == b["data_bytes"]
print("graph identical to the compiled one:", same)
sys.exit(0 if same else 1)
PY
/usr/bin/time -v build/bin/tessera-rt train build/qwen06b/plan.tplan --weights "$Q/graph/model.onnx" \
  --data "$Q/peft/data.jsonl" --steps "$STEPS" --lr 1e-3 --weight-decay 0 --init-adapter "$Q/peft/init" \
  --out /tmp/q-adapter --metrics "$OUT/tessera-metrics.jsonl" 2>&1 | tail -25 | tee "$OUT/tessera-train.txt"
cp "$Q/peft/run.json" "$OUT/peft-run.json"
python3 bench/parity_compare.py --peft "$Q/peft" --tessera-metrics "$OUT/tessera-metrics.jsonl" \
  --tessera-adapter /tmp/q-adapter --png "$OUT/qwen06b-parity.png" --json "$OUT/qwen06b-parity.json"
