#!/usr/bin/env bash
# Issue 14's lavapipe table (docs/benchmarks.md): the bundled model (128 wide: TQ2_0's 256-value blocks fit none of
# its layers) and its 256-wide variant (scripts/make_tiny_model.py --hidden 256 --intermediate 512) at batch 4 x 64,
# LoRA r8 on all linear layers, fp32 against frozen bases in q8_0, q4_0, tq2_0: frozen-weight memory by type, the
# plan's peak memory and tokens/s (median wall time of steps 4-10) on this machine's first device.
#   bash bench/quant_lavapipe.sh   (needs build/bin/tessera)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/tessera-quant-bench}
rm -rf $W && mkdir -p $W
/usr/bin/python3 scripts/make_tiny_model.py --out $W/tiny > /dev/null
/usr/bin/python3 scripts/make_tiny_model.py --out $W/wide --hidden 256 --intermediate 512 > /dev/null
/usr/bin/python3 scripts/make_data.py --out $W/data.jsonl --seq 64 > /dev/null 2>&1 || \
  /usr/bin/python3 - $W/data.jsonl <<'PY'
import json, random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        f.write(json.dumps({"input_ids": [r.randrange(256) for _ in range(64)]}) + "\n")
PY
for m in tiny wide; do
  for t in fp32 q8_0 q4_0 tq2_0; do
    extra=""; [ $t = fp32 ] || extra="--base-dtype $t"
    build/bin/tessera compile $W/$m/tiny-llama.onnx -o $W/$m-$t.tplan --batch 4 --seq 64 --lora-rank 8 \
      --lora-targets all-linear --profile lavapipe $extra > $W/$m-$t.log 2>&1
    build/bin/tessera train $W/$m-$t.tplan --weights $W/$m/tiny-llama.onnx --data $W/data.jsonl --steps 10 \
      --out $W/ad-$m-$t --metrics $W/$m-$t.jsonl > /dev/null 2>&1
    /usr/bin/python3 - $m $t $W/$m-$t.log $W/$m-$t.jsonl <<'PY'
import json, re, sys
m, t, log, metrics = sys.argv[1:]
text = open(log).read()
weights = re.search(r"frozen weights +([0-9.]+ MiB)(?:  \((.*)\))?", text)
peak = re.search(r"peak device memory ([0-9.]+ MiB)", text).group(1)
steps = [json.loads(l) for l in open(metrics)]
wall = sorted(s["wall_ms"] for s in steps[3:])[len(steps[3:]) // 2]
print(f"| {m} | {t} | {weights.group(1)} ({weights.group(2)}) | {peak} | {4 * 64 / (wall / 1000):,.0f} |")
PY
  done
done
