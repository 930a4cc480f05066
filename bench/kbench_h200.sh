#!/usr/bin/env bash
# One device call that needs no model export: tessera-kbench with random buffers on several training plans (the
# train_step program's whole GPU time, and where it goes by kernel family), then optionally the GEMM sweep of
# bench/gemm_h200.sh and PyTorch + PEFT eager bf16 on the same GPU as the anchor (docs/benchmarks.md).
# Here:  tar czf build/h200/kbench.tgz PLAN.tplan ... [build/gemm]
# There: device tool, carry .gl build/bin/tessera-kbench build/bin/tessera-rt build/h200/kbench.tgz;
#        command: export OUT; PLANS="PATH ..." [NAMES="PATH"] [TOP=N] [GEMM=1] [PEFT=1] bash bench/kbench_h200.sh
# Each plan's output goes to $OUT/kbench-<name>.txt as it finishes (a call cut short keeps what it measured).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tar xzf build/h200/kbench.tgz
chmod +x build/bin/* 2>/dev/null
t0=$(date +%s)
for p in ${PLANS:?PLANS: plan paths}; do
  n=$(basename "$p" .tplan)
  names=; [[ " ${NAMES:-} " == *" $p "* ]] && names=--names
  s=$(date +%s)
  timeout 150 build/bin/tessera-kbench "$p" --program train_step --repeat 3 --random $names --top ${TOP:-20} \
    > "$OUT/kbench-$n.txt" 2>&1
  echo "== $n ($(( $(date +%s) - s )) s): $(grep -E '^plan:' "$OUT/kbench-$n.txt" | sed 's/.*program //')"
  grep -E "error|whole program" "$OUT/kbench-$n.txt" | head -2
  sed -n '/^by family/,/^$/p' "$OUT/kbench-$n.txt" | sed -n 2,7p
done
echo "== kbench done after $(( $(date +%s) - t0 )) s"
if [ -n "${GEMM:-}" ] && [ -d build/gemm ]; then
  bash bench/gemm_h200.sh 2>&1 | tail -45
fi
if [ -n "${PEFT:-}" ]; then
  timeout 200 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode eager-bf16 --steps 20 \
    --json "$OUT/peft-eager-bf16.json" 2>&1 | grep -E "^PEFT|Error|error" | tail -2
fi
echo "== done after $(( $(date +%s) - t0 )) s"
