#!/usr/bin/env bash
# One device call on the lent H200 that checks and times what this tree's tensor-core path does, in order:
#   1. the kernel-numerics suite with tessera-kcheck (bench/kernel_numerics_gpu.sh; nvidia.json's coopmat cases)
#   2. cooperative-matrix plans against SIMT plans of the same precision (bench/coopmat_check_h200.sh)
#   tune: tessera-rt tune on the Qwen3-0.6B bf16 tuning plan for TUNE_BUDGET seconds (the profile in $OUT)
#   kbench: tessera-kbench on one plan's train_step (KBENCH_PLAN), per kernel
#   startup: launch to the first step, pipeline cache cold / warm / off (bench/startup.sh; STARTUP_PLAN, STARTUP_RUNS)
#   3. the Qwen3-0.6B step (bench/qwen06b_speed_h200.sh) for the plans of bench/qwen06b_plans.sh, then
#      PyTorch + PEFT eager bf16 in the same call; PEFT torch.compile when PEFT_MODES includes compile-bf16
# Here: bash bench/qwen06b_plans.sh; bash bench/coopmat_check_plans.sh; bash bench/kernel_numerics_gpu.sh export;
#       bash bench/h200_session.sh pack
# There (device tool, carry .gl build/bin/tessera-rt build/bin/tessera-kcheck build/h200):
#       OUT=$OUT bash bench/h200_session.sh [stages, default "kcheck coopmat speed"]
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = pack ]; then
  rm -rf build/h200 && mkdir -p build/h200
  tar czf build/h200/qwen06b.tgz build/qwen06b/*.tplan build/qwen06b/*.ttune build/qwen06b/graph.json
  tar czf build/h200/coopmat-check.tgz build/coopmat-check
  tar czf build/h200/kcheck.tgz build/kcheck-cases
  du -sh build/h200/*
  exit 0
fi
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for t in build/h200/*.tgz; do tar xzf "$t"; done
chmod +x build/bin/*
stages=${*:-kcheck coopmat speed}
t0=$(date +%s)
for s in $stages; do
  echo "=== $s ($(( $(date +%s) - t0 )) s)"
  case $s in
  kcheck) timeout 150 bash bench/kernel_numerics_gpu.sh 2>&1 | tail -40 ;;
  tune) source scripts/device_env.sh
    timeout $(( ${TUNE_BUDGET:-60} + 40 )) build/bin/tessera-rt tune build/qwen06b/bf16.ttune --out "$OUT/h200-tuned.json" \
      --name h200-tuned --budget ${TUNE_BUDGET:-60}s --timeout 20s 2>&1 | tail -14 ;;
  startup) source scripts/device_env.sh; Q=/tmp/q; source bench/qwen06b_device_inputs.sh
    RUNS=${STARTUP_RUNS:-1} timeout 480 bash bench/startup.sh build/qwen06b/${STARTUP_PLAN:-bf16}.tplan $Q/graph/model.onnx \
      /tmp/data.jsonl 2>&1 | tee "$OUT/startup.txt" ;;
  kbench) source scripts/device_env.sh # where the step's time goes, per kernel family and the top kernels
    timeout 150 build/bin/tessera-kbench build/qwen06b/${KBENCH_PLAN:-bf16}.tplan --program train_step --repeat 3 \
      --random --names --top 30 2>&1 | tee "$OUT/kbench.txt" | tail -60 ;;
  coopmat) timeout 200 bash bench/coopmat_check_h200.sh 2>&1 | tee "$OUT/coopmat-check.txt" ;;
  speed) PEFT_MODES=${PEFT_MODES:-eager-bf16} timeout 420 bash bench/qwen06b_speed_h200.sh ${PLANS:-bf16 bf16-chunk512 f16 bf16-simt} 2>&1 | tee "$OUT/qwen06b-speed.txt" ;;
  esac
done
echo "=== done ($(( $(date +%s) - t0 )) s)"
