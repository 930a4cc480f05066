#!/usr/bin/env bash
# The cost of --robust-access (robustBufferAccess2) on the first Vulkan device:
# the bundled tiny model at 4 x 64, all-linear r8, ROUNDS alternating runs of
# STEPS steps with and without it; prints the median GPU ms per step of each.
#   bash bench/robust_access.sh [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30} ROUNDS=${2:-3}
T=${TESSERA:-build/bin/tessera}
D=${OUT:-build/bench-robust}
mkdir -p "$D"
/usr/bin/python3 scripts/make_tiny_model.py --out "$D/tiny.onnx" >/dev/null
/usr/bin/python3 scripts/make_data.py --out "$D/data.jsonl" --seq 64 >/dev/null
"$T" compile "$D/tiny.onnx" -o "$D/p.tplan" --batch 4 --seq 64 --lora-rank 8 --lora-targets all-linear >/dev/null
run() { # prints the GPU ms/step of one run
  "$T" train "$D/p.tplan" --weights "$D/tiny.onnx" --data "$D/data.jsonl" --steps "$STEPS" --out "$D/out" \
    --checkpoint-every 0 "$@" 2>&1 | grep -Eo '[0-9.]+ GPU ms/step' | grep -Eo '^[0-9.]+'
}
plain=() robust=()
for _ in $(seq "$ROUNDS"); do
  plain+=("$(run)")
  robust+=("$(run --robust-access)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
"$T" devices | head -1
echo "plain:          ${plain[*]} GPU ms/step (median $(median "${plain[@]}"))"
echo "--robust-access: ${robust[*]} GPU ms/step (median $(median "${robust[@]}"))"
