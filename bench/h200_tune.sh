#!/usr/bin/env bash
# One device call: tessera-rt tune on the Qwen3-0.6B bf16 tuning plan (bench/qwen06b_plans.sh writes it), the
# per-kernel GPU times of the bf16-chunk512 plan's train step (tessera-kbench), then the step against PEFT eager.
# The tuned profile comes back in $OUT/h200-tuned.json; compile with it here and time it in the next call.
# There (device tool, carry .gl build/bin/tessera-rt build/bin/tessera-kbench build/h200):
#       OUT=$OUT bash bench/h200_tune.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source scripts/device_env.sh
for t in build/h200/*.tgz; do tar xzf "$t"; done
chmod +x build/bin/*
t0=$(date +%s)
echo "=== tune ($(( $(date +%s) - t0 )) s)"
timeout ${TUNE_S:-220} build/bin/tessera-rt tune build/qwen06b/bf16.ttune --out "$OUT/h200-tuned.json" --name h200-tuned \
  --budget ${BUDGET:-170s} --timeout 20s --repeats 5 2>&1 | tail -25
cp "$OUT/h200-tuned.json.journal" "$OUT/" 2>/dev/null
echo "=== kbench ($(( $(date +%s) - t0 )) s)"
timeout 120 build/bin/tessera-kbench build/qwen06b/bf16-chunk512.tplan --program train_step --repeat 3 --top 40 --random \
  2>&1 | tee "$OUT/kbench-bf16-chunk512.txt" | head -60
echo "=== speed ($(( $(date +%s) - t0 )) s)"
PEFT_MODES=${PEFT_MODES:-eager-bf16} timeout 240 bash bench/qwen06b_speed_h200.sh bf16-chunk512 2>&1 | tee "$OUT/qwen06b-speed.txt"
echo "=== done ($(( $(date +%s) - t0 )) s)"
