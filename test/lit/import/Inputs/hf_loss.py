#!/usr/bin/python3
"""Loss of an imported Hugging Face fixture against transformers' reference.

    hf_loss.py IR.mlir FIXTURE_DIR --batch B --seq T [--tol 1e-4]

Evaluates the printed @forward with numpy (tessera_eval.py; params read from
FIXTURE_DIR/model.onnx and its external data by name) on the first B rows of
reference.json's ids cut to T tokens, computes the next-token cross-entropy
(labels = ids, shifted) and compares it with reference.json's losses[T]
(transformers, float64). Prints OK and the numbers; exit 1 on mismatch.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tessera_eval  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ir")
    ap.add_argument("fixture")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    m = onnx.load(os.path.join(a.fixture, "model.onnx"))
    weights = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    with open(os.path.join(a.fixture, "reference.json")) as f:
        ref = json.load(f)
    ids = np.array(ref["ids"], dtype=np.int64)[: a.batch, : a.seq]
    with open(a.ir) as f:
        logits = tessera_eval.evaluate(f.read(), weights, ids).astype(np.float64)[:, :-1]
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    loss = -np.take_along_axis(logp, ids[:, 1:, None], -1).mean()
    want = ref["losses"][str(a.seq)]
    rel = abs(loss - want) / abs(want)
    print(f"{'OK' if rel < a.tol else 'MISMATCH'}: loss {loss:.7f} transformers {want:.7f} rel {rel:.1e}")
    return 0 if rel < a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
