#!/usr/bin/env bash
# One device call on the lent GPU machine: the training GEMMs of the Qwen3-0.6B shape (batch 8 x 512) with
# Tessera's kernels against torch.matmul on the same GPU (docs/benchmarks.md, "Matmuls").
# Here:   bash bench/gemm_plans.sh            (compiles build/gemm/*.tplan with the nvidia profile)
# There:  device tool, carry .gl build/bin/tessera-rt build/bin/tessera-kbench build/gemm;
#         command: export OUT; bash bench/gemm_h200.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
LOGS=/tmp/kbench-logs
mkdir -p $LOGS
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader; build/bin/tessera-rt devices; } 2>&1 | tee "$OUT/info.txt"
for p in build/gemm/*.tplan; do
  n=$(basename "$p" .tplan)
  echo "== $n"
  timeout 120 build/bin/tessera-kbench "$p" --program eval --repeat 20 --random --names --top 0 > "$LOGS/kbench-$n.txt" 2>&1
  grep -E "error|sum of" "$LOGS/kbench-$n.txt" | head -3
done
python3 bench/gemm_bench.py torch --shape qwen06b --dtype bf16 --json "$OUT/torch-gemm.json" > /tmp/torch-gemm.txt 2>&1 || tail -5 /tmp/torch-gemm.txt
echo "== SIMT (nvidia.json without cooperative matrices) vs torch.matmul bf16"
python3 bench/gemm_bench.py table --kbench $LOGS/kbench-qwen06b-bf16-simt.txt --torch "$OUT/torch-gemm.json"
echo "== best cooperative-matrix config per GEMM vs torch.matmul bf16"
python3 bench/gemm_bench.py table --kbench $LOGS/kbench-qwen06b-bf16-tc*.txt --torch "$OUT/torch-gemm.json"
tar czf "$OUT/kbench.tgz" -C "$LOGS" .
