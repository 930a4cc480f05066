#!/usr/bin/env bash
# One device call on the H200: what splitting weights over the buffer limit and a memory budget cost
# (docs/benchmarks.md, issue 13 item 4): the Qwen3-0.6B step at batch 8 x 512, bf16, with the table whole
# (bf16-unsplit), in 128 MiB tiles (bf16-split) and under --memory-budget (bf16-budget), tokens/s each, through
# bench/qwen06b_speed_h200.sh (which re-makes the model from its seed and checks it is the compiled graph).
# Here: bash bench/split_plans.sh [BUDGET]
# There (device tool, carry .gl build/bin/tessera-rt build/qwen06b/bf16-*split.tplan build/qwen06b/bf16-budget.tplan
#        build/qwen06b/graph.json): OUT=$OUT bash bench/split_h200.sh
set -uo pipefail
cd "$(dirname "$0")/.."
chmod +x build/bin/* 2>/dev/null
PEFT_MODES=" " STEPS=${STEPS:-12} bash bench/qwen06b_speed_h200.sh bf16-unsplit bf16-split bf16-budget
