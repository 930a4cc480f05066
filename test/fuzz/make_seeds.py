#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (test/fuzz/<name>/seeds/).

The seeds are committed; rerun this after a format change:

    /usr/bin/python3 test/fuzz/make_seeds.py --tessera build/bin/tessera

Seeds are small valid (and a few nearly valid) inputs of each reader: ONNX
models of the importer tests, data lines, adapters and checkpoints written
by tessera itself, the bundled device profiles, and plans compiled from a
one-layer model.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "reference"))
import safetensors_io  # noqa: E402

import numpy as np  # noqa: E402

GEN = os.path.join(ROOT, "test", "lit", "import", "Inputs", "gen_models.py")
ONNX_CASES = ["linear", "shapes", "rmsnorm", "ops", "opset18", "function", "constant_weight", "fixed_dims",
              "gathernd_nan_guard", "static_export", "erf", "ext_ok", "unsupported"]


def seeds(name):
    d = os.path.join(HERE, name, "seeds")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def run(*cmd):
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default=os.path.join(ROOT, "build", "bin", "tessera"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera-seeds-")
    try:
        # ONNX models: the importer and the runtime's weight reader.
        onnx_dirs = [seeds("onnx_import"), seeds("onnx_weights")]
        for case in ONNX_CASES:
            path = os.path.join(tmp, case + ".onnx")
            run(sys.executable, GEN, case, path)
            with open(path, "rb") as f:
                model = f.read()
            put(onnx_dirs[0], case, b"\x06" + model)  # first byte: batch 1, seq 5
            put(onnx_dirs[1], case, model)

        d = seeds("jsonl")
        put(d, "plain", "\x00" + '{"input_ids": [1, 2, 3, 4]}\n{"input_ids": [5, 6]}\n')
        put(d, "labels", "\x01" + '{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}\n\n{"input_ids": [7], "labels": null}\n')
        put(d, "bad", "\x02" + '{"input_ids": [1, 300]}\n')

        d = seeds("safetensors")
        rng = np.random.default_rng(0)
        put(d, "f32", safetensors_io.dumps({"a.lora_A.weight": rng.standard_normal((2, 4)).astype(np.float32),
                                            "a.lora_B.weight": np.zeros((4, 2), np.float32)}, {"format": "pt"}))
        put(d, "mixed", safetensors_io.dumps({"h": rng.standard_normal((3,)).astype(np.float16),
                                              "d": rng.standard_normal((2, 1)).astype(np.float64),
                                              "s": np.zeros((), np.float32)}))

        d = seeds("profile")
        for p in sorted(os.listdir(os.path.join(ROOT, "autotune", "profiles"))):
            shutil.copy(os.path.join(ROOT, "autotune", "profiles", p), os.path.join(d, p))

        # Plans and a checkpoint, written by tessera from a one-layer model.
        model = os.path.join(tmp, "linear.onnx")
        plan_dir, ck_dir = seeds("plan"), seeds("checkpoint")
        for name, extra in [("linear", []), ("linear-dropout", ["--lora-dropout", "0.1", "--rslora"])]:
            plan = os.path.join(tmp, name + ".tplan")
            run(a.tessera, "compile", model, "-o", plan, "--batch", 1, "--seq", 4, "--lora-rank", 2, *extra)
            shutil.copy(plan, os.path.join(plan_dir, name))
        data = os.path.join(tmp, "data.jsonl")
        with open(data, "w") as f:
            f.write('{"input_ids": [1, 2, 3, 4]}\n{"input_ids": [5, 6, 7]}\n')
        out = os.path.join(tmp, "out")
        run(a.tessera, "train", os.path.join(tmp, "linear.tplan"), "--weights", model, "--data", data,
            "--steps", 2, "--checkpoint-every", 1, "--out", out)
        ck = os.path.join(out, "checkpoint")
        with open(os.path.join(ck, "state.json"), "rb") as f:
            state = f.read()
        with open(os.path.join(ck, json.loads(state)["tensors"]), "rb") as f:
            tensors = f.read()
        for flag in (0, 1):
            put(ck_dir, f"checkpoint-{flag}", bytes([flag]) + struct.pack("<I", len(state)) + state + tensors)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
