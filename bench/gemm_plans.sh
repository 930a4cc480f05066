#!/usr/bin/env bash
# Compiles the GEMM benchmark plans for bench/gemm_h200.sh: every training GEMM of the Qwen3-0.6B shape in
# bf16 storage, with nvidia.json's SIMT variants alone and with each cooperative-matrix config of a small sweep
# (one plan per config: tile_m x tile_n x tile_k / subgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
G=build/gemm
rm -rf $G && mkdir -p $G
/usr/bin/python3 bench/gemm_bench.py mlir --shape qwen06b --dtype bf16 --out $G/qwen06b-bf16.mlir
/usr/bin/python3 - <<'PY'
import json
p = json.load(open("autotune/profiles/nvidia.json"))
simt = [v for v in p["matmul"]["variants"] if v["kind"] != "coopmat"]
json.dump(dict(p, name="simt", matmul={"variants": simt}), open("build/gemm/simt.json", "w"), indent=1)
# tile_m, tile_n, tile_k, subgroups_m, subgroups_n
for tm, tn, tk, sm, sn in [(128, 128, 32, 2, 2), (128, 128, 32, 2, 4), (128, 128, 32, 4, 2), (128, 128, 16, 2, 2),
                           (64, 128, 32, 2, 2), (128, 64, 32, 2, 2), (64, 64, 32, 2, 2), (64, 64, 64, 2, 2),
                           (128, 256, 16, 2, 4), (256, 128, 16, 4, 2), (64, 256, 16, 1, 4)]:
    v = dict(name=f"tc{tm}x{tn}x{tk}s{sm}x{sn}", kind="coopmat", precision="bf16", tile_m=tm, tile_n=tn, tile_k=tk,
             mma_m=16, mma_n=16, mma_k=16, subgroups_m=sm, subgroups_n=sn, vector_width=8)
    keep = [w for w in simt if w["name"] in ("vocab_k",)]
    rest = [w for w in simt if w["name"] not in ("vocab_k",)]
    json.dump(dict(p, name=v["name"], matmul={"variants": keep + [v] + rest}),
              open(f"build/gemm/{v['name']}.json", "w"), indent=1)
PY
for P in $G/*.json; do
  n=$(basename $P .json)
  $B/tessera-opt $G/qwen06b-bf16.mlir --tessera-select-kernel-configs=profile=$P \
    --tessera-lower-to-kernels --tessera-kernels-to-spirv -o $G/$n.mlir
  $B/tessera-translate --mlir-to-plan $G/$n.mlir -o $G/qwen06b-bf16-$n.tplan
  rm $G/$n.mlir
done
ls $G/*.tplan | wc -l
