#!/usr/bin/env bash
# Device calls of 2026-12-04 (session 9): matmuls on workgroup-scope cooperative matrices
# (VK_NV_cooperative_matrix2, kernels/MatmulCoopMat.cpp's workgroup configs: one tile_m x tile_n matrix per
# workgroup, loaded from memory and staged by the driver) against the subgroup-scope kernels and torch.matmul.
#   kcheck: KernelNumericsEpilogue.CoopMatNvidiaWorkgroup* against their float64 references;
#   gemm:   every training GEMM of the Qwen3-0.6B shape (b8 x 512, bf16), one plan per config: nvidia.json's
#           subgroup kernels (sg) and workgroup configs (wg-*), timed by tessera-kbench; torch.matmul bf16;
#   kbench: train_step of whole plans (KB_PLANS, names after s9- in build/qwen06b, l1b-* in build/llama1b);
#   train:  tessera-rt train, 12 steps (TRAIN_PLANS), with (PEFT=1) torch.compile PEFT bf16 in the same call;
#   export: (EXPORT=1) the ONNX graphs for bench/fetch_graphs.sh.
# Here:  bash bench/h200_session9.sh plans   (GEMM plans; whole plans where build/qwen06b, build/llama1b exist)
# There: device tool, carry .gl build/h200/s9.tgz; command: export OUT; STAGES="gemm" bash bench/h200_session9.sh
set -uo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
L=build/llama1b
G=build/gemm9
# tile_m, tile_n, tile_k, subgroups_m, subgroups_n of the workgroup configs tried
WG_CONFIGS=${WG_CONFIGS:-"128,128,32,2,2 128,128,32,2,4 128,256,32,2,4 256,128,32,4,2 128,128,64,2,4 256,256,32,4,4 64,128,32,2,2"}
if [ "${1:-}" = plans ]; then
  set -e
  rm -rf $G && mkdir -p $G
  /usr/bin/python3 bench/gemm_bench.py mlir --shape qwen06b --dtype bf16 --out $G/qwen06b-bf16.mlir
  WG_CONFIGS="$WG_CONFIGS" /usr/bin/python3 - <<'PY'
