#!/usr/bin/env bash
# One device call: 100 training steps of the Qwen3-0.6B shape (batch 8 x 512, LoRA r16 alpha 16 all-linear,
# AdamW lr 1e-4, no weight decay) with PyTorch + PEFT eager bf16 and with Tessera's bf16 plan (tensor cores,
# bench/qwen06b_plans.sh: bf16-chunk512) from PEFT's initial adapter on PEFT's batches; per-step losses and the
# final adapters compared by bench/parity_compare.py (docs/parity.md).
# There (device tool, carry .gl build/bin/tessera-rt build/h200): OUT=$OUT bash bench/qwen06b_bf16_parity.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-100}
Q=/tmp/q P=/tmp/p
mkdir -p "$OUT"
PLAN=${PLAN:-bf16-chunk512} # build/qwen06b/$PLAN.tplan
for t in build/h200/qwen06b.tgz; do [ -f "$t" ] && tar xzf "$t"; done
chmod +x build/bin/*
rm -rf $P
source bench/qwen06b_device_inputs.sh # the model (kept when an earlier stage of this call exported it)
timeout 150 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode eager-bf16 --warmup 0 \
  --steps $STEPS --save $P 2>&1 | grep -E "^PEFT|Error" | tail -2
mkdir -p $P/final
timeout 200 build/bin/tessera-rt train build/qwen06b/$PLAN.tplan --weights $Q/graph/model.onnx \
  --data $P/data.jsonl --steps $STEPS --lr 1e-4 --weight-decay 0 --eps 1e-8 --init-adapter $P/init \
  --out /tmp/q-adapter --metrics "$OUT/tessera-metrics.jsonl" > /tmp/t.log 2>&1 || tail -5 /tmp/t.log
cp $P/run.json "$OUT/peft-run.json"
python3 - "$OUT" <<'PY'
import json, sys, math
out = sys.argv[1]
peft = json.load(open(f"{out}/peft-run.json"))["losses"]
ours = [json.loads(l)["loss"] for l in open(f"{out}/tessera-metrics.jsonl")]
n = min(len(peft), len(ours))
d = [abs(a - b) for a, b in zip(peft[:n], ours[:n])]
print(f"steps {n}: PEFT bf16 {peft[0]:.4f} -> {peft[n-1]:.4f}, Tessera bf16 {ours[0]:.4f} -> {ours[n-1]:.4f}; "
      f"|diff| max {max(d):.4f}, mean {sum(d)/n:.4f}, last-10 mean {sum(d[-10:])/min(10,n):.4f}")
json.dump({"peft": peft[:n], "tessera": ours[:n]}, open(f"{out}/qwen06b-bf16-parity.json", "w"))
PY
