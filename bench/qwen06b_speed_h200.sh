#!/usr/bin/env bash
# One device call: the Qwen3-0.6B shape at batch 8 x 512, LoRA r16 on all linear layers, Tessera against
# PyTorch + PEFT on the same GPU (docs/benchmarks.md). Plans compiled here (bench/qwen06b_plans.sh);
# the model is re-made there from its seed and checked against the graph the plans were compiled from.
# There: device tool, carry .gl build/bin/tessera-rt build/qwen06b/*.tplan build/qwen06b/graph.json;
#        command: export OUT; bash bench/qwen06b_speed_h200.sh [plan names]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-20}
Q=/tmp/q
rm -rf $Q # a warm machine keeps /tmp: the exporter would append to the old external data
timeout 200 python3 test/fixtures/hf/export_hf.py qwen06b --out $Q --graph-only 2>&1 | grep -v -i warn | tail -1
python3 - $Q/graph.json build/qwen06b/graph.json <<'PY' || exit 1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["graph_sha256"] == b["graph_sha256"] and a["data_bytes"] == b["data_bytes"]
print("graph identical to the compiled one:", same)
sys.exit(0 if same else 1)
PY
python3 - <<'PY' > /tmp/data.jsonl
import json, random
r = random.Random(5)
for _ in range(8 * 40):
    print(json.dumps({"input_ids": [r.randrange(151936) for _ in range(512)]}))
PY
for plan in ${@:-bf16 bf16-simt}; do
  p=build/qwen06b/$plan.tplan
  [ -f $p ] || continue
  t0=$(date +%s.%N)
  timeout 240 build/bin/tessera-rt train $p --weights $Q/graph/model.onnx --data /tmp/data.jsonl --steps $STEPS \
    --lr 1e-4 --out /tmp/ad-$plan --metrics /tmp/m-$plan.jsonl > /tmp/t-$plan.log 2>&1 || tail -3 /tmp/t-$plan.log
  python3 - $plan /tmp/m-$plan.jsonl $t0 <<'PY'
import json, sys, time
name, path, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = [json.loads(l) for l in open(path)]
steady = m[3:] if len(m) > 5 else m
ms = sorted(s["gpu_ms"] for s in steady)[len(steady) // 2]
wall = sorted(s["wall_ms"] for s in steady)[len(steady) // 2]
print(f"Tessera {name}: {8 * 512 / (wall / 1000):,.0f} tokens/s (median wall {wall:.1f} ms/step, GPU {ms:.1f} ms), "
      f"losses {m[0]['loss']:.4f} -> {m[-1]['loss']:.4f}, run {time.time() - t0:.0f} s")
PY
  grep -E "peak|device memory|first step|pipelines" /tmp/t-$plan.log | head -3
done
for mode in ${PEFT_MODES:-eager-bf16 compile-bf16}; do
  timeout 240 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode $mode --steps 20 \
    --json $OUT/peft-$mode.json 2>&1 | grep -E "^PEFT|Error|error" | tail -2
done
