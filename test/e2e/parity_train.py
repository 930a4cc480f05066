#!/usr/bin/python3
"""e2e parity: 20 steps of `tessera train` follow the PyTorch AdamW reference.

Both start from the same random nonzero adapter (all-linear, rank 4, alpha 8)
and see the same batches (B consecutive lines, cycling in file order). Each
step's loss must agree to 1e-3 absolute, and the trained adapters' changes
(final - initial) to 1e-2 in norm-relative error per tensor.

    parity_train.py --tessera build/bin/tessera [--steps 20] [--keep]
"""
import json
import os
import sys


import common
from common import TempDirTest, reference, rel_norm_err, safetensors_io, tessera

BATCH, SEQ, RANK, ALPHA, LR = 4, 32, 4, 8.0, 2e-3
STEPS = 20
LOSS_TOL = 1e-3
DELTA_TOL = 1e-2


class TrainParity(TempDirTest):
    def test_train_parity(self):
        data = common.make_data(self.path("data.jsonl"), SEQ)
        plan = self.compile(self.path("p.tplan"), "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                            "--lora-alpha", ALPHA, "--lora-targets", "all-linear")
        init = self.path("init")
        reference("random-adapter", "--model", self.model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 21, "--out", init)
        out, metrics = self.path("tessera_out"), self.path("metrics.jsonl")
        tessera("train", plan, "--weights", self.model, "--data", data, "--steps", STEPS, "--lr", LR,
                "--init-adapter", init, "--out", out, "--metrics", metrics)
        ref_out = self.path("ref_out")
        want = reference("train", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ,
                         "--adapter", init, "--scale", ALPHA / RANK, "--steps", STEPS, "--lr", LR,
                         "--out", ref_out)
        with open(metrics) as f:
            got = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(len(got), STEPS)
        self.assertEqual(len(want), STEPS)
        report, bad = [], []
        for g, w in zip(got, want):
            self.assertEqual(g["step"], w["step"])
            d = abs(g["loss"] - w["loss"])
            report.append(f"step {g['step']:3d}: tessera {g['loss']:.6f} reference {w['loss']:.6f} |d| {d:.2e}")
            if not d <= LOSS_TOL:
                bad.append(report[-1])
        print("\n".join(report), file=sys.stderr)
        self.assertFalse(bad, "per-step losses differ by more than %g:\n%s" % (LOSS_TOL, "\n".join(bad)))
        # The loss moved, so the comparison covers the optimizer, not just the forward pass.
        self.assertGreater(want[0]["loss"] - min(w["loss"] for w in want), 0.05)

        t0, _ = safetensors_io.load(os.path.join(init, "adapter_model.safetensors"))
        tg, _ = safetensors_io.load(os.path.join(out, "adapter_model.safetensors"))
        tw, _ = safetensors_io.load(os.path.join(ref_out, "adapter_model.safetensors"))
        self.assertEqual(sorted(tg), sorted(t0))
        errs = {k: rel_norm_err(tg[k] - t0[k], tw[k] - t0[k]) for k in t0}
        worst = sorted(errs.items(), key=lambda kv: -kv[1])[:5]
        print("largest adapter-update errors: " + ", ".join(f"{k}: {v:.2e}" for k, v in worst), file=sys.stderr)
        self.assertLess(worst[0][1], DELTA_TOL, f"adapter updates differ: {worst}")


if __name__ == "__main__":
    # --steps N overrides STEPS.
    if "--steps" in sys.argv:
        i = sys.argv.index("--steps")
        STEPS = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    common.main()
