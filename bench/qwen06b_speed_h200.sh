#!/usr/bin/env bash
# One device call: the Qwen3-0.6B shape at batch 8 x 512, LoRA r16 on all linear layers, Tessera against
# PyTorch + PEFT on the same GPU (docs/benchmarks.md). Plans compiled here (bench/qwen06b_plans.sh);
# the model is re-made there from its seed and checked against the graph the plans were compiled from.
# There: device tool, carry .gl build/bin/tessera-rt build/qwen06b/*.tplan build/qwen06b/graph.json;
#        command: export OUT; [PEFT_MODES="eager-bf16 compile-bf16"] bash bench/qwen06b_speed_h200.sh [plan names]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-20}
PEFT_MODES=${PEFT_MODES-eager-bf16 compile-bf16}
Q=/tmp/q
# torch.compile's warm-up (~200 s of compilation, CPU) overlaps the export and the Tessera runs; its timed
# steps wait for them (peft_speed.py --wait-for), so no two timed phases share the GPU.
rm -f /tmp/peft-go
if [[ " ${PEFT_MODES:-} " == *" compile-bf16 "* ]]; then
  timeout 900 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/peft-go --json $OUT/peft-compile-bf16.json > /tmp/peft-compile.log 2>&1 &
  compile_pid=$!
fi
source bench/qwen06b_device_inputs.sh
for plan in ${@:-bf16 bf16-simt}; do
  # NAME+every: the plan NAME recorded with a barrier between every two dispatches (the old recording).
  barriers=; [[ $plan == *+every ]] && barriers=every
  p=build/qwen06b/${plan%+every}.tplan
  [ -f $p ] || continue
  t0=$(date +%s.%N)
  TESSERA_BARRIERS=$barriers timeout 240 build/bin/tessera-rt train $p --weights $Q/graph/model.onnx --data /tmp/data.jsonl --steps $STEPS \
    --lr 1e-4 --out /tmp/ad-$plan --metrics /tmp/m-$plan.jsonl > /tmp/t-$plan.log 2>&1 || tail -3 /tmp/t-$plan.log
  python3 bench/step_summary.py $plan $((8 * 512)) /tmp/m-$plan.jsonl $t0
  grep -E "peak|device memory|first step|pipelines" /tmp/t-$plan.log | head -3
  # DISPATCH_PROFILE=1: a second, shorter run with a timestamp after every dispatch (where the step's time goes,
  # caches as cold as in training), written to $OUT/dispatch-NAME.tsv.
  if [ -n "${DISPATCH_PROFILE:-}" ]; then
    timeout 240 build/bin/tessera-rt train $p --weights $Q/graph/model.onnx --data /tmp/data.jsonl --steps 8 \
      --lr 1e-4 --out /tmp/adp-$plan --dispatch-profile $OUT/dispatch-$plan.tsv 2>&1 | grep -E "dispatch profile|error"
  fi
done
touch /tmp/peft-go
if [ -n "${compile_pid:-}" ]; then
  wait $compile_pid
  grep -E "^PEFT|Error|error" /tmp/peft-compile.log | tail -2
fi
for mode in $PEFT_MODES; do
  [ $mode = compile-bf16 ] && continue
  timeout 240 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode $mode --steps 20 \
    --json $OUT/peft-$mode.json 2>&1 | grep -E "^PEFT|Error|error" | tail -2
done
