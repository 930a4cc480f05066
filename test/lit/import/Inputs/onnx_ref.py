#!/usr/bin/python3
"""Reference logits of an ONNX model for random token ids, computed by the
repository's independent numpy ONNX interpreter (test/reference/onnx_numpy_eval.py).

    onnx_ref.py MODEL.onnx OUT.npz --batch B --seq T [--seed S]

Writes OUT.npz with `ids` [B, T] and `logits` [B, T, V].
"""
import argparse
import os
import sys

import numpy as np
import onnx

sys.dont_write_bytecode = True  # do not write __pycache__ into test/reference
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "reference"))
import onnx_numpy_eval  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model = onnx.load(a.model)
    vocab = model.graph.output[0].type.tensor_type.shape.dim[2].dim_value
    ids = np.random.default_rng(a.seed).integers(0, vocab, size=(a.batch, a.seq), dtype=np.int64)
    out = onnx_numpy_eval.run(model, {model.graph.input[0].name: ids})
    np.savez(a.out, ids=ids, logits=list(out.values())[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
