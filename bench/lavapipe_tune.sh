#!/usr/bin/env bash
# Tunes the bundled model's training plan (scripts/run_default.sh's shapes) on lavapipe from the lavapipe rules,
# then times train_step (tessera-kbench, whole program) with the built-in default profile, lavapipe.json and the
# tuned profile, interleaved ROUNDS times (the median is what docs/benchmarks.md reports).
#   bash bench/lavapipe_tune.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build/lavapipe-tune}
mkdir -p "$O"
M=$O/tiny-llama.onnx
[ -f $M ] || /usr/bin/python3 scripts/make_tiny_model.py --out $M >/dev/null
C="--batch 4 --seq 128 --lora-rank 8 --lora-alpha 16 --lora-targets all-linear"
start=$(date +%s)
build/bin/tessera tune $M $C --out $O/lavapipe-tuned.json --name lavapipe-tuned --profile lavapipe --budget ${BUDGET:-240s} | tail -12
echo "tuning took $(( $(date +%s) - start )) s"
build/bin/tessera compile $M -o $O/default.tplan $C >/dev/null
build/bin/tessera compile $M -o $O/lavapipe.tplan $C --profile lavapipe >/dev/null
build/bin/tessera compile $M -o $O/tuned.tplan $C --profile $O/lavapipe-tuned.json >/dev/null
for r in $(seq ${ROUNDS:-3}); do
  for p in default lavapipe tuned; do
    echo "$p $(build/bin/tessera-kbench $O/$p.tplan --program train_step --repeat 3 --random --top 1 | tail -1)"
  done
done
