#!/usr/bin/env bash
# One device call of 2026-12-03 (session 8): fused attention on tensor cores with the blocks a mask kills
# skipped and O rescaled only where a row's max grew by more than ln 256 (kernels/AttentionCoopMat.cpp),
# against the decomposed attention (nvidia.json's default until now) and against the fused kernels of the
# tree before (fa-old, when its plan is there):
#   1. kcheck: the attention cases of the kernel-numerics suite compiled for nvidia.json (causal, finfo.min
#      padding) against their float64 references;
#   2. kbench: tessera-kbench train_step --random, two rounds: Qwen3-0.6B shape b8 x 512 (dec, fa, fa-old),
#      b1 x 512 (b1-dec, b1-fa) and the Llama-3.2-1B shape b8 x 512 (l1b-dec, l1b-fa);
#   3. training: tessera-rt train, 12 steps, dec and fa (and b1-*) on the exported Qwen3-0.6B graph; their
#      losses side by side;
#   4. (STAGES=... parity) 100 steps of s8-fa against PEFT eager bf16 from the same initial adapter
#      (bench/qwen06b_bf16_parity.sh);
#   5. torch: F.scaled_dot_product_attention forward + backward of the same attention (28 layers), and (PEFT=1)
#      torch.compile PEFT bf16 b8 x 512 whose compilation overlaps the stages above.
# Here:  bash bench/h200_session8.sh plans      (needs build/qwen06b and build/llama1b from bench/fetch_graphs.sh)
# There: device tool, carry .gl build/h200/s8.tgz; command: export OUT; PEFT=1 bash bench/h200_session8.sh
set -uo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
L=build/llama1b
if [ "${1:-}" = plans ]; then
  set -e
  COMMON="--seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --loss-chunk-tokens 512 --precision bf16"
  c() { # out model args...: nvidia.json unless args name a --profile
    local out=$1; shift
    local prof="--profile nvidia"; [[ " $* " == *" --profile "* ]] && prof=""
    build/bin/tessera compile "$@" -o $out $COMMON $prof | grep -E "^wrote|^peak"; }
  c $D/s8-dec.tplan $D/model.onnx --batch 8 --no-fused-attention
  c $D/s8-fa.tplan $D/model.onnx --batch 8 --fused-attention
  c $D/s8-b1-dec.tplan $D/model.onnx --batch 1 --no-fused-attention
  c $D/s8-b1-fa.tplan $D/model.onnx --batch 1 --fused-attention
  c $L/s8-l1b-dec.tplan $L/model.onnx --batch 8 --no-fused-attention
  c $L/s8-l1b-fa.tplan $L/model.onnx --batch 8 --fused-attention
  # Attention geometries (tile = [rows, block], subgroups) in nvidia.json's fa_tc_bf16 / fa_tc.
  /usr/bin/python3 - <<'PY'
import json
p = json.load(open("autotune/profiles/nvidia.json"))
for name, (tm, tn, sm, sn) in {"fa-b": (32, 32, 2, 2), "fa-e": (32, 16, 2, 1), "fa-f": (16, 32, 1, 2),
                               "fa-g": (64, 16, 4, 1)}.items():
    q = json.loads(json.dumps(p)); q["name"] = "nvidia-" + name
    for v in q["attention"]["variants"]:
        v.update(tile_m=tm, tile_n=tn, subgroups_m=sm, subgroups_n=sn)
    json.dump(q, open(f"build/nvidia-{name}.json", "w"), indent=1)
PY
  for v in fa-b fa-e fa-f fa-g; do
    c $D/s8-$v.tplan $D/model.onnx --batch 8 --fused-attention --profile build/nvidia-$v.json
  done
  extra=""
  if [ -x /work/wt/build/bin/tessera ]; then # the tree before this session's kernels
    /work/wt/build/bin/tessera compile $D/model.onnx -o $D/s8-fa-old.tplan --batch 8 --fused-attention $COMMON --profile nvidia | grep -E "^wrote"
    extra=$D/s8-fa-old.tplan
  fi
  rm -rf build/kcheck-attn
  TESSERA_KCHECK_EXPORT="$PWD/build/kcheck-attn" build/bin/lowering_tests \
    --gtest_filter='KernelNumericsAttention.CoopMatNvidia*' --gtest_brief=1 | tail -1
  # Plans of another build kept beside them (call 6: s8-fa-nopf etc., this tree against a build that staged
  # the next block a block ahead).
  for f in $D/s8-*-nopf.tplan $L/s8-*-nopf.tplan; do [ -f $f ] && extra="$extra $f"; done
  mkdir -p build/h200
  tar czf build/h200/s8.tgz $D/s8-{dec,fa,b1-dec,b1-fa,fa-b,fa-e,fa-f,fa-g}.tplan $L/s8-l1b-{dec,fa}.tplan $extra $D/graph.json \
    build/kcheck-attn build/bin/tessera-rt build/bin/tessera-kbench build/bin/tessera-kcheck
  ls -la build/h200/s8.tgz
  exit 0
