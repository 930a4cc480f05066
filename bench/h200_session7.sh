#!/usr/bin/env bash
# One device call of 2026-12-03 (session 7), stages that each stop early when the call's time runs short:
#   1. streamed weights with the copies on the transfer queue (the copy engines) against one queue
#      (TESSERA_TRANSFER_QUEUE=off) and against the weights on the device: tessera-kbench train_step --random,
#      Qwen3-0.6B shape b8 x 512 bf16, all weights streamed (stream32), and a 1600 MiB --memory-budget plan
#      (recompute, micro-batches 4 x 2, 75 % of the weights streamed) against its unstreamed micro-batch (b4-rc);
#   2. real training (the model exported meanwhile), 12 steps each: nostream, stream32 on the transfer queue,
#      stream32 on one queue, budget1600 both ways; the streamed runs' losses must equal bit for bit;
#   3. quantised bases at batch 1 x 512 (issue 14): bf16, q8_0, q4_0, tq2_0 in training (bench/quant_h200.sh's
#      summary: frozen-weight memory by type, plan total, tokens/s);
#   4. (STAGES=split) the table whole, in 128 MiB tiles and under a 2 GiB budget (bench/split_plans.sh), 12
#      training steps each;
#   5. (STAGES=quant8) the quantised bases at batch 8 x 512 in training;
#   6. (STAGES=budget) the 2 GiB budget's plans in the copy-queue order: bf16-budget (128 MiB buffers) and
#      budget2g-nv (nvidia.json, --loss-chunk-tokens 512), 12 training steps each (call 3).
# STAGES picks them (default "kbench train quant1": call 1; call 2 ran STAGES="split quant8").
# Here:  bash bench/h200_session7.sh plans   (needs build/qwen06b from bench/fetch_graphs.sh, the plans of
#        bench/quant_plans.sh and of bench/split_plans.sh)
# There: device tool, carry .gl build/h200/s7.tgz; command: export OUT; [STAGES=...] bash bench/h200_session7.sh
set -uo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
if [ "${1:-}" = plans ]; then
  set -e
  COMMON="--seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --loss-chunk-tokens 512 --precision bf16 --profile nvidia"
  build/bin/tessera compile $D/model.onnx -o $D/nostream.tplan --batch 8 $COMMON | grep -E "^peak"
  build/bin/tessera compile $D/model.onnx -o $D/stream32.tplan --batch 8 $COMMON --stream-weights | grep -E "^peak|streamed"
  build/bin/tessera compile $D/model.onnx -o $D/b4-rc.tplan --batch 4 $COMMON --recompute | grep -E "^peak"
  build/bin/tessera compile $D/model.onnx -o $D/budget1600.tplan --batch 8 $COMMON --memory-budget 1600MiB | grep -E "budget|streamed"
  mkdir -p build/h200
  build/bin/tessera compile $D/model.onnx -o $D/budget2g-nv.tplan --batch 8 $COMMON --memory-budget 2GiB | grep -E "budget"
  tar czf build/h200/s7.tgz $D/{nostream,stream32,b4-rc,budget1600,bf16-unsplit,bf16-split,bf16-budget,budget2g-nv}.tplan \
    $D/quant/b[18]-*.tplan $D/graph.json build/bin/tessera-rt build/bin/tessera-kbench
  ls -la build/h200/s7.tgz
  exit 0
fi
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-570}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
tar xzf build/h200/${ARCHIVE:-s7.tgz}
chmod +x build/bin/* 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > $OUT/gpu.txt 2>&1
Q=/tmp/q
(source bench/qwen06b_device_inputs.sh) > /tmp/export.log 2>&1 &
export_pid=$!
STAGES=${STAGES:-kbench train quant1}
has() { [[ " $STAGES " == *" $1 "* ]]; }
has kbench && echo "=== kbench train_step ($(left) s left)"
kb() { # name plan [env]
  local n=$1 p=$2; shift 2
  [ $(left) -lt 200 ] && { echo "($n skipped)"; return; }
  env "$@" timeout 90 build/bin/tessera-kbench $D/$p.tplan --program train_step --repeat 5 --random --top 4 \
    > "$OUT/kbench-$n.txt" 2>&1
  echo "== $n: $(grep -E 'whole program|error' "$OUT/kbench-$n.txt" | head -2 | tr '\n' ' ')"
}
has kbench && for round in 1 2; do
  kb nostream-$round nostream
  kb stream32-tq-$round stream32
  kb stream32-oneq-$round stream32 TESSERA_TRANSFER_QUEUE=off
  kb b4rc-$round b4-rc
  kb budget1600-tq-$round budget1600
  kb budget1600-oneq-$round budget1600 TESSERA_TRANSFER_QUEUE=off
done
wait $export_pid; cat /tmp/export.log
has train && echo "=== training, 12 steps ($(left) s left)"
tr() { # name plan [env]
  local n=$1 p=$2; shift 2
  [ $(left) -lt 40 ] && { echo "($n skipped)"; return; }
  local t0=$(date +%s.%N)
  env "$@" timeout 120 build/bin/tessera-rt train $D/$p.tplan --weights $Q/graph/model.onnx --data /tmp/data.jsonl \
    --steps 12 --lr 1e-4 --seed 1 --out /tmp/ad-$n --metrics $OUT/m-$n.jsonl > $OUT/t-$n.log 2>&1 || tail -3 $OUT/t-$n.log
  grep -E "^streamed weights|^startup" $OUT/t-$n.log
  python3 bench/step_summary.py $n $((8 * 512)) $OUT/m-$n.jsonl $t0
}
if has train; then
tr nostream nostream
tr stream32-tq stream32
tr stream32-oneq stream32 TESSERA_TRANSFER_QUEUE=off
tr budget1600-tq budget1600
tr budget1600-oneq budget1600 TESSERA_TRANSFER_QUEUE=off
fi
if has split; then
  echo "=== the table whole, in 128 MiB tiles, under a 2 GiB budget ($(left) s left)"
  for round in 1 2; do
    tr unsplit-$round bf16-unsplit
    tr split-$round bf16-split
    tr budget2g-$round bf16-budget
  done
fi
if has budget; then
  echo "=== 2 GiB budgets in the copy-queue order ($(left) s left)"
  tr budget2g-split bf16-budget
  [ -f $D/budget2g-nv.tplan ] && tr budget2g-nv budget2g-nv
fi
python3 - $OUT <<'PY'
import json, os, sys
def losses(n):
    p = os.path.join(sys.argv[1], f"m-{n}.jsonl")
    return [json.loads(l)["loss"] for l in open(p)] if os.path.exists(p) else None
for a, b in [("stream32-tq", "stream32-oneq"), ("stream32-tq", "nostream"), ("budget1600-tq", "budget1600-oneq")]:
    x, y = losses(a), losses(b)
    if x and y:
        print(f"losses {a} vs {b}: {'bit-identical' if x == y else 'DIFFER'} ({len(x)} steps; "
              f"max |diff| {max(abs(u - v) for u, v in zip(x, y)):.3g})")
PY
for b in 1 8; do
  has quant$b || continue
  echo "=== quantised bases, batch $b x 512 ($(left) s left)"
  for t in bf16 q8_0 q4_0 tq2_0; do
    [ $(left) -lt 40 ] && { echo "(b$b-$t skipped)"; continue; }
    STEPS=12 bash bench/quant_h200.sh b$b-$t 2>&1 | grep -v "^NVIDIA"
  done
done
echo "=== done ($(( $(date +%s) - T0 )) s)"
cd $OUT && tar czf /tmp/r.tgz . && rm -rf $OUT/* && mv /tmp/r.tgz $OUT/
