#!/usr/bin/python3
"""Reads a safetensors file independently of the runtime (json header +
numpy) and prints {"__metadata__": ..., name: {"dtype", "shape", "values"}} as JSON.
Checks the layout rules on the way: u64 little-endian header length, header
padded to 8 bytes, data_offsets contiguous and covering the data exactly."""
import json
import struct
import sys

import numpy as np

data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n].decode("utf-8"))
body = data[8 + n:]
assert n % 8 == 0, "header length not a multiple of 8"
out = {"__metadata__": header.pop("__metadata__", None)}
spans = []
for name, e in header.items():
    dt = {"F32": np.float32, "F16": np.float16, "BF16": None}[e["dtype"]]
    b, end = e["data_offsets"]
    spans.append((b, end))
    arr = np.frombuffer(body[b:end], dtype=dt).reshape(e["shape"])
    out[name] = {"dtype": e["dtype"], "shape": list(arr.shape), "values": arr.astype(np.float64).flatten().tolist()}
spans.sort()
pos = 0
for b, end in spans:
    assert b == pos, "data_offsets are not contiguous"
    pos = end
assert pos == len(body), "data section has trailing bytes"
print(json.dumps(out))
