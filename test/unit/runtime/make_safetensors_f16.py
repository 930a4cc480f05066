#!/usr/bin/python3
"""Writes a PEFT-style adapter directory with F16 tensors (and a config whose
lora_alpha differs) for the --init-adapter reader test: OUT_DIR, module, r, in, out."""
import json
import os
import struct
import sys

import numpy as np

out, module, r, fin, fout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
os.makedirs(out, exist_ok=True)
a = (np.arange(r * fin, dtype=np.float32).reshape(r, fin) * 0.25 - 1).astype(np.float16)
b = (np.arange(fout * r, dtype=np.float32).reshape(fout, r) * -0.5).astype(np.float16)
tensors = {f"base_model.model.model.{module}.lora_A.weight": a, f"base_model.model.model.{module}.lora_B.weight": b}
header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for name, t in tensors.items():
    raw = t.tobytes()
    header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
with open(os.path.join(out, "adapter_config.json"), "w") as f:
    json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 99}, f)
