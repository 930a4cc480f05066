#!/usr/bin/python3
"""e2e: the memory plan (docs/memory.md) keeps the numbers and lowers the peak.

* buffer reuse: a plan with shared activation storage computes the same loss and
  LoRA gradients as one without (--no-buffer-reuse), matches torch autograd, and
  its printed and manifest activation memory is smaller;
* chunked cross-entropy: on a model with a 4096-token vocabulary, a plan whose
  loss runs in chunks of 24 token rows (--loss-chunk-tokens) has no whole
  [tokens x vocab] buffer, and its eval loss and gradients equal the float64
  torch reference and the unchunked plan's;
* --recompute: the gradients equal those without recomputation and the
  printed activation memory is smaller.
Every kernel of the chunked plan passes spirv-val.
"""
import json
import os
import re

import numpy as np

import common
from common import TempDirTest, parse_eval, reference, rel_norm_err, safetensors_io, tessera

RANK, ALPHA = 4, 8.0
SCALE = ALPHA / RANK
ACT_RE = re.compile(r"^\s+activations\s+([0-9.]+) MiB", re.M)


manifest = common.plan_manifest


def printed_activations(result):
    m = ACT_RE.search(result.stdout)
    if not m:
        raise AssertionError("compile printed no activations line:\n" + result.describe())
    return float(m.group(1))


def root_bytes(m, kinds):
    return sum(b["bytes"] for b in m["buffers"] if b.get("alias_of", -1) < 0 and b["kind"] in kinds)


