#!/usr/bin/env bash
# Plans for bench/quant_h200.sh (issue 14's figures): the Qwen3-0.6B graph (bench/fetch_graphs.sh puts it into
# build/qwen06b) at batch 8 x 512 and 1 x 512, LoRA r16 alpha 16 on every linear layer, compiled with nvidia.json in
# bf16 and with the frozen linear weights in q8_0, q4_0 and tq2_0 (--precision bf16: every product, the quantised
# ones included, on the cooperative-matrix kernels, which dequantise the blocks while staging tiles;
# docs/quantization.md). Prints each plan's frozen-weight memory by type.
set -euo pipefail
cd "$(dirname "$0")/.."
D=build/qwen06b
[ -f $D/model.onnx ] || { echo "no $D/model.onnx: run bench/fetch_graphs.sh"; exit 1; }
mkdir -p $D/quant
for batch in ${BATCHES:-8 1}; do
  for t in ${TYPES:-bf16 q8_0 q4_0 tq2_0}; do
    name=b$batch-$t
    extra=""; [ $t = bf16 ] || extra="--base-dtype $t"
    build/bin/tessera compile $D/model.onnx -o $D/quant/$name.tplan --batch $batch --seq 512 --lora-rank 16 \
      --lora-alpha 16 --lora-targets all-linear --precision bf16 --profile nvidia --loss-chunk-tokens 512 $extra \
      > $D/quant/$name.log 2>&1 || { cat $D/quant/$name.log; exit 1; }
    echo "$name: $(grep 'frozen weights' $D/quant/$name.log | sed 's/^ *//'), $(du -h $D/quant/$name.tplan | cut -f1)"
  done
done
# One archive for the device call (the plans are mostly SPIR-V: it packs well under the carry limit).
mkdir -p build/h200
tar czf build/h200/quant.tgz $D/quant/*.tplan $D/graph.json
echo "build/h200/quant.tgz: $(du -h build/h200/quant.tgz | cut -f1)"
