#!/usr/bin/env bash
# Device calls of 2026-12-04 (session 10): split-K for the workgroup-scope matmuls (the vocabulary-long
# LM-head activation gradient had 32 workgroups on 132 SMs) and per-shape workgroup variants.
#   kcheck: KernelNumericsEpilogue.CoopMatNvidiaWorkgroup* against their float64 references;
#   gemm:   every training GEMM of the Qwen3-0.6B shape (b8 x 512, LM-head chunks of 512 rows as the plans'
#           --loss-chunk-tokens), one plan per config (nvidia.json = nv, and wg-* configs in front of it),
#           timed by tessera-kbench; torch.matmul bf16 of the same shapes; a table per config (--matrix);
#   kbench: train_step of whole plans (KB_PLANS: names after s10- in build/qwen06b, l1b-* in build/llama1b);
#   train:  tessera-rt train, 12 steps (TRAIN_PLANS), with (PEFT=1) torch.compile PEFT bf16 in the same call;
#   parity: (PARITY=name) 100 steps against PEFT eager bf16 from the same adapter (bench/qwen06b_bf16_parity.sh);
#   PEFT_EXTRA="llama1b:8 qwen06b:1": torch.compile PEFT bf16 of those workloads, after everything else.
# Here:  bash bench/h200_session10.sh plans
# There: device tool, carry .gl build/h200/s10.tgz; command: export OUT; STAGES="kcheck gemm" bash bench/h200_session10.sh
set -uo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
L=build/llama1b
G=build/gemm10
# Workgroup configs put in front of nvidia.json for the GEMM table: tile_m, tile_n, tile_k, subgroups_m,
# subgroups_n[, split_k: then only for K >= 32768, the vocabulary-long products].
WG_CONFIGS=${WG_CONFIGS:-"128,128,64,2,4 128,128,32,2,4 128,256,32,2,4 256,128,32,4,2 64,128,32,2,2 128,64,64,2,2 128,128,64,2,4,4 128,128,64,2,4,16 128,256,32,2,4,8 64,128,64,2,2,8"}
# Whole-plan profiles: nv (nvidia.json), s9 (without the vocabulary split-K variant: session 9's default),
# kS (the vocabulary variant with split_k S), ldS (LoRA down products split S), lgS (the LoRA factors'
# gradients split S), wk3 (128 x 256 tiles for K >= 3072 into N <= 1024), r0 / r2k (reductions on a
# subgroup per output never / up to 2,048 elements); see the python below.
WHOLE_PROFILES=${WHOLE_PROFILES:-"nv s9 k4 k16"}
if [ "${1:-}" = plans ]; then
  set -e
  rm -rf $G && mkdir -p $G
  /usr/bin/python3 bench/gemm_bench.py mlir --shape qwen06b --dtype bf16 --chunk 512 --out $G/qwen06b-bf16.mlir
  WG_CONFIGS="$WG_CONFIGS" /usr/bin/python3 - <<'PY'
import copy, json, os
p = json.load(open("autotune/profiles/nvidia.json"))
vs = p["matmul"]["variants"]
def save(name, variants):
    json.dump(dict(p, name=name, matmul={"variants": variants}), open(f"build/gemm10/{name}.json", "w"), indent=1)
def with_split(names, s):
    return [dict(v, split_k=s) if v["name"] in names else v for v in vs]
save("nv", vs)
save("s9", [v for v in vs if v["name"] != "vocab_k_wg_bf16"])
for s in (4, 16):
    save(f"k{s}", with_split({"vocab_k_wg_bf16"}, s))
for s in (1, 2):  # the LoRA down products (K = hidden or intermediate, N = 16)
    save(f"ld{s}", with_split({"lora_down_tc_bf16"}, s))
for s in (8, 32):  # the LoRA factors' gradients (K = the step's 4,096 tokens)
    save(f"lg{s}", with_split({"lora_down_long_tc_bf16", "lora_grad_long_tc_bf16"}, s))
# K >= 3072 into N <= 1024 (down_proj forward, gate/up activation gradient): 128 x 256 tiles
wide = dict(vs[1], name="layers_wide_wg_bf16", min_k=3072, max_n=1024, tile_n=256, tile_k=32)
assert vs[1]["name"] == "layers_wg_bf16"
save("wk3", [vs[0], wide] + vs[1:])
for n, m in (("r0", 0), ("r2k", 2048)):  # reductions on one subgroup per output up to extent m (nv: 256)
    json.dump(dict(p, name=n, reduce=dict(p["reduce"], subgroup_max=m)), open(f"build/gemm10/{n}.json", "w"), indent=1)
