#!/usr/bin/env python3
"""Compares a tessera training run with a PEFT run: per-step loss, final adapter, optional plot.

    parity_compare.py --peft DIR --tessera-metrics M.jsonl [--tessera-adapter DIR] [--png F] [--json F]

DIR holds PEFT's run.json and final/adapter_model.safetensors (test/fixtures/hf/export_hf.py);
M.jsonl is `tessera train --metrics` output (one object per step with "step" and "loss").
"""
import argparse
import json
import os
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(blob[a:b], dtype=np.float32).reshape(v["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peft", required=True)
    ap.add_argument("--tessera-metrics", required=True)
    ap.add_argument("--tessera-adapter")
    ap.add_argument("--png")
    ap.add_argument("--json")
    a = ap.parse_args()
    run = json.load(open(os.path.join(a.peft, "run.json")))
    steps = [json.loads(l) for l in open(a.tessera_metrics) if l.strip()]
    ours = np.array([s["loss"] for s in steps])
    theirs = np.array(run["losses"][:len(ours)])
    diff = np.abs(ours - theirs)
    res = {"steps": len(ours), "max_abs_loss_diff": float(diff.max()), "first": [float(theirs[0]), float(ours[0])],
           "last": [float(theirs[-1]), float(ours[-1])],
           "peft_tokens_per_s": None, "peft_peak_gpu_bytes": run.get("peak_gpu_bytes")}
    hp = run["hparams"]
    if run.get("step_seconds"):
        t = np.array(run["step_seconds"][5:])
        res["peft_tokens_per_s"] = float(hp["micro_batch"] * hp["accumulation"] * hp["seq"] / t.mean())
    tok = [s.get("tokens_per_s") or s.get("tok_per_s") for s in steps[5:]]
    if tok and tok[0] is not None:
        res["tessera_tokens_per_s"] = float(np.mean(tok))
    if a.tessera_adapter:
        want = read_safetensors(os.path.join(a.peft, "final", "adapter_model.safetensors"))
        got = read_safetensors(os.path.join(a.tessera_adapter, "adapter_model.safetensors"))
        res["adapter_names_equal"] = sorted(want) == sorted(got)
        rel = [float(np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-12)) for k in want if k in got]
        res["adapter_max_rel_diff"] = max(rel) if rel else None
    print(json.dumps(res, indent=1))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        x = np.arange(len(ours))
        ax[0].plot(x, theirs, label=f"PyTorch {run['torch']} + PEFT {run['peft']} (CUDA, fp32)", lw=1.5)
        ax[0].plot(x, ours, "--", label="Tessera (Vulkan, fp32)", lw=1.2)
        ax[0].set_ylabel("training loss")
        ax[0].legend()
        ax[1].plot(x, ours - theirs, lw=1)
        ax[1].set_ylabel("tessera - PEFT")
        ax[1].set_xlabel("optimizer step")
        fig.suptitle("Qwen3-0.6B-shaped random model, LoRA r=16 all-linear, batch 4 x 256")
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