import json, os
p = json.load(open("autotune/profiles/nvidia.json"))
json.dump(dict(p, name="sg"), open("build/gemm9/sg.json", "w"), indent=1)
for cfg in os.environ["WG_CONFIGS"].split():
    tm, tn, tk, sm, sn = map(int, cfg.split(","))
    name = f"wg{tm}x{tn}x{tk}s{sm * sn * 32}"
    v = dict(name=name, kind="coopmat", scope="workgroup", precision="bf16", tile_m=tm, tile_n=tn, tile_k=tk,
             mma_m=16, mma_n=16, mma_k=16, subgroups_m=sm, subgroups_n=sn, vector_width=8)
    vs = p["matmul"]["variants"]
    json.dump(dict(p, name=name, matmul={"variants": [v] + vs}), open(f"build/gemm9/{name}.json", "w"), indent=1)
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
  for prof in ${WHOLE_PROFILES:-}; do # whole plans: nvidia.json (sg) and the workgroup profiles named
    [ -f $D/model.onnx ] && { out=$D/s9-$prof.tplan; c $D/model.onnx --batch 8 --profile $G/$prof.json; extra="$extra $out"; }
    [ -f $D/model.onnx ] && { out=$D/s9-b1-$prof.tplan; c $D/model.onnx --batch 1 --profile $G/$prof.json; extra="$extra $out"; }
    [ -f $L/model.onnx ] && { out=$L/s9-l1b-$prof.tplan; c $L/model.onnx --batch 8 --profile $G/$prof.json; extra="$extra $out"; }
  done
  [ -f $D/graph.json ] && extra="$extra $D/graph.json"
  rm -rf build/kcheck-wg
  TESSERA_KCHECK_EXPORT="$PWD/build/kcheck-wg" build/bin/lowering_tests \
    --gtest_filter='KernelNumericsEpilogue.CoopMatNvidiaWorkgroup*' --gtest_brief=1 | tail -1
  mkdir -p build/h200
  tar czf build/h200/s9.tgz $G/*.tplan $extra build/kcheck-wg build/bin/tessera-rt build/bin/tessera-kbench \
    build/bin/tessera-kcheck
  ls -la build/h200/s9.tgz
  exit 0
fi
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-570}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
tar xzf build/h200/s9.tgz
chmod +x build/bin/* 2>/dev/null
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; build/bin/tessera-rt devices; } > $OUT/gpu.txt 2>&1
grep -i -A12 "workgroup-scope" $OUT/gpu.txt | head -14
STAGES=${STAGES:-kcheck gemm kbench train}
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has kcheck; then # the workgroup-scope epilogue cases against their float64 references
  echo "=== kcheck (workgroup-scope matmuls)"
  timeout 120 build/bin/tessera-kcheck build/kcheck-wg > $OUT/kcheck.txt 2>&1; tail -4 $OUT/kcheck.txt
fi
if [ -n "${EXPORT:-}" ]; then
  (bash bench/export_graphs_h200.sh) > $OUT/export.log 2>&1 &
  export_pid=$!
fi
rm -f /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  timeout 560 python3 bench/peft_speed.py --model qwen06b --batch 8 --seq 512 --mode compile-bf16 --steps 20 \
    --wait-for /tmp/peft-go --json $OUT/peft-compile-bf16.json > $OUT/peft-compile.log 2>&1 &
fi
LOGS=$OUT/gemm
mkdir -p $LOGS
if has gemm; then
  echo "=== GEMMs ($(left) s left)"
  for p in $G/*.tplan; do
    n=$(basename "$p" .tplan)
    timeout 60 build/bin/tessera-kbench "$p" --program eval --repeat 20 --random --names --top 0 > "$LOGS/kbench-$n.txt" 2>&1
    echo "== $n: $(grep -E 'error|whole program' "$LOGS/kbench-$n.txt" | head -2 | tr '\n' ' ' | cut -c1-300)"
  done
  python3 bench/gemm_bench.py torch --shape qwen06b --dtype bf16 --json "$OUT/torch-gemm.json" > /tmp/torch-gemm.txt 2>&1 || tail -5 /tmp/torch-gemm.txt
  echo "== subgroup kernels (nvidia.json) vs torch.matmul bf16"
  python3 bench/gemm_bench.py table --kbench $LOGS/kbench-gemm-sg.txt --torch "$OUT/torch-gemm.json"
  echo "== best workgroup config per GEMM vs torch.matmul bf16"
  python3 bench/gemm_bench.py table --kbench $LOGS/kbench-gemm-wg*.txt --torch "$OUT/torch-gemm.json"
fi
kb() { # name plan
  local n=$1 p=$2
  [ -f $p ] || { echo "($n: no plan)"; return; }
  [ $(left) -lt 150 ] && { echo "($n skipped)"; return; }
  timeout 90 build/bin/tessera-kbench $p --program train_step --repeat 5 --random --top 12 > "$OUT/kbench-$n.txt" 2>&1
  echo "== $n: $(grep -E 'whole program|error' "$OUT/kbench-$n.txt" | head -2 | tr '\n' ' ')"
}
if has kbench; then
  echo "=== kbench train_step ($(left) s left)"
  for n in ${KB_PLANS:-}; do
    case $n in l1b-*) kb $n $L/s9-$n.tplan ;; *) kb $n $D/s9-$n.tplan ;; esac
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
    timeout 120 build/bin/tessera-rt train $D/s9-$n.tplan --weights $Q/graph/model.onnx --data /tmp/data.jsonl \
      --steps 12 --lr 1e-4 --seed 1 --out /tmp/ad-$n --metrics $OUT/m-$n.jsonl > $OUT/t-$n.log 2>&1 || tail -3 $OUT/t-$n.log
    grep -E "^startup|peak" $OUT/t-$n.log | head -3
    python3 bench/step_summary.py $n $((bt * 512)) $OUT/m-$n.jsonl $t0
  done
fi
touch /tmp/peft-go
if [ -n "${PEFT:-}" ]; then
  wait
  python3 -c "import json;d=json.load(open('$OUT/peft-compile-bf16.json'));print('torch.compile PEFT bf16:', {k: d[k] for k in d if 'ms' in k or 'tok' in k or 'mem' in k})" 2>&1 | tail -2
fi
[ -n "${EXPORT:-}" ] && { wait $export_pid; tail -3 $OUT/export.log; }
ls $OUT | head -30
