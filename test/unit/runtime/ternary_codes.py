#!/usr/bin/python3
"""transformers' rule for BitNet b1.58 weights (WeightQuant of AutoBitLinear, online mode), as
transformers runs it in torch float32: s = 1 / w.abs().mean().clamp(min=1e-5),
codes = (w * s).round().clamp(-1, 1) (round half to even), for every *_proj.weight initializer
of MODEL. Writes OUT/<name>.bin: the codes as int8, then the scale 1 / s as one float32
(TernaryTest.cpp reads them). torch, not numpy, sums |w|: numpy's pairwise float32 mean of
layers.1.mlp.gate_proj is one ulp off torch's and flips one code."""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

model, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for t in onnx.load(model, load_external_data=True).graph.initializer:
    if not t.name.endswith("_proj.weight"):
        continue
    w = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
    s = 1.0 / w.abs().mean().clamp_(min=1e-5)
    codes = (w * s).round().clamp(-1, 1).to(torch.int8).numpy()
    with open(os.path.join(out, t.name + ".bin"), "wb") as f:
        f.write(codes.tobytes())
        f.write(np.float32((1.0 / s).item()).tobytes())
    print(t.name)
