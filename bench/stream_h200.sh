#!/usr/bin/env bash
# One device call (issue 13): what streaming the frozen weights from host memory costs on the H200, and how much
# of it the prefetched transfers hide. Qwen3-0.6B shape, batch 8 x 512, bf16, nvidia.json; train_step GPU time
# of tessera-kbench --random (no model export needed there) for: the weights on the device (nostream), streamed
# with each copy just before its readers as the copy kernels (the old recording: stream0 + TESSERA_STREAM_COPIES=
# dispatch), the same as transfers (stream0), and copies 32 dispatches ahead as transfers (stream32, the default)
# and as kernels.
# Here:  bash bench/stream_h200.sh plans      (needs build/qwen06b from bench/fetch_graphs.sh)
# There: device tool, carry .gl build/h200/stream.tgz; command: export OUT; bash bench/stream_h200.sh
set -uo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
COMMON="--batch 8 --seq 512 --lora-rank 16 --lora-alpha 16 --lora-targets all-linear --loss-chunk-tokens 512 --precision bf16 --profile nvidia"
if [ "${1:-}" = plans ]; then
  build/bin/tessera compile $D/model.onnx -o $D/nostream.tplan $COMMON | grep -E "^peak"
  build/bin/tessera compile $D/model.onnx -o $D/stream0.tplan $COMMON --stream-weights --stream-prefetch 0 | grep -E "^peak|streamed"
  build/bin/tessera compile $D/model.onnx -o $D/stream32.tplan $COMMON --stream-weights | grep -E "^peak|streamed"
  mkdir -p build/h200
  tar czf build/h200/stream.tgz $D/{nostream,stream0,stream32}.tplan build/bin/tessera-kbench
  ls -la build/h200/stream.tgz
  exit 0
fi
source scripts/device_env.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tar xzf build/h200/stream.tgz
chmod +x build/bin/* 2>/dev/null
run() { # name plan [env]
  local n=$1 p=$2; shift 2
  env "$@" timeout 120 build/bin/tessera-kbench $D/$p.tplan --program train_step --repeat 5 --random --top 8 \
    > "$OUT/kbench-$n.txt" 2>&1
  echo "== $n: $(grep -E 'whole program|error' "$OUT/kbench-$n.txt" | head -2 | tr '\n' ' ')"
}
for round in 1 2; do
  run nostream-$round nostream
  run stream0-kernels-$round stream0 TESSERA_STREAM_COPIES=dispatch
  run stream0-transfers-$round stream0
  run stream32-transfers-$round stream32
  run stream32-kernels-$round stream32 TESSERA_STREAM_COPIES=dispatch
done
