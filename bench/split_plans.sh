#!/usr/bin/env bash
# Plans for bench/split_h200.sh: the Qwen3-0.6B graph (build/qwen06b, bench/fetch_graphs.sh) at batch 8 x 512,
# LoRA r16 on every linear layer, bf16 with nvidia.json, compiled three ways (docs/memory.md):
#   bf16-unsplit  device.max_buffer_bytes 4 GiB - 1: the 297 MiB embedding / tied LM head in one buffer
#   bf16-split    device.max_buffer_bytes 128 MiB (Vulkan's minimum, a phone's): the table in 3 row tiles
#   bf16-budget   128 MiB buffers and --memory-budget BUDGET (default 2GiB): loss chunks / recompute /
#                 micro-batches chosen by the compiler
# Here: bash bench/split_plans.sh [BUDGET]; then bash bench/split_h200.sh on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
[ -f $D/model.onnx ] || { echo "no $D/model.onnx: run bench/fetch_graphs.sh"; exit 1; }
for v in unsplit:4294967295 split:134217728; do
  /usr/bin/python3 - ${v%%:*} ${v#*:} <<'PY'
import json, sys
p = json.load(open("autotune/profiles/nvidia.json"))
p["name"] = "nvidia-" + sys.argv[1]
p["device"]["max_buffer_bytes"] = int(sys.argv[2])
json.dump(p, open(f"build/qwen06b/nvidia-{sys.argv[1]}.json", "w"), indent=1)
PY
done
common="--batch 8 --seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --precision bf16"
for v in bf16-unsplit:unsplit: bf16-split:split: "bf16-budget:split:--memory-budget ${1:-2GiB}"; do
  IFS=: read -r name prof extra <<< "$v"
  t0=$(date +%s.%N)
  build/bin/tessera compile $D/model.onnx -o $D/$name.tplan $common --profile $D/nvidia-$prof.json $extra \
    > $D/$name.log 2>&1 || { cat $D/$name.log; exit 1; }
  echo "$name: $(grep -E '^memory budget' $D/$name.log || true) $(grep -E 'peak device memory|largest buffer' $D/$name.log | tr -s ' ' | tr '\n' ' ')compiled in $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s"
done
