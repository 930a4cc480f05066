#!/usr/bin/env bash
# One device call: the training figures beside the main workload (issue 10): the Llama-3.2-1B shape at batch
# 8 x 512 and the Qwen3-0.6B shape at batch 1 x 512 (the phone-like case), LoRA r16 all-linear bf16, each
# Tessera plan (compiled here, nvidia.json) against PyTorch + PEFT torch.compile bf16 in the same call.
# Both torch.compile warm-ups (CPU) overlap the graph exports and the Tessera runs; their timed steps wait for
# them and run one at a time (peft_speed.py --wait-for), so no two timed phases share the GPU.
# Here:  bash bench/h200_figures.sh plans   (build/llama1b/b8.tplan, build/qwen06b/b1.tplan, packed with the
#        runtime into build/h200/figures.tgz)
# There: device tool, carry .gl build/h200/figures.tgz; command: export OUT; bash bench/h200_figures.sh
set -uo pipefail
cd "$(dirname "$0")/.."
COMMON="--seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --loss-chunk-tokens 512 --precision bf16 --profile nvidia"
if [ "${1:-}" = plans ]; then
  build/bin/tessera compile build/llama1b/model.onnx -o build/llama1b/b8.tplan --batch 8 $COMMON | head -2
  build/bin/tessera compile build/qwen06b/model.onnx -o build/qwen06b/b1.tplan --batch 1 $COMMON | head -2
  mkdir -p build/h200
  tar czf build/h200/figures.tgz build/llama1b/b8.tplan build/llama1b/graph.json build/qwen06b/b1.tplan \
    build/qwen06b/graph.json build/bin/tessera-rt
  exit 0
fi
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
tar xzf build/h200/figures.tgz
chmod +x build/bin/*
rm -f /tmp/go-*
# name model batch vocab
RUNS="llama1b-b8 llama1b 8 128256
qwen06b-b1 qwen06b 1 151936"
while read -r name model batch vocab; do
  timeout 900 python3 bench/peft_speed.py --model $model --batch $batch --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/go-$name --json $OUT/peft-$name.json > /tmp/peft-$name.log 2>&1 &
done <<< "$RUNS"
while read -r name model batch vocab; do
  G=/tmp/g-$model
  if ! [ -f $G/.done ]; then
    rm -rf $G
    timeout 240 python3 test/fixtures/hf/export_hf.py $model --out $G --graph-only 2>&1 | grep -v -i warn | tail -1
    touch $G/.done
  fi
  python3 - $G/graph.json build/$model/graph.json <<'PY' || continue
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["graph_sha256"] == b["graph_sha256"] and a["data_bytes"] == b["data_bytes"]
print("graph identical to the compiled one:", same)
sys.exit(0 if same else 1)
PY
  python3 - $batch $vocab <<'PY' > /tmp/data-$name.jsonl
import json, random, sys
b, v = int(sys.argv[1]), int(sys.argv[2])
r = random.Random(5)
for _ in range(b * 40):
    print(json.dumps({"input_ids": [r.randrange(v) for _ in range(512)]}))
PY
  plan=build/$model/${name#*-}.tplan
  t0=$(date +%s.%N)
  timeout 240 build/bin/tessera-rt train $plan --weights $G/graph/model.onnx --data /tmp/data-$name.jsonl \
    --steps 20 --lr 1e-4 --out /tmp/ad-$name --metrics $OUT/tessera-$name.jsonl > /tmp/t-$name.log 2>&1 || tail -3 /tmp/t-$name.log
  python3 bench/step_summary.py $name $((batch * 512)) $OUT/tessera-$name.jsonl $t0
  grep -E "peak|device memory|ready" /tmp/t-$name.log | head -3
done <<< "$RUNS"
while read -r name model batch vocab; do
  touch /tmp/go-$name
  for _ in $(seq 600); do [ -f $OUT/peft-$name.json ] && break; grep -q -E "Error|error" /tmp/peft-$name.log && break; sleep 1; done
  grep -E "^PEFT|Error|error" /tmp/peft-$name.log | tail -2
done <<< "$RUNS"
wait