class MemoryPlan(TempDirTest):
    def compile_plan(self, name, model, batch, seq, *extra):
        path = self.path(name)
        r = tessera("compile", model, "-o", path, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                    "--lora-alpha", ALPHA, "--lora-targets", "all-linear", *extra)
        return path, r

    def grads_after_one_step(self, plan, model, data, adapter, tag):
        dump = self.path(f"grads-{tag}.safetensors")
        tessera("train", plan, "--weights", model, "--data", data, "--steps", 1, "--lr", 1e-3,
                "--init-adapter", adapter, "--dump-grads", dump, "--out", self.path(f"out-{tag}"))
        got, _ = safetensors_io.load(dump)
        return {k: v for k, v in got.items() if k.endswith(".grad")}

    def assert_grads_close(self, got, want, tol, what):
        self.assertEqual(sorted(got), sorted(want), what)
        failures = []
        for k in sorted(want):
            self.assertGreater(np.linalg.norm(want[k]), 0, f"{what}: {k} is zero")
            err = rel_norm_err(got[k], want[k])
            if not err <= tol:
                failures.append(f"{k}: rel err {err:.3e}")
        self.assertFalse(failures, f"{what}:\n" + "\n".join(failures))

    def random_adapter(self, model, name):
        ad = self.path(name)
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 5, "--b-std", 0.05, "--out", ad)
        return ad

    def test_buffer_reuse(self):
        batch, seq = 2, 32
        data = common.make_data(self.path("data.jsonl"), seq, max_lines=6)
        shared, rs = self.compile_plan("shared.tplan", self.model, batch, seq)
        unshared, ru = self.compile_plan("unshared.tplan", self.model, batch, seq, "--no-buffer-reuse")

        ms, mu = manifest(shared)["memory"], manifest(unshared)["memory"]
        for m, path in ((ms, shared), (mu, unshared)):
            man = manifest(path)
            self.assertEqual(m["total_bytes"], root_bytes(man, {"input", "weight", "constant", "lora", "optimizer_state",
                                                               "gradient", "activation", "output", "hparams"}))
            self.assertEqual(m["activations_bytes"], root_bytes(man, {"activation"}))
            self.assertEqual(m["weights_bytes"], root_bytes(man, {"weight"}))
        self.assertEqual(ms["activations_unshared_bytes"], mu["activations_bytes"])
        self.assertLessEqual(ms["activations_live_peak_bytes"], ms["activations_bytes"])
        self.assertLess(ms["activations_bytes"], mu["activations_bytes"] / 2)
        self.assertLess(printed_activations(rs), printed_activations(ru) / 2)

        # Same numbers with and without shared storage, and torch's.
        loss_s = parse_eval(tessera("eval", shared, "--weights", self.model, "--data", data))[0]
        loss_u = parse_eval(tessera("eval", unshared, "--weights", self.model, "--data", data))[0]
        self.assertEqual(loss_s, loss_u)
        ad = self.random_adapter(self.model, "adapter")
        gs = self.grads_after_one_step(shared, self.model, data, ad, "shared")
        gu = self.grads_after_one_step(unshared, self.model, data, ad, "unshared")
        self.assert_grads_close(gs, gu, 0.0, "shared vs unshared storage")
        want_path = self.path("ref.safetensors")
        reference("grads", "--model", self.model, "--data", data, "--batch", batch, "--seq", seq,
                  "--adapter", ad, "--scale", SCALE, "--out", want_path)
        want, _ = safetensors_io.load(want_path)
        self.assert_grads_close(gs, {k: v for k, v in want.items() if k.endswith(".grad")}, 1e-4,
                                "shared storage vs torch autograd")

    def test_chunked_cross_entropy(self):
        batch, seq, vocab = 2, 32, 4096
        model = common.make_model(self.path("v4k/tiny-llama.onnx"), "--vocab", vocab, "--seed", 3)
        rng = np.random.default_rng(7)
        data = self.path("v4k.jsonl")
        with open(data, "w") as f:
            for i in range(5):
                ids = rng.integers(0, vocab, size=seq).tolist()
                line = {"input_ids": ids}
                if i == 1:  # a prompt-masked line: ignore_index inside chunks
                    line["labels"] = [-100] * 11 + ids[11:]
                f.write(json.dumps(line) + "\n")
        spirv_dir = self.path("chunked-spirv")
        chunked, _ = self.compile_plan("chunked.tplan", model, batch, seq, "--loss-chunk-tokens", 24,
                                       "--emit-spirv", spirv_dir)
        kernels = sorted(os.listdir(spirv_dir))
        self.assertTrue(kernels)
        bad = []
        for k in kernels:
            r = common.run([common.ARGS.spirv_val, "--target-env", "vulkan1.1", os.path.join(spirv_dir, k)],
                           timeout=60)
            if r.rc != 0:
                bad.append(f"{k}: {r.stderr.strip()[:300]}")
        self.assertFalse(bad, "kernels of the chunked plan fail spirv-val:\n" + "\n".join(bad[:10]))
        whole, _ = self.compile_plan("whole.tplan", model, batch, seq)

        logits_bytes = batch * seq * vocab * 4
        def logits_sized(path):
            return [b["name"] for b in manifest(path)["buffers"]
                    if b["kind"] != "weight" and b["bytes"] >= logits_bytes]
        self.assertTrue(logits_sized(whole), "the unchunked plan should hold the whole logits")
        self.assertEqual(logits_sized(chunked), [], "the chunked plan holds a whole-logits buffer")

        loss_c = parse_eval(tessera("eval", chunked, "--weights", model, "--data", data))[0]
        loss_w = parse_eval(tessera("eval", whole, "--weights", model, "--data", data))[0]
        want = reference("loss", "--model", model, "--data", data, "--batch", batch, "--seq", seq)[-1]["loss"]
        self.assertAlmostEqual(loss_c, want, delta=1e-4 * abs(want))
        self.assertAlmostEqual(loss_c, loss_w, delta=1e-5 * abs(loss_w))

        ad = self.random_adapter(model, "adapter-v4k")
        gc = self.grads_after_one_step(chunked, model, data, ad, "chunked")
        gw = self.grads_after_one_step(whole, model, data, ad, "whole")
        self.assert_grads_close(gc, gw, 1e-5, "chunked vs whole cross-entropy")
        want_path = self.path("ref-v4k.safetensors")
        reference("grads", "--model", model, "--data", data, "--batch", batch, "--seq", seq,
                  "--adapter", ad, "--scale", SCALE, "--out", want_path)
        ref, _ = safetensors_io.load(want_path)
        self.assert_grads_close(gc, {k: v for k, v in ref.items() if k.endswith(".grad")}, 1e-4,
                                "chunked cross-entropy vs torch autograd")

    def test_recompute(self):
        batch, seq = 2, 32
        data = common.make_data(self.path("data-r.jsonl"), seq, max_lines=6)
        plain, rp = self.compile_plan("plain.tplan", self.model, batch, seq)
        recomputed, rr = self.compile_plan("recompute.tplan", self.model, batch, seq, "--recompute")
        self.assertLess(printed_activations(rr), printed_activations(rp))
        self.assertLess(manifest(recomputed)["memory"]["activations_bytes"],
                        manifest(plain)["memory"]["activations_bytes"])
        ad = self.random_adapter(self.model, "adapter-r")
        gp = self.grads_after_one_step(plain, self.model, data, ad, "plain")
        gr = self.grads_after_one_step(recomputed, self.model, data, ad, "recompute")
        self.assert_grads_close(gr, gp, 1e-6, "recomputed vs stored activations")
        # With LoRA dropout the recomputed forward draws the same masks.
        dplain, _ = self.compile_plan("dplain.tplan", self.model, batch, seq, "--lora-dropout", 0.3)
        drec, _ = self.compile_plan("drecompute.tplan", self.model, batch, seq, "--lora-dropout", 0.3, "--recompute")
        gdp = self.grads_after_one_step(dplain, self.model, data, ad, "dplain")
        gdr = self.grads_after_one_step(drec, self.model, data, ad, "drecompute")
        self.assert_grads_close(gdr, gdp, 1e-6, "recomputed vs stored activations, with dropout")
        # ... and the masks are live: the gradients differ from those without dropout.
        worst = max(float(np.abs(gdp[k] - gp[k]).max()) for k in gp)
        self.assertGreater(worst, 1e-4, "dropout 0.3 did not change any gradient")


if __name__ == "__main__":
    common.main()
