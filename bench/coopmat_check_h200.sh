#!/usr/bin/env bash
# On the GPU machine: evaluates and trains each plan of bench/coopmat_check_plans.sh for 20 steps; the
# cooperative-matrix plans must match the SIMT plans of the same precision (the same storage rounding, only the
# summation order differs) and stay close to fp32.
# There: device tool, carry .gl build/bin/tessera-rt build/coopmat-check; command: bash bench/coopmat_check_h200.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
D=build/coopmat-check
printf "%-44s %12s %12s %12s\n" plan "eval loss" "step 1" "step 20"
for p in $D/*.tplan; do
  n=$(basename $p .tplan); model=$D/tiny-llama.onnx
  case $n in qwen3*) model=test/fixtures/hf/qwen3-dynamic/model.onnx ;; gemma3*) model=test/fixtures/hf/gemma3-dynamic/model.onnx ;; esac
  data=$D/data.jsonl
  ev=$(timeout 120 build/bin/tessera-rt eval $p --weights $model --data $data 2>&1 | grep -o 'eval loss [0-9.naninf-]*' | cut -d' ' -f3)
  timeout 120 build/bin/tessera-rt train $p --weights $model --data $data --steps 20 --lr 2e-3 --out /tmp/a-$n \
    --metrics /tmp/m-$n.jsonl > /tmp/t-$n.log 2>&1 || { echo "$n: train failed: $(tail -2 /tmp/t-$n.log)"; continue; }
  read s1 s20 < <(python3 -c "import json; L=[json.loads(l)['loss'] for l in open('/tmp/m-$n.jsonl')]; print('%.6f %.6f' % (L[0], L[-1]))")
  printf "%-44s %12s %12s %12s\n" $n "$ev" $s1 $s20
done
