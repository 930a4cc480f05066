#!/usr/bin/python3
"""e2e (a): `tessera eval` equals the PyTorch float64 reference loss (1e-4 relative).

Without an adapter, with a zero-B adapter, with a random nonzero adapter
(--init-adapter), for all-linear and q_proj,v_proj plans, with embedded and
external-data weights. Batch 2, seq 32, rank 4, alpha 8 (scale 2).
"""
import os

import common
from common import TempDirTest, parse_eval, reference, tessera

BATCH, SEQ, RANK, ALPHA = 2, 32, 4, 8.0
SCALE = ALPHA / RANK
TOL = 1e-4


class EvalParity(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A small slice of the bundled data, 5 batches; includes prompt-masked lines and an odd count
        # so the last eval batch is padded.
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), SEQ, max_lines=7)
        cls.plan_all = os.path.join(cls.dir, "all.tplan")
        tessera("compile", cls.model, "-o", cls.plan_all, "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                "--lora-alpha", ALPHA, "--lora-targets", "all-linear")
        cls.ref_base = reference("loss", "--model", cls.model, "--data", cls.data, "--batch", BATCH,
                                 "--seq", SEQ)[0]

    def check(self, got, want, what):
        loss, tokens = got
        self.assertEqual(tokens, want["tokens"], f"{what}: counted tokens")
        rel = abs(loss - want["loss"]) / abs(want["loss"])
        self.assertLess(rel, TOL, f"{what}: tessera {loss} vs reference {want['loss']} (rel {rel:.2e})")

    def eval(self, plan, *extra, weights=None):
        return parse_eval(tessera("eval", plan, "--weights", weights or self.model, "--data", self.data, *extra))

    def random_adapter(self, name, targets, seed, zero_b=False):
        out = os.path.join(self.dir, name)
        reference("random-adapter", "--model", self.model, "--rank", RANK, "--alpha", ALPHA, "--targets", targets,
                  "--seed", seed, "--out", out)
        if zero_b:
            path = os.path.join(out, "adapter_model.safetensors")
            t, meta = common.safetensors_io.load(path)
            for k in t:
                if ".lora_B." in k:
                    t[k][:] = 0
            common.safetensors_io.save(path, t, meta)
        return out

    def test_base_model(self):
        self.assertTrue(5.0 < self.ref_base["loss"] < 6.2)
        self.check(self.eval(self.plan_all), self.ref_base, "no adapter")

    def test_external_data_weights(self):
        ext = common.make_model(os.path.join(self.dir, "ext", "tiny-llama.onnx"), "--external-data")
        self.check(self.eval(self.plan_all, weights=ext), self.ref_base, "external-data weights")

    def test_zero_b_adapter(self):
        ad = self.random_adapter("zero_b", "all-linear", 5, zero_b=True)
        self.check(self.eval(self.plan_all, "--init-adapter", ad), self.ref_base, "zero-B adapter")

    def test_random_adapter_all_linear(self):
        ad = self.random_adapter("rand_all", "all-linear", 1)
        want = reference("loss", "--model", self.model, "--data", self.data, "--batch", BATCH, "--seq", SEQ,
                         "--adapter", ad, "--scale", SCALE)[0]
        # The adapter must matter, or this test would not test LoRA.
        self.assertGreater(abs(want["loss"] - self.ref_base["loss"]), 1e-3)
        self.check(self.eval(self.plan_all, "--init-adapter", ad), want, "random all-linear adapter")

    def test_random_adapter_q_v(self):
        plan = os.path.join(self.dir, "qv.tplan")
        tessera("compile", self.model, "-o", plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                "--lora-alpha", ALPHA, "--lora-targets", "q_proj,v_proj")
        ad = self.random_adapter("rand_qv", "q_proj,v_proj", 2)
        want = reference("loss", "--model", self.model, "--data", self.data, "--batch", BATCH, "--seq", SEQ,
                         "--adapter", ad, "--scale", SCALE)[0]
        self.assertGreater(abs(want["loss"] - self.ref_base["loss"]), 1e-4)
        self.check(self.eval(plan, "--init-adapter", ad), want, "random q_proj,v_proj adapter")
        self.check(self.eval(plan), self.ref_base, "q_proj,v_proj plan, no adapter")


if __name__ == "__main__":
    common.main()
