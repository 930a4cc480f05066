#!/usr/bin/env bash
# One device call: tessera-rt tune on the Qwen3-0.6B bf16 tuning plan (bench/qwen06b_plans.sh writes it) for
# the first budget of TUNE_BUDGETS (the issue's 2-minute target), the profile kept as h200-tuned-<budget>s.json,
# then resumed from its journal for each further budget (a longer run), the last profile as h200-tuned.json.
# Compile with them here (bench/qwen06b_plans.sh TUNED=...) and time them in the next call (bench/h200_session.sh).
# There (device tool, carry .gl build/bin/tessera-rt build/h200):
#       OUT=$OUT TUNE_BUDGETS="120 240" bash bench/h200_tune.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source scripts/device_env.sh
for t in build/h200/*.tgz; do tar xzf "$t"; done
chmod +x build/bin/*
t0=$(date +%s)
spent=0
for b in ${TUNE_BUDGETS:-120}; do
  echo "=== tune ${b}s ($(( $(date +%s) - t0 )) s)"
  timeout $(( b + 60 )) build/bin/tessera-rt tune build/qwen06b/bf16.ttune --out "$OUT/h200-tuned.json" --name h200-tuned \
    --budget ${b}s --timeout 20s 2>&1 | tail -14
  spent=$(( spent + b ))
  cp "$OUT/h200-tuned.json" "$OUT/h200-tuned-${spent}s.json"
done
echo "=== done ($(( $(date +%s) - t0 )) s)"