fi
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-570}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
tar xzf build/h200/${ARCHIVE:-s8.tgz}
chmod +x build/bin/* 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > $OUT/gpu.txt 2>&1
Q=/tmp/q
rm -f /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  timeout 560 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/peft-go --json $OUT/peft-compile-bf16.json > $OUT/peft-compile.log 2>&1 &
  peft_pid=$!
fi
(source bench/qwen06b_device_inputs.sh) > /tmp/export.log 2>&1 &
export_pid=$!
STAGES=${STAGES:-kcheck kbench train parity torch}
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has kcheck; then
  echo "=== kcheck (attention, nvidia.json)"
  timeout 120 build/bin/tessera-kcheck build/kcheck-attn > $OUT/kcheck.txt 2>&1; tail -3 $OUT/kcheck.txt
fi
kb() { # name plan
  local n=$1 p=$2
  [ -f $p ] || { echo "($n: no plan)"; return; }
  [ $(left) -lt 150 ] && { echo "($n skipped)"; return; }
  timeout 90 build/bin/tessera-kbench $p --program train_step --repeat 5 --random --top 12 > "$OUT/kbench-$n.txt" 2>&1
  echo "== $n: $(grep -E 'whole program|error' "$OUT/kbench-$n.txt" | head -2 | tr '\n' ' ')"
}
# KB_PLANS: the plans (names after s8-, l1b-* from build/llama1b) timed in each of ROUNDS rounds.
if has kbench; then
  echo "=== kbench train_step ($(left) s left)"
  for round in $(seq 1 ${ROUNDS:-2}); do
    for n in ${KB_PLANS:-dec fa fa-old b1-dec b1-fa l1b-dec l1b-fa}; do
      case $n in l1b-*) kb $n-$round $L/s8-$n.tplan ;; *) kb $n-$round $D/s8-$n.tplan ;; esac
    done
  done
fi
{ has train || has parity; } && { wait $export_pid; cat /tmp/export.log; }
tr() { # name plan batch
  local n=$1 p=$2 bt=$3
  [ $(left) -lt 60 ] && { echo "($n skipped)"; return; }
  local t0=$(date +%s.%N)
  timeout 120 build/bin/tessera-rt train $p --weights $Q/graph/model.onnx --data /tmp/data.jsonl \
    --steps 12 --lr 1e-4 --seed 1 --out /tmp/ad-$n --metrics $OUT/m-$n.jsonl > $OUT/t-$n.log 2>&1 || tail -3 $OUT/t-$n.log
  grep -E "^startup|peak" $OUT/t-$n.log | head -3
  python3 bench/step_summary.py $n $((bt * 512)) $OUT/m-$n.jsonl $t0
}
if has train; then
  echo "=== training, 12 steps ($(left) s left)"
  tr dec $D/s8-dec.tplan 8
  tr fa $D/s8-fa.tplan 8
  tr b1-dec $D/s8-b1-dec.tplan 1
  tr b1-fa $D/s8-b1-fa.tplan 1
  python3 - $OUT <<'PY'
import json, os, sys
def losses(n):
    p = os.path.join(sys.argv[1], f"m-{n}.jsonl")
    return [json.loads(l)["loss"] for l in open(p)] if os.path.exists(p) else None
for a, b in [("fa", "dec"), ("b1-fa", "b1-dec")]:
    x, y = losses(a), losses(b)
    if x and y:
        print(f"losses {a} vs {b}: max |diff| {max(abs(u - v) for u, v in zip(x, y)):.2e} over {len(x)} steps; "
              f"{a} {x[0]:.5f} -> {x[-1]:.5f}, {b} {y[0]:.5f} -> {y[-1]:.5f}")
PY
fi
if has parity; then # 100 steps of the default (fused) plan against PEFT eager bf16 from the same adapter
  echo "=== 100-step parity, s8-fa against PEFT eager bf16 ($(left) s left)"
  [ $(left) -gt 120 ] && OUT=$OUT/parity PLAN=s8-fa bash bench/qwen06b_bf16_parity.sh 2>&1 | tail -3
fi
touch /tmp/peft-go
if has torch; then
  echo "=== torch scaled_dot_product_attention, 28 layers forward + backward ($(left) s left)"
  timeout 60 python3 - <<'PY' 2>&1 | tee $OUT/torch-sdpa.txt
import torch, torch.nn.functional as F
q = torch.randn(8, 16, 512, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
k = torch.randn(8, 8, 512, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
v = torch.randn(8, 8, 512, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
g = torch.randn(8, 16, 512, 128, device="cuda", dtype=torch.bfloat16)
def step():
    for _ in range(28):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        o.backward(g)
for _ in range(3):
    step()
torch.cuda.synchronize()
e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
t = []
for _ in range(10):
    e0.record(); step(); e1.record(); torch.cuda.synchronize(); t.append(e0.elapsed_time(e1))
print(f"torch sdpa causal GQA b8 h16/8 t512 d128 bf16, 28 x (forward + backward): median {sorted(t)[5]:.2f} ms")
PY
fi
if [ -n "${peft_pid:-}" ]; then
  echo "=== PEFT torch.compile bf16 ($(left) s left)"
  wait $peft_pid; grep -E "^PEFT|Error|error" $OUT/peft-compile.log | tail -2
fi
echo "=== done ($(( $(date +%s) - T0 )) s)"
cd $OUT && tar czf /tmp/r.tgz . && rm -rf $OUT/* && mv /tmp/r.tgz $OUT/
