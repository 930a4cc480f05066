#!/usr/bin/env bash
# One device call (issue 14's figures, docs/benchmarks.md): the Qwen3-0.6B shape at batch 8 x 512 and 1 x 512,
# LoRA r16 on all linear layers, f16 against frozen bases in q8_0, q4_0 and tq2_0 (plans from bench/quant_plans.sh):
# frozen-weight memory (the plan's, by type), peak device memory and tokens/s per plan. The model is re-made there
# from its seed and checked against the graph the plans were compiled from; the bases are quantised at load.
# There: device tool, carry .gl build/bin/tessera-rt build/h200/quant.tgz;
#        command: export OUT; bash bench/quant_h200.sh [plan names, default all]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-12}
Q=/tmp/q
mkdir -p "$OUT"
[ -f build/h200/quant.tgz ] && tar xzf build/h200/quant.tgz
chmod +x build/bin/* 2>/dev/null
source bench/qwen06b_device_inputs.sh
plans=${@:-b8-bf16 b8-q8_0 b8-q4_0 b8-tq2_0 b1-bf16 b1-q8_0 b1-q4_0 b1-tq2_0}
for plan in $plans; do
  p=build/qwen06b/quant/$plan.tplan
  [ -f $p ] || { echo "$plan: no $p"; continue; }
  t0=$(date +%s.%N)
  timeout 300 build/bin/tessera-rt train $p --weights $Q/graph/model.onnx --data /tmp/data.jsonl --steps $STEPS \
    --lr 1e-4 --out /tmp/ad-$plan --metrics /tmp/m-$plan.jsonl > /tmp/t-$plan.log 2>&1 || tail -3 /tmp/t-$plan.log
  cp /tmp/m-$plan.jsonl "$OUT/quant-$plan.jsonl" 2>/dev/null
  python3 - $plan $p /tmp/m-$plan.jsonl /tmp/t-$plan.log $t0 <<'PY'
import json, re, struct, sys, time
name, plan, metrics, log, t0 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
with open(plan, "rb") as f:
    head = f.read(32)
    manifest = json.loads(f.read(struct.unpack("<Q", head[16:24])[0]))
by = {}
for b in manifest["buffers"]:
    if b["kind"] == "weight" and "alias_of" not in b:
        by[b["dtype"]] = by.get(b["dtype"], 0) + b["bytes"]
batch = manifest["batch"] * manifest["seq"]
m = [json.loads(l) for l in open(metrics)] if open(metrics).read().strip() else []
steady = m[3:] if len(m) > 5 else m
wall = sorted(s["wall_ms"] for s in steady)[len(steady) // 2] if steady else float("nan")
gpu = sorted(s["gpu_ms"] for s in steady)[len(steady) // 2] if steady else float("nan")
peak = re.findall(r"peak[^\n]*", open(log).read())
print(f"{name}: frozen weights " + ", ".join(f"{t} {v / 1e9:.3f} GB" for t, v in sorted(by.items())) +
      f"; plan total {manifest['memory']['total_bytes'] / 1e9:.2f} GB; {batch / (wall / 1000):,.0f} tokens/s "
      f"(median wall {wall:.1f} ms/step, GPU {gpu:.1f} ms); losses {m[0]['loss'] if m else float('nan'):.4f} -> "
      f"{m[-1]['loss'] if m else float('nan'):.4f}; {peak[0] if peak else 'no peak line'}; run {time.time() - t0:.0f} s")
PY
done
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null | head -1
