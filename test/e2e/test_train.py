#!/usr/bin/python3
"""e2e (c): 50 steps of `tessera train` on the bundled data learn something.

The loss falls (mean of the last 5 steps clearly below the first 5), the
--metrics file has one well-formed JSON object per step, and --out holds a PEFT
adapter (adapter_model.safetensors with base_model.model.model.* names and the
plan's shapes, adapter_config.json with r / lora_alpha / target_modules) that
the PyTorch reference can load and that lowers the reference eval loss.
"""
import json
import math
import os

import numpy as np

import common
from common import TempDirTest, parse_eval, reference, safetensors_io, tessera

BATCH, SEQ, RANK, ALPHA, STEPS, LR = 4, 32, 8, 16.0, 50, 2e-3


class Train(TempDirTest):
    def test_dispatch_profile(self):
        # --dispatch-profile: one TSV row per train_step dispatch, in program
        # order with the plan's kernel names, the family totals adding up to
        # the rows; a run too short to time says so and writes nothing.
        import planfile
        data = common.make_data(self.path("data.jsonl"), SEQ)
        plan = self.compile(self.path("dp.tplan"), "--batch", 2, "--seq", 16, "--lora-rank", 4)
        prof = self.path("dispatch.tsv")
        tessera("train", plan, "--weights", self.model, "--data", data, "--steps", 4, "--out", self.path("ad"),
                "--dispatch-profile", prof)
        pf = planfile.PlanFile(plan)
        kernels = [pf.manifest["kernels"][d["kernel"]]["name"] for d in pf.program("train_step")["dispatches"]]
        with open(prof) as f:
            lines = f.read().splitlines()
        self.assertIn("median of 2 runs", lines[0])
        rows = [l.split("\t") for l in lines if not l.startswith("#")]
        self.assertEqual([r[1] for r in rows], kernels)
        self.assertEqual([int(r[0]) for r in rows], list(range(len(kernels))))
        self.assertTrue(all(float(r[4]) >= 0 for r in rows))
        total = sum(float(r[4]) for r in rows) / 1000.0
        families = [l.split("\t") for l in lines if l.startswith("# family")]
        self.assertAlmostEqual(sum(float(f[3].split()[0]) for f in families), total, delta=0.01 * total + 0.01)
        short = tessera("train", plan, "--weights", self.model, "--data", data, "--steps", 2, "--out",
                        self.path("ad2"), "--dispatch-profile", self.path("none.tsv"))
        self.assertIn("no dispatch profile written", short.stderr)
        self.assertFalse(os.path.exists(self.path("none.tsv")))

    def test_train_50_steps(self):
        data = common.make_data(self.path("data.jsonl"), SEQ)
        plan = self.compile(self.path("p.tplan"), "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                            "--lora-alpha", ALPHA, "--lora-targets", "all-linear")
        out, metrics = self.path("adapter"), self.path("metrics.jsonl")
        tessera("train", plan, "--weights", self.model, "--data", data, "--steps", STEPS, "--lr", LR,
                "--out", out, "--metrics", metrics)

        # Metrics: one JSON object per step, in order, finite loss, positive throughput.
        with open(metrics) as f:
            rows = [json.loads(l) for l in f if l.strip()]
        self.assertEqual([r["step"] for r in rows], list(range(1, STEPS + 1)))
        losses = [r["loss"] for r in rows]
        for r in rows:
            self.assertTrue(math.isfinite(r["loss"]) and 0 < r["loss"] < 20, r)
            self.assertTrue(math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0, r)
        first, last = np.mean(losses[:5]), np.mean(losses[-5:])
        self.assertLess(last, first - 0.2, f"loss did not fall: first-5 mean {first:.4f}, last-5 mean {last:.4f}")
        # Step 1 with B = 0 is the base model's loss on the first batch.
        want1 = reference("loss", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ,
                          "--first-batch")[0]["loss"]
        self.assertLess(abs(losses[0] - want1) / want1, 1e-4, f"step 1 loss {losses[0]} vs reference {want1}")

        # The adapter: PEFT names, plan shapes, config.
        t, _ = safetensors_io.load(os.path.join(out, "adapter_model.safetensors"))
        shapes = common.ref.module_shapes(common.ref.load_config(self.model))
        self.assertEqual(len(t), 2 * len(shapes))
        for m, (o, i) in shapes.items():
            a = t[f"base_model.model.model.{m}.lora_A.weight"]
            b = t[f"base_model.model.model.{m}.lora_B.weight"]
            self.assertEqual((a.shape, b.shape), ((RANK, i), (o, RANK)), m)
            self.assertEqual((a.dtype, b.dtype), (np.float32, np.float32), m)
            self.assertTrue(np.all(np.isfinite(a)) and np.all(np.isfinite(b)), m)
            self.assertGreater(np.abs(b).max(), 0, f"{m}: lora_B was not trained")
        with open(os.path.join(out, "adapter_config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["peft_type"], "LORA")
        self.assertEqual(cfg["r"], RANK)
        self.assertEqual(float(cfg["lora_alpha"]), ALPHA)
        self.assertEqual(sorted(cfg["target_modules"]),
                         sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))

        # The reference agrees that the trained adapter is better than none, and so does tessera eval.
        base = reference("loss", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ)[0]
        tuned = reference("loss", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ,
                          "--adapter", out)[0]
        self.assertLess(tuned["loss"], base["loss"] - 0.2)
        got, tokens = parse_eval(tessera("eval", plan, "--weights", self.model, "--data", data,
                                         "--init-adapter", out))
        self.assertEqual(tokens, tuned["tokens"])
        self.assertLess(abs(got - tuned["loss"]) / tuned["loss"], 1e-4)


if __name__ == "__main__":
    common.main()
