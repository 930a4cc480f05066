#!/usr/bin/env bash
# Runs on the lent GPU machine (see docs/benchmarks.md): the runtime binary,
# the plan, the model and the data were built here and carried there with the
# Vulkan loader packages in .gl/. Writes logs and metrics into $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
OUT=${OUT:-/tmp/out}
D=${DEFAULT_DIR:-build/default}
STEPS=${STEPS:-100}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
build/bin/tessera-rt devices 2>&1 | tee "$OUT/devices.txt"
for plan in "$D"/*.tplan; do
  name=$(basename "$plan" .tplan)
  data="$D/data.jsonl"
  echo "== $name"
  build/bin/tessera-rt train "$plan" --weights "$D/tiny-llama.onnx" --data "$data" --steps "$STEPS" \
    --lr 2e-3 --out "/tmp/adapter-$name" --metrics "$OUT/metrics-$name.jsonl" 2>&1 | tail -3
  build/bin/tessera-rt eval "$plan" --weights "$D/tiny-llama.onnx" --data "$data" 2>&1 | tail -2
done
