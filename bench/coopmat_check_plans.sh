#!/usr/bin/env bash
# Plans for bench/coopmat_check_h200.sh: the bundled tiny model (and the Qwen 3 / Gemma 3 fixtures) compiled in
# fp32, in bf16 with SIMT matmuls only, and in bf16 / f16 with cooperative matrices on every product that
# admits them (a test profile: nvidia.json with its coopmat variants first and no minimum tile count), so that
# on the GPU the tensor-core kernels run in every form a training step needs (x W^T, dY W, batched attention,
# tiles with edges) and their losses can be compared with the SIMT plans'.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
D=build/coopmat-check
mkdir -p $D
/usr/bin/python3 scripts/make_tiny_model.py --out $D/tiny-llama.onnx >/dev/null
/usr/bin/python3 scripts/make_data.py --out $D/data.jsonl --seq 64 >/dev/null
/usr/bin/python3 - <<'PY'
import json
p = json.load(open("autotune/profiles/nvidia.json"))
tc = [v for v in p["matmul"]["variants"] if v["kind"] == "coopmat"]
rest = [v for v in p["matmul"]["variants"] if v["kind"] != "coopmat"]
for v in tc:
    v.pop("min_tiles", None)
    v.update(tile_m=64, tile_n=64, tile_k=32, subgroups_m=2, subgroups_n=2)
allp = dict(p, name="nvidia-coopmat-all", matmul={"variants": tc + rest})
json.dump(allp, open("build/coopmat-check/nvidia-coopmat-all.json", "w"), indent=1)
simt = dict(p, name="nvidia-simt", matmul={"variants": rest})
json.dump(simt, open("build/coopmat-check/nvidia-simt.json", "w"), indent=1)
PY
for m in tiny:$D/tiny-llama.onnx qwen3:test/fixtures/hf/qwen3-dynamic/model.onnx gemma3:test/fixtures/hf/gemma3-dynamic/model.onnx; do
  name=${m%%:*}; model=${m#*:}
  for v in fp32:nvidia-simt bf16:nvidia-simt bf16:nvidia-coopmat-all f16:nvidia-coopmat-all; do
    prec=${v%%:*}; prof=${v#*:}
    $B/tessera compile $model -o $D/$name-$prec-$prof.tplan --batch 4 --seq 64 --lora-rank 8 --lora-targets all-linear \
      --precision $prec --profile $D/$prof.json > $D/$name-$prec-$prof.log
    echo "$name $prec $prof: $(grep -o '[0-9]* kernels' $D/$name-$prec-$prof.log), coopmat kernels: $(/usr/bin/python3 -c "
import json,struct,sys
d=open('$D/$name-$prec-$prof.tplan','rb').read(); n=struct.unpack('<Q',d[16:24])[0]; m=json.loads(d[32:32+n])
print(sum(k['name'].startswith('matmul_coopmat') for k in m['kernels']))")"
  done
done
