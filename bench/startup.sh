#!/usr/bin/env bash
# Startup (issue 10 item 4): launch to the end of the first step of `train`,
# three 1-step runs of one plan: a fresh pipeline cache folder (cold), the same
# folder again (warm), and --no-pipeline-cache (off). Prints each run's wall
# time (launch to exit), its step-1 time and its `startup:` line, then the
# cache file. The drivers' own shader disk caches are switched off
# (__GL_SHADER_DISK_CACHE=0 for NVIDIA, MESA_SHADER_CACHE_DISABLE for Mesa)
# so that only Tessera's acts; RUNS=N repeats the three.
#   bash bench/startup.sh PLAN WEIGHTS DATA [tessera-rt binary]
set -euo pipefail
plan=$1 weights=$2 data=$3 bin=${4:-build/bin/tessera-rt}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export __GL_SHADER_DISK_CACHE=0 MESA_SHADER_CACHE_DISABLE=true
run() {
  local name=$1
  shift
  rm -f "$dir/m.jsonl"
  local t0
  t0=$(date +%s.%N)
  "$bin" train "$plan" --weights "$weights" --data "$data" --steps 1 --checkpoint-every 0 --out "$dir/ad" \
    --metrics "$dir/m.jsonl" "$@" > "$dir/log" 2>&1 || { tail -3 "$dir/log"; exit 1; }
  python3 - "$name" "$t0" "$(date +%s.%N)" "$dir/m.jsonl" "$(grep '^startup:' "$dir/log")" <<'PY'
import json, sys
name, t0, t1, metrics, line = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
step = json.loads(open(metrics).readline())
print(f"{name:5} first step done {t1 - t0:6.2f} s after launch (step 1: {step['wall_ms'] / 1000:.2f} s, loss {step['loss']:.6f}) | {line}")
PY
}
for i in $(seq "${RUNS:-1}"); do
  rm -rf "$dir/cache"
  run cold --pipeline-cache "$dir/cache"
  run warm --pipeline-cache "$dir/cache"
  run off --no-pipeline-cache
done
ls -l "$dir/cache"
