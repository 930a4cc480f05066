#!/usr/bin/env bash
# The main job on the bundled default: set up, build, generate the tiny
# Llama-style model and the byte-level data set, compile a LoRA training plan,
# train it on the first Vulkan device (lavapipe when there is no GPU), write
# the adapter and evaluate it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
OUT=${OUT:-build/default}
STEPS=${STEPS:-100}
mkdir -p "$OUT"
/usr/bin/python3 scripts/make_tiny_model.py --out "$OUT/tiny-llama.onnx"
/usr/bin/python3 scripts/make_data.py --out "$OUT/data.jsonl" --seq 64
build/bin/tessera compile "$OUT/tiny-llama.onnx" -o "$OUT/tiny-llama.tplan" \
  --batch 4 --seq 64 --lora-rank 8 --lora-alpha 16 --lora-targets all-linear
build/bin/tessera train "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" \
  --data "$OUT/data.jsonl" --steps "$STEPS" --lr 2e-3 --out "$OUT/adapter" --metrics "$OUT/metrics.jsonl"
echo "base model:"
build/bin/tessera eval "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" --data "$OUT/data.jsonl"
echo "with the trained adapter ($OUT/adapter):"
build/bin/tessera eval "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" --data "$OUT/data.jsonl" \
  --init-adapter "$OUT/adapter"
