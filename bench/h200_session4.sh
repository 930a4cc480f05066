#!/usr/bin/env bash
# One device call of 2026-12-02 (session 4): bf16 fragment-rounding variants through tessera-kcheck (build/kc:
# one folder per case and variant), then kbench --sequence and training runs (with dispatch profiles) of the
# nvidia.json and tuned-profile plans against PEFT (bench/qwen06b_speed_h200.sh).
# There: device tool, carry .gl build/h200/s4.tgz (build/kc, the two plans, graph.json and the three binaries:
#        tar czf build/h200/s4.tgz build/kc build/qwen06b/{nvidia,tuned}.tplan build/qwen06b/graph.json build/bin/tessera-{rt,kbench,kcheck})
#        command: export OUT; bash bench/h200_session4.sh
# Later calls: BUNDLE=build/h200/NAME.tgz (the same contents), KBENCH_PLANS / PLANS (plan names),
#        PEFT_MODES, PARITY=1 with PARITY_PLAN (default nvidia).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
OUT=${OUT:-/tmp/out}
BUNDLE=${BUNDLE:-build/h200/s4.tgz}
[ -f $BUNDLE ] && tar xzf $BUNDLE
chmod +x build/bin/* 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader > $OUT/gpu.txt 2>&1
if [ -d build/kc ]; then
  for d in build/kc/*; do
    echo "== $(basename $d)"
    build/bin/tessera-kcheck $d 2>&1 | grep -E "^(PASS|FAIL)|elements differ|error" | head -12
  done > $OUT/kc.txt 2>&1
  grep -E "^==|^PASS|^FAIL" $OUT/kc.txt
fi
for plan in ${KBENCH_PLANS:-nvidia tuned}; do
  build/bin/tessera-kbench build/qwen06b/$plan.tplan --random --sequence $OUT/kseq-$plan.tsv --repeat 10 2>&1 | tail -2
done
DISPATCH_PROFILE=1 PEFT_MODES="${PEFT_MODES-eager-bf16 compile-bf16}" bash bench/qwen06b_speed_h200.sh ${PLANS:-nvidia tuned}
# PARITY=1: also the 100-step loss curve against PEFT eager bf16 (docs/parity.md).
[ -n "${PARITY:-}" ] && PLAN=${PARITY_PLAN:-nvidia} bash bench/qwen06b_bf16_parity.sh
