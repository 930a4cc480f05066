#!/usr/bin/python3
"""e2e parity against real PEFT: tessera on lavapipe vs PEFT 0.21 on an H100 (fp32, TF32 off).

test/fixtures/hf/peft-{qwen3,gemma3,qwen3-sched}/ hold a PEFT run of the tiny
random Qwen 3 / Gemma 3 (test/fixtures/hf/export_hf.py, peft_run): run.json
(hyper-parameters, the loss of every optimizer step before its update, the lr
of every step, the clipped runs' gradient norms), the initial and final
adapters (init/, final/) and the data (data.jsonl, consumed in file order,
micro_batch lines per micro-batch). For each run this test compiles the
dynamic ONNX export with the run's shapes and LoRA settings, trains from
init/ with the run's optimizer flags, and requires

* |loss - PEFT loss| <= 1e-3 at every step, the lr of every step equal;
* the gradient norm within 1e-2 relative where the run clipped;
* the final adapter equal to final/ within 1e-3 norm-relative per tensor,
  with exactly PEFT's tensor names.

    test_peft_parity.py --tessera build/bin/tessera [--keep]

On a GPU machine without MLIR the same comparison runs with the runtime-only
binary and plans compiled here (bench/peft_parity_gpu.sh):
    TESSERA_KEEP_PLANS=DIR test_peft_parity.py            # here: also copy each plan into DIR
    TESSERA_PLANS=DIR test_peft_parity.py --tessera tessera-rt   # there: train those plans
"""
import json
import os
import shutil
import sys

import common
from common import TempDirTest, rel_norm_err, safetensors_io, tessera

FIXTURES = os.path.join(common.ROOT, "test", "fixtures", "hf")
LOSS_TOL = 1e-3
ADAPTER_TOL = 1e-3
NORM_TOL = 1e-2
RUNS = {"peft-qwen3": "qwen3-dynamic", "peft-gemma3": "gemma3-dynamic", "peft-qwen3-sched": "qwen3-dynamic"}


def train_flags(hp):
    """tessera train flags for a run.json "hparams" object."""
    flags = ["--steps", hp["steps"], "--lr", hp["lr"], "--weight-decay", hp["weight_decay"],
             "--lr-schedule", hp["schedule"], "--warmup-steps", hp["warmup_steps"],
             "--grad-accum", hp["accumulation"]]
    if hp.get("max_grad_norm"):
        flags += ["--max-grad-norm", hp["max_grad_norm"]]
    return flags


class PeftParity(TempDirTest):
    def check_run(self, run):
        fixture = os.path.join(FIXTURES, run)
        model = os.path.join(FIXTURES, RUNS[run], "model.onnx")
        with open(os.path.join(fixture, "run.json")) as f:
            want = json.load(f)
        hp = want["hparams"]
        plan = self.path(run + ".tplan")
        compile_flags = ["--batch", hp["micro_batch"], "--seq", hp["seq"], "--lora-rank", hp["r"],
                         "--lora-alpha", hp["alpha"], "--lora-targets", "all-linear"]
        if hp.get("rslora"):
            compile_flags.append("--rslora")
        if os.environ.get("TESSERA_PLANS"):
            plan = os.path.join(os.environ["TESSERA_PLANS"], run + ".tplan")
        else:
            tessera("compile", model, "-o", plan, *compile_flags)
            if os.environ.get("TESSERA_KEEP_PLANS"):
                os.makedirs(os.environ["TESSERA_KEEP_PLANS"], exist_ok=True)
                shutil.copy(plan, os.environ["TESSERA_KEEP_PLANS"])
        out, metrics = self.path(run + "_out"), self.path(run + ".jsonl")
        tessera("train", plan, "--weights", model, "--data", os.path.join(fixture, "data.jsonl"),
                "--init-adapter", os.path.join(fixture, "init"), "--out", out, "--metrics", metrics,
                *train_flags(hp))
        with open(metrics) as f:
            got = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(got), hp["steps"])

        report, bad = [], []
        for i, g in enumerate(got):
            w = want["losses"][i]
            d = abs(g["loss"] - w)
            report.append(f"{run} step {i + 1:3d}: tessera {g['loss']:.6f} PEFT {w:.6f} |d| {d:.2e}")
            if not d <= LOSS_TOL:
                bad.append(report[-1])
            self.assertAlmostEqual(g["lr"], want["lr"][i], delta=1e-12 + 1e-9 * want["lr"][i])
            if want["grad_norms"]:
                wn = want["grad_norms"][i]
                self.assertLess(abs(g["grad_norm"] - wn), NORM_TOL * wn, f"{run} step {i + 1}: grad norm")
        print("\n".join(report[:3] + ["..."] + report[-3:]), file=sys.stderr)
        self.assertFalse(bad, "per-step losses differ from PEFT by more than %g:\n%s" % (LOSS_TOL, "\n".join(bad)))

        tg, _ = safetensors_io.load(os.path.join(out, "adapter_model.safetensors"))
        tw, _ = safetensors_io.load(os.path.join(fixture, "final", "adapter_model.safetensors"))
        self.assertEqual(sorted(tg), sorted(tw), "tensor names differ from PEFT's")
        errs = {k: rel_norm_err(tg[k], tw[k]) for k in tw}
        worst = sorted(errs.items(), key=lambda kv: -kv[1])[:3]
        print(f"{run}: largest final adapter errors: " + ", ".join(f"{k}: {v:.2e}" for k, v in worst),
              file=sys.stderr)
        self.assertLess(worst[0][1], ADAPTER_TOL, f"{run}: final adapters differ from PEFT: {worst}")

    def test_qwen3_constant(self):
        self.check_run("peft-qwen3")

    def test_gemma3_constant(self):
        self.check_run("peft-gemma3")

    def test_qwen3_warmup_cosine_clip_accumulation_rslora(self):
        self.check_run("peft-qwen3-sched")


if __name__ == "__main__":
    common.main()
