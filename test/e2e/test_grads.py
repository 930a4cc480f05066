#!/usr/bin/python3
"""e2e (b): LoRA gradients of `tessera train --dump-grads` equal torch autograd.

A random nonzero adapter (so every lora_A gradient is nonzero) on all-linear
targets is loaded with --init-adapter; after one step the dump holds the values
before the update (`<module>.lora_A` / `.lora_B`) and the gradients
(`<module>.lora_A.grad` / `.lora_B.grad`). Each gradient tensor must match the
float64 reference to 1e-4 in norm-relative error ||g - g_ref|| / ||g_ref||.
"""
import os

import numpy as np

import common
from common import TempDirTest, reference, rel_norm_err, safetensors_io, tessera

BATCH, SEQ, RANK, ALPHA = 2, 32, 4, 8.0
SCALE = ALPHA / RANK
TOL = 1e-4


class GradParity(TempDirTest):
    def test_dump_grads_all_linear(self):
        data = common.make_data(self.path("data.jsonl"), SEQ, max_lines=8)
        plan = self.compile(self.path("p.tplan"), "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                            "--lora-alpha", ALPHA, "--lora-targets", "all-linear")
        ad = self.path("init")
        reference("random-adapter", "--model", self.model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 11, "--b-std", 0.05, "--out", ad)
        dump = self.path("grads.safetensors")
        tessera("train", plan, "--weights", self.model, "--data", data, "--steps", 1, "--lr", 1e-3,
                "--init-adapter", ad, "--dump-grads", dump, "--out", self.path("out"))
        want_path = self.path("ref_grads.safetensors")
        reference("grads", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ,
                  "--adapter", ad, "--scale", SCALE, "--out", want_path)

        got, _ = safetensors_io.load(dump)
        want, _ = safetensors_io.load(want_path)
        init, _ = safetensors_io.load(os.path.join(ad, "adapter_model.safetensors"))
        modules = sorted({k[:-len(".lora_A.grad")] for k in want if k.endswith(".lora_A.grad")})
        self.assertEqual(len(modules), 2 * 7)  # 2 layers x q,k,v,o,gate,up,down
        failures = []
        for m in modules:
            for f in ("A", "B"):
                peft = f"base_model.model.model.{m}.lora_{f}.weight"
                name = f"{m}.lora_{f}"
                self.assertIn(name, got, f"dump lacks {name}; it has {sorted(got)[:6]}...")
                self.assertIn(name + ".grad", got, f"dump lacks {name}.grad")
                # The values before the update are the initial adapter's.
                np.testing.assert_array_equal(got[name], init[peft], err_msg=name)
                g, w = got[name + ".grad"], want[name + ".grad"]
                self.assertEqual(g.shape, w.shape, name)
                self.assertGreater(np.linalg.norm(w), 0, f"reference gradient of {name} is zero")
                err = rel_norm_err(g, w)
                if not err < TOL:
                    failures.append(f"{name}.grad: rel err {err:.3e} (|g| {np.linalg.norm(g):.4e}, "
                                    f"|ref| {np.linalg.norm(w):.4e})")
        self.assertFalse(failures, "gradients differ from torch autograd:\n" + "\n".join(failures))


if __name__ == "__main__":
    common.main()
