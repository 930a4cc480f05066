# Sourced by the device scripts (qwen06b_speed_h200.sh, quant_h200.sh): exports the Qwen3-0.6B graph into $Q,
# stops unless it is the graph the plans were compiled from (build/qwen06b/graph.json), and writes 320 random
# 512-token rows to /tmp/data.jsonl.
# An earlier stage of the same call may have exported it already; otherwise start clean (a warm machine keeps
# /tmp, and the exporter would append to the old external data).
if ! cmp -s $Q/graph.json build/qwen06b/graph.json 2>/dev/null && ! [ -f $Q/.done ]; then
  rm -rf $Q
  timeout 200 python3 test/fixtures/hf/export_hf.py qwen06b --out $Q --graph-only 2>&1 | grep -v -i warn | tail -1
  touch $Q/.done
fi
python3 - $Q/graph.json build/qwen06b/graph.json <<'PY' || exit 1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["graph_sha256"] == b["graph_sha256"] and a["data_bytes"] == b["data_bytes"]
print("graph identical to the compiled one:", same)
sys.exit(0 if same else 1)
PY
python3 - <<'PY' > /tmp/data.jsonl
import json, random
r = random.Random(5)
for _ in range(8 * 40):
    print(json.dumps({"input_ids": [r.randrange(151936) for _ in range(512)]}))
PY