for cfg in os.environ["WG_CONFIGS"].split():
    f = list(map(int, cfg.split(",")))
    tm, tn, tk, sm, sn = f[:5]
    name = f"wg{tm}x{tn}x{tk}s{sm * sn * 32}" + (f"k{f[5]}" if len(f) > 5 else "")
    v = dict(name=name, kind="coopmat", scope="workgroup", precision="bf16", tile_m=tm, tile_n=tn, tile_k=tk,
             mma_m=16, mma_n=16, mma_k=16, subgroups_m=sm, subgroups_n=sn, vector_width=8)
    if len(f) > 5:
        v.update(min_k=32768, split_k=f[5])
    save(name, [v] + vs)
PY
  for P in $G/*.json; do
    n=$(basename $P .json)
    build/bin/tessera-opt $G/qwen06b-bf16.mlir --tessera-select-kernel-configs=profile=$P \
      --tessera-lower-to-kernels --tessera-kernels-to-spirv -o $G/$n.mlir
    build/bin/tessera-translate --mlir-to-plan $G/$n.mlir -o $G/gemm-$n.tplan
    rm $G/$n.mlir
  done
  extra=""
  COMMON="--seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --loss-chunk-tokens 512 --precision bf16 --fused-attention"
  c() { build/bin/tessera compile "$@" -o $out $COMMON | grep -E "^wrote|^peak"; }
  for prof in $WHOLE_PROFILES; do
    [ -f $D/model.onnx ] && { out=$D/s10-$prof.tplan; c $D/model.onnx --batch 8 --profile $G/$prof.json; extra="$extra $out"; }
    [[ " ${L1B_PROFILES:-nv s9} " == *" $prof "* ]] && [ -f $L/model.onnx ] && { out=$L/s10-l1b-$prof.tplan; c $L/model.onnx --batch 8 --profile $G/$prof.json; extra="$extra $out"; }
  done
  [ -f $D/model.onnx ] && { out=$D/s10-b1-nv.tplan; c $D/model.onnx --batch 1 --profile $G/nv.json; extra="$extra $out"; }
  [ -f $D/graph.json ] && extra="$extra $D/graph.json"
  for f in ${KEEP_PLANS:-}; do extra="$extra $D/s10-$f.tplan"; done # plans built by an earlier tree
  rm -rf build/kcheck-wg
  TESSERA_KCHECK_EXPORT="$PWD/build/kcheck-wg" build/bin/lowering_tests \
    --gtest_filter='KernelNumericsEpilogue.CoopMatNvidiaWorkgroup*' --gtest_brief=1 | tail -1
  mkdir -p build/h200
  tar czf build/h200/s10.tgz $G/*.tplan $extra build/kcheck-wg build/bin/tessera-rt build/bin/tessera-kbench \
    build/bin/tessera-kcheck
  ls -la build/h200/s10.tgz
  exit 0
fi
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-570}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
tar xzf build/h200/s10.tgz
chmod +x build/bin/* 2>/dev/null
R=/tmp/r10 # what comes back packed as one file ($OUT takes few)
mkdir -p $R
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; build/bin/tessera-rt devices; } > $R/gpu.txt 2>&1
STAGES=${STAGES:-kcheck gemm kbench train}
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has kcheck; then
  echo "=== kcheck (workgroup-scope matmuls)"
  timeout 120 build/bin/tessera-kcheck build/kcheck-wg > $R/kcheck.txt 2>&1; tail -3 $R/kcheck.txt
fi
rm -f /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  timeout 560 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/peft-go --json $R/peft-compile-bf16.json > $R/peft-compile.log 2>&1 &
fi
if has gemm; then
  echo "=== GEMMs ($(left) s left)"
  mkdir -p $R/gemm
  for p in $G/*.tplan; do
    n=$(basename "$p" .tplan)
    timeout 60 build/bin/tessera-kbench "$p" --program eval --repeat 20 --random --names --top 0 > "$R/gemm/kbench-$n.txt" 2>&1
    grep -qE 'error' "$R/gemm/kbench-$n.txt" && echo "== $n: $(grep error $R/gemm/kbench-$n.txt | head -1 | cut -c1-200)"
  done
  python3 bench/gemm_bench.py torch --shape qwen06b --dtype bf16 --chunk 512 --json "$R/torch-gemm.json" > /tmp/torch-gemm.txt 2>&1 || tail -5 /tmp/torch-gemm.txt
  echo "== nvidia.json vs torch.matmul bf16"
  python3 bench/gemm_bench.py table --kbench $R/gemm/kbench-gemm-nv.txt --torch "$R/torch-gemm.json"
  echo "== best config per GEMM vs torch.matmul bf16"
  python3 bench/gemm_bench.py table --matrix --kbench $R/gemm/kbench-gemm-*.txt --torch "$R/torch-gemm.json" | tee $R/gemm-table.txt
fi
kb() { # name plan
  local n=$1 p=$2
  [ -f $p ] || { echo "($n: no plan)"; return; }
  [ $(left) -lt 150 ] && { echo "($n skipped)"; return; }
  timeout 90 build/bin/tessera-kbench $p --program train_step --repeat 5 --random --top 12 > "$R/kbench-$n.txt" 2>&1
  echo "== $n: $(grep -E 'whole program|error' "$R/kbench-$n.txt" | head -2 | tr '\n' ' ')"
  if [[ " ${KB_NAMES:-} " == *" $n "* ]]; then # every dispatch by the value it writes, for docs/benchmarks.md's split
    timeout 90 build/bin/tessera-kbench $p --program train_step --repeat 3 --random --names --top 0 > "$R/kbench-names-$n.txt" 2>&1
  fi
}
if has kbench; then
  echo "=== kbench train_step ($(left) s left)"
  for n in ${KB_PLANS:-}; do
    case $n in l1b-*) kb $n $L/s10-$n.tplan ;; *) kb $n $D/s10-$n.tplan ;; esac
  done
fi
Q=/tmp/q
if has train; then
  (source bench/qwen06b_device_inputs.sh) > /tmp/export.log 2>&1; tail -2 /tmp/export.log
  echo "=== training, 12 steps ($(left) s left)"
  for n in ${TRAIN_PLANS:-}; do
    [ $(left) -lt 60 ] && { echo "($n skipped)"; continue; }
    bt=8; [[ $n == b1-* ]] && bt=1
    t0=$(date +%s.%N)
    timeout 120 build/bin/tessera-rt train $D/s10-$n.tplan --weights $Q/graph/model.onnx --data /tmp/data.jsonl \
      --steps 12 --lr 1e-4 --seed 1 --out /tmp/ad-$n --metrics $R/m-$n.jsonl > $R/t-$n.log 2>&1 || tail -3 $R/t-$n.log
    grep -E "^startup|peak" $R/t-$n.log | head -3
    python3 bench/step_summary.py $n $((bt * 512)) $R/m-$n.jsonl $t0
  done
fi
touch /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  wait
  python3 -c "import json;d=json.load(open('$R/peft-compile-bf16.json'));print('torch.compile PEFT bf16:', {k: d[k] for k in d if 'ms' in k or 'tok' in k or 'mem' in k})" 2>&1 | tail -2
fi
if [ -n "${PARITY:-}" ]; then
  echo "=== 100-step parity of s10-$PARITY ($(left) s left)"
  mkdir -p $R/parity
  PLAN=s10-$PARITY OUT=$R/parity bash bench/qwen06b_bf16_parity.sh
fi
for spec in ${PEFT_EXTRA:-}; do # torch.compile PEFT bf16 of other workloads, e.g. "llama1b:8 qwen06b:1"
  m=${spec%:*} bt=${spec#*:}
  [ $(left) -lt 120 ] && { echo "(PEFT $spec skipped)"; continue; }
  echo "=== torch.compile PEFT bf16 $m b$bt ($(left) s left)"
  timeout $(( $(left) - 20 )) python3 bench/peft_speed.py --model $m --batch $bt --seq 512 --mode compile-bf16 \
    --steps 20 --json $R/peft-$m-b$bt.json > $R/peft-$m-b$bt.log 2>&1 || tail -3 $R/peft-$m-b$bt.log
  python3 -c "import json;d=json.load(open('$R/peft-$m-b$bt.json'));print({k: d[k] for k in d if 'ms' in k or 'tok' in k or 'peak' in k})" 2>&1 | tail -1
done
tar czf $OUT/r10.tgz -C /tmp r10
ls -la $OUT
