#!/usr/bin/env bash
# Plans for bench/qwen06b_speed_h200.sh: the Qwen3-0.6B graph (bench/fetch_graphs.sh puts the graph exported on
# the GPU machine into build/qwen06b) at batch 8 x 512, LoRA r16 alpha 16 on every linear layer (as bench/peft_speed.py), compiled with nvidia.json
# in bf16 (tensor cores), f16 (tensor cores) and bf16 with SIMT matmuls only (nvidia.json without its coopmat
# variants), and bf16 with loss chunks of 512 token rows (fewer, larger lm_head products), so that one device
# call compares them with PEFT.
set -euo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
[ -f $D/model.onnx ] || { echo "no $D/model.onnx: run bench/fetch_graphs.sh"; exit 1; }
/usr/bin/python3 - <<'PY'
import json
p = json.load(open("autotune/profiles/nvidia.json"))
p["name"] = "nvidia-simt"
p["matmul"]["variants"] = [v for v in p["matmul"]["variants"] if v["kind"] != "coopmat"]
json.dump(p, open("build/qwen06b/nvidia-simt.json", "w"), indent=1)
PY
common="--batch 8 --seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear"
for v in bf16:nvidia bf16-chunk512:nvidia f16:nvidia bf16-simt:$D/nvidia-simt.json; do
  name=${v%%:*}; prof=${v#*:}
  extra=""; [ "$name" = bf16-chunk512 ] && extra="--loss-chunk-tokens 512"
  t0=$(date +%s.%N)
  build/bin/tessera compile $D/model.onnx -o $D/$name.tplan $common $extra --precision ${name%%-*} --profile $prof \
    > $D/$name.log 2>&1 || { cat $D/$name.log; exit 1; }
  echo "$name: $(grep -o '[0-9,]* kernels' $D/$name.log | head -1), $(du -h $D/$name.tplan | cut -f1), compiled in $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s"
done
# The tuning plan of the bf16-chunk512 training graph for bench/h200_tune.sh (tessera-rt tune on the GPU).
build/bin/tessera compile $D/model.onnx --tuning-plan $D/bf16.ttune $common --loss-chunk-tokens 512 --precision bf16 \
  --profile nvidia --tune-candidates 12 | tail -1
