#!/usr/bin/env bash
# One device call of 2026-12-03 (session 6), in stages that each stop early when the call's time runs short:
#   1. tessera-rt tune on the Qwen3-0.6B bf16 tuning plan (TUNE_BUDGET s; 0 skips), the model exported meanwhile;
#   2. the optimizer step of each plan alone (tessera-kbench --program optimizer_step: the gradient norm's
#      392 one-workgroup reductions and AdamW), then each plan in training, ROUNDS times alternating;
#   3. torch.compile PEFT bf16 of the same shape (PEFT=1; compiled meanwhile);
#   4. the streamed-weights variants of bench/stream_h200.sh (STREAM=1).
# Here:  plans into build/qwen06b (see docs/benchmarks.md for the compiles), then
#        tar czf build/h200/s6.tgz build/qwen06b/{bf16.ttune,graph.json,*.tplan} build/bin/tessera-{rt,kbench}
# There: device tool, carry .gl build/h200/s6.tgz (with STREAM=1 it holds bench/stream_h200.sh's plans too);
#        command: export OUT; TUNE_BUDGET=120 PLANS="nvidia tuned" bash bench/h200_session6.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-560}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
tar xzf build/h200/s6.tgz
chmod +x build/bin/* 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > $OUT/gpu.txt 2>&1
Q=/tmp/q
# PEFT=1: torch.compile PEFT bf16 of the same shape, its compilation (CPU) overlapping the stages before its
# timed steps, which wait for the training runs to finish (bench/peft_speed.py --wait-for).
rm -f /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  timeout 700 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/peft-go --json $OUT/peft-compile-bf16.json > /tmp/peft-compile.log 2>&1 &
  peft_pid=$!
fi
(source bench/qwen06b_device_inputs.sh) > /tmp/export.log 2>&1 &
export_pid=$!
if [ "${TUNE_BUDGET:-0}" != 0 ]; then
  echo "=== tune ${TUNE_BUDGET}s"
  timeout $(( TUNE_BUDGET + 60 )) build/bin/tessera-rt tune build/qwen06b/bf16.ttune --out $OUT/h200-tuned.json \
    --name h200-tuned --budget ${TUNE_BUDGET}s --timeout 20s 2>&1 | tail -16
fi
wait $export_pid; cat /tmp/export.log
STEPS=${STEPS:-12}
echo "=== optimizer_step alone ($(left) s left)"
for plan in ${PLANS:-nvidia}; do
  build/bin/tessera-kbench build/qwen06b/$plan.tplan --program optimizer_step --random --repeat 10 --top 3 \
    > $OUT/kopt-$plan.txt 2>&1
  echo "$plan: $(grep -E 'whole program|error' $OUT/kopt-$plan.txt | head -1)"
done
echo "=== training, $STEPS steps ($(left) s left)"
for round in $(seq 1 ${ROUNDS:-2}); do
  for plan in ${PLANS:-nvidia}; do
    [ $(left) -lt 40 ] && { echo "($plan round $round skipped: the call's time is short)"; continue; }
    t0=$(date +%s.%N)
    timeout 120 build/bin/tessera-rt train build/qwen06b/$plan.tplan --weights $Q/graph/model.onnx \
      --data /tmp/data.jsonl --steps $STEPS --lr 1e-4 --out /tmp/ad-$plan --metrics $OUT/m-$plan-$round.jsonl \
      > /tmp/t-$plan.log 2>&1 || tail -3 /tmp/t-$plan.log
    python3 bench/step_summary.py $plan-$round $((8 * 512)) $OUT/m-$plan-$round.jsonl $t0
  done
done
touch /tmp/peft-go
if [ -n "${peft_pid:-}" ]; then
  echo "=== PEFT torch.compile bf16 ($(left) s left)"
  wait $peft_pid; grep -E "^PEFT|Error|error" /tmp/peft-compile.log | tail -2
fi
if [ -n "${STREAM:-}" ]; then
  echo "=== streamed weights ($(left) s left)"
  D=build/qwen06b
  run() { # name plan [env]
    local n=$1 p=$2; shift 2
    [ $(left) -lt 30 ] && { echo "($n skipped)"; return; }
    env "$@" timeout 90 build/bin/tessera-kbench $D/$p.tplan --program train_step --repeat 5 --random --top 8 \
      > "$OUT/kbench-$n.txt" 2>&1
    echo "== $n: $(grep -E 'whole program|error' "$OUT/kbench-$n.txt" | head -2 | tr '\n' ' ')"
  }
  for round in 1 2; do
    run nostream-$round nostream
    run stream32-transfers-$round stream32
    run stream32-kernels-$round stream32 TESSERA_STREAM_COPIES=dispatch
    run stream0-transfers-$round stream0
    run stream0-kernels-$round stream0 TESSERA_STREAM_COPIES=dispatch
  done
fi
echo "=== done ($(( $(date +%s) - T0 )) s)"
cd $OUT && tar czf /tmp/r.tgz . && rm -rf $OUT/* && mv /tmp/r.tgz $OUT/
