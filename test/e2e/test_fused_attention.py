"""e2e: fused attention (tessera-fuse-attention, the default) against the
decomposition (`tessera compile --no-fused-attention`).

The fused kernels compute the same function in another summation order, so
on fp32 plans the per-step losses and gradient norms of a short training run
and the eval losses of the trained adapter agree within fp32 rounding
(relative 1e-5 here; measured about 1e-7), on the Llama,
Qwen 3 (GQA) and Gemma 3 (sliding window through the mask, GQA) fixtures,
on lavapipe. The fused plan must hold no buffer of [B, H, T, T] attention
probabilities (the decomposed one does) and run its attention as
flash_attention kernels.

Runs about a minute on 2 cores.
"""
import json
import os

import common
from common import plan_manifest, tessera

HF = os.path.join(common.ROOT, "test", "fixtures", "hf")
LAVAPIPE = os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")
BATCH, SEQ, STEPS = 2, 32, 3
REL = 1e-5


def metrics_of(path):
    with open(path) as f:
        return [(r["loss"], r["grad_norm"]) for r in map(json.loads, filter(str.strip, f))]


def score_buffers(plan):
    """Activation buffers of [B, H, T, T] scores or probabilities (heads > 1;
    the causal mask is a [1, 1, T, T] constant)."""
    m = plan_manifest(plan)
    return [b["name"] for b in m["buffers"]
            if b["kind"] != "constant" and len(b["shape"]) == 4 and b["shape"][1] > 1
            and b["shape"][2:] == [SEQ, SEQ]]


def kernel_names(plan):
    m = plan_manifest(plan)
    names = [k["name"] for k in m["kernels"]]
    return {names[d["kernel"]] for p in m["programs"] for d in p["dispatches"]}


class FusedAttention(common.TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data = os.path.join(HF, "peft-qwen3", "data.jsonl")

    def run_plan(self, tag, model, *flags):
        plan = self.path(f"{tag}.tplan")
        tessera("compile", model, "-o", plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", 4, "--lora-alpha", 8,
                "--lora-targets", "all-linear", "--profile", LAVAPIPE, "--precision", "fp32", *flags)
        out, metrics, evals = self.path(f"out-{tag}"), self.path(f"{tag}.jsonl"), self.path(f"eval-{tag}.jsonl")
        tessera("train", plan, "--weights", model, "--data", self.data, "--steps", STEPS, "--lr", 5e-3, "--seed", 3,
                "--out", out, "--metrics", metrics)
        tessera("eval", plan, "--weights", model, "--data", self.data, "--init-adapter", out, "--losses", evals)
        with open(evals) as f:
            eval_losses = [json.loads(l)["loss"] for l in f if l.strip()]
        return plan, metrics_of(metrics), eval_losses

    def check(self, name):
        model = os.path.join(HF, f"{name}-dynamic", "model.onnx")
        plan, fused, evals = self.run_plan(name, model)
        plan_d, decomposed, evals_d = self.run_plan(name + "-decomposed", model, "--no-fused-attention")
        self.assertEqual(len(fused), STEPS)
        for (l, g), (ld, gd) in zip(fused, decomposed):
            self.assertAlmostEqual(l, ld, delta=REL * abs(ld), msg=f"{name}: loss fused {l} vs decomposed {ld}")
            self.assertAlmostEqual(g, gd, delta=REL * abs(gd), msg=f"{name}: grad norm fused {g} vs decomposed {gd}")
        self.assertEqual(len(evals), len(evals_d))
        for e, ed in zip(evals, evals_d):
            self.assertAlmostEqual(e, ed, delta=REL * abs(ed), msg=f"{name}: eval loss")
        self.assertEqual(len(set(fused)), STEPS, f"{name}: every step must train (differ): {fused}")
        self.assertEqual(score_buffers(plan), [], f"{name}: the fused plan holds [.., T, T] buffers")
        self.assertNotEqual(score_buffers(plan_d), [], f"{name}: the decomposed plan should hold the probabilities")
        kernels = kernel_names(plan)
        for k in ("flash_attention", "flash_attention_dq", "flash_attention_dkv"):
            self.assertTrue(any(n.startswith(k + "_") or n == k for n in kernels), f"{name}: no {k} kernel: {kernels}")
        self.assertFalse(any(n.startswith("flash") for n in kernel_names(plan_d)))
        print(f"{name}: losses fused {[l for l, _ in fused]} decomposed {[l for l, _ in decomposed]}")

    def test_the_profile_chooses_the_default(self):
        # nvidia.json says fused_attention: true (its tensor-core kernels skip the blocks outside a causal mask and
        # beat the decomposed products on the H200, docs/benchmarks.md); a profile saying false decomposes, so
        # does --no-fused-attention, and a budget still fits the decomposed plan's choices (fused attention among them).
        model = os.path.join(HF, "qwen3-dynamic", "model.onnx")
        def compile_(tag, *flags):
            plan = self.path(f"prof-{tag}.tplan")
            r = tessera("compile", model, "-o", plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", 4,
                        "--lora-targets", "all-linear", *flags)
            fused = any(k.startswith("flash_attention") for k in kernel_names(plan))
            return plan, fused, r
        _, fused, _ = compile_("nv", "--profile", "nvidia")
        self.assertTrue(fused)
        with open(os.path.join(common.ROOT, "autotune", "profiles", "nvidia.json")) as f:
            decomposing = dict(json.load(f), name="nvidia-decomposing", fused_attention=False)
        decomposing_path = self.path("nvidia-decomposing.json")
        with open(decomposing_path, "w") as f:
            json.dump(decomposing, f)
        _, fused, _ = compile_("nv-profile-dec", "--profile", decomposing_path)
        self.assertFalse(fused)
        _, fused, _ = compile_("nv-dec", "--profile", "nvidia", "--no-fused-attention")
        self.assertFalse(fused)
        plan, fused, _ = compile_("lp", "--profile", LAVAPIPE)
        self.assertTrue(fused)
        self.assertEqual(score_buffers(plan), [])
        # The fused plan's peak (nvidia) as the budget: the decomposed choices are all over it.
        fused_peak = plan_manifest(self.path("prof-nv.tplan"))["memory"]["total_bytes"]
        free_peak = plan_manifest(self.path("prof-nv-dec.tplan"))["memory"]["total_bytes"]
        self.assertLess(fused_peak, free_peak)
        _, fused, r = compile_("nv-budget", "--profile", "nvidia", "--no-fused-attention",
                               "--memory-budget", str(fused_peak))
        self.assertIn("memory budget", r.stdout)
        self.assertLessEqual(plan_manifest(self.path("prof-nv-budget.tplan"))["memory"]["total_bytes"], fused_peak)

    def test_llama(self):
        self.check("llama")

    def test_qwen3(self):
        self.check("qwen3")

    def test_gemma3(self):
        self.check("gemma3")


if __name__ == "__main__":
    common.main()
