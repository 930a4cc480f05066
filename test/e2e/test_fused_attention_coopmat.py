"""e2e: fused attention on cooperative matrices (kernels/AttentionCoopMat.cpp)
against the decomposition, on Debian 13's lavapipe (scripts/trixie_env.sh:
Mesa 26.1, VK_KHR_cooperative_matrix 8x8x8 f16), which Debian 12's lacks.

The Qwen 3 fixture (GQA, head dim 16) compiled with
test/fixtures/profiles/lavapipe-coopmat.json at --precision f16: the fused
plan runs its forward attention as flash_attention_coopmat (the backward's
gradients are f32 in f16 plans, so the SIMT dq / dk,dv kernels take it), the
decomposed plan as cooperative-matrix matmuls. tessera-rt trains both for a
few steps and evaluates the trained adapters in the trixie folder; losses and
gradient norms agree within f16 rounding (relative 1e-3; measured about
5e-5). The backward's cooperative-matrix kernels are checked on that lavapipe
by KernelNumericsAttention.CoopMat* (kcheck_coopmat_trixie).

Without the folder the test fails, unless TESSERA_SKIP_TRIXIE=1 (locally only:
exit 77, skipped), as test/unit/kcheck/trixie_checks.sh does.
"""
import json
import os
import sys

import common
from common import plan_manifest, run, tessera

HF = os.path.join(common.ROOT, "test", "fixtures", "hf")
PROFILE = os.path.join(common.ROOT, "test", "fixtures", "profiles", "lavapipe-coopmat.json")
TRIXIE = os.path.join(common.SCRIPTS, "trixie_env.sh")
BATCH, SEQ, STEPS = 2, 32, 3
REL = 1e-3


def kernel_names(plan):
    m = plan_manifest(plan)
    names = [k["name"] for k in m["kernels"]]
    return {names[d["kernel"]] for p in m["programs"] for d in p["dispatches"]}


class FusedAttentionCoopMat(common.TempDirTest):
    def trixie(self, *cmd, ins=()):
        """CMD in the trixie folder with INS (absolute paths) copied in (and removed after)."""
        args = ["bash", TRIXIE, "run"]
        for p in ins:
            args += ["--in", p]
        r = run(args + ["--", *cmd], env={"TESSERA_PIPELINE_CACHE": self.path("cache")}, timeout=900)
        if r.rc != 0:
            raise AssertionError("in the trixie folder:\n" + r.describe())
        return r

    def test_qwen3(self):
        model = os.path.join(HF, "qwen3-dynamic")
        data = os.path.join(HF, "peft-qwen3", "data.jsonl")
        rt = os.path.join(os.path.dirname(os.path.abspath(common.ARGS.tessera)), "tessera-rt")
        work = self.path("run")
        os.makedirs(os.path.join(work, "cache"))
        plans = {}
        for tag, flags in (("fused", ["--fused-attention"]), ("decomposed", ["--no-fused-attention"])):
            plans[tag] = os.path.join(work, f"{tag}.tplan")
            tessera("compile", os.path.join(model, "model.onnx"), "-o", plans[tag], "--batch", BATCH, "--seq", SEQ,
                    "--lora-rank", 4, "--lora-alpha", 8, "--lora-targets", "all-linear", "--profile", PROFILE,
                    "--precision", "f16", *flags)
        fused = kernel_names(plans["fused"])
        self.assertIn("flash_attention_coopmat_0", fused)
        self.assertTrue(any(n.startswith("matmul_coopmat") for n in fused), fused)
        self.assertFalse(any(n.startswith("flash") for n in kernel_names(plans["decomposed"])))
        # Both plans trained and evaluated in one chroot (the folder's lock is taken once).
        script = " && ".join(
            f"{rt} train {plans[t]} --weights {model}/model.onnx --data {data} --steps {STEPS} --lr 5e-3 --seed 3"
            f" --out {work}/out-{t} --metrics {work}/{t}.jsonl"
            f" && {rt} eval {plans[t]} --weights {model}/model.onnx --data {data} --init-adapter {work}/out-{t}"
            f" --losses {work}/eval-{t}.jsonl" for t in plans)
        # The copies are removed afterwards: the results come back on stdout.
        files = ["fused.jsonl", "decomposed.jsonl", "eval-fused.jsonl", "eval-decomposed.jsonl"]
        dump = " && ".join(f"echo '== {f}' && cat {work}/{f}" for f in files)
        r = self.trixie("/bin/sh", "-c", f"export TESSERA_PIPELINE_CACHE={work}/cache && {script} > {work}/log 2>&1"
                        f" || {{ cat {work}/log; exit 1; }}; {dump}", ins=[rt, work, model, data])
        out, name = {}, None
        for line in r.stdout.splitlines():
            if line.startswith("== "):
                name = line[3:]
                out[name] = []
            elif line.strip() and name:
                out[name].append(json.loads(line))
        for key in ("loss", "grad_norm"):
            f, d = [x[key] for x in out["fused.jsonl"]], [x[key] for x in out["decomposed.jsonl"]]
            self.assertEqual(len(f), STEPS)
            self.assertEqual(len(d), STEPS)
            for a, b in zip(f, d):
                self.assertAlmostEqual(a, b, delta=REL * abs(b), msg=f"{key}: fused {a} vs decomposed {b}")
        losses = [x["loss"] for x in out["fused.jsonl"]]
        self.assertEqual(len(set(losses)), STEPS, f"every step must train: {losses}")
        ef, ed = [x["loss"] for x in out["eval-fused.jsonl"]], [x["loss"] for x in out["eval-decomposed.jsonl"]]
        self.assertTrue(ef)
        self.assertEqual(len(ef), len(ed))
        for a, b in zip(ef, ed):
            self.assertAlmostEqual(a, b, delta=REL * abs(b), msg=f"eval loss: fused {a} vs decomposed {b}")
        print(f"losses fused {losses} decomposed {[x['loss'] for x in out['decomposed.jsonl']]}")


def ensure_trixie():
    if os.environ.get("TESSERA_SKIP_TRIXIE", "0") not in ("", "0") and os.environ.get("CI") != "true":
        print("skipped: TESSERA_SKIP_TRIXIE is set (the cooperative-matrix attention kernels are not run)")
        sys.exit(77)
    r = run(["bash", TRIXIE, "ensure"], timeout=900)
    if r.rc != 0:
        print("FAILED: cannot create the Debian 13 (trixie) folder (root, debootstrap and Debian's mirror; "
              "locally TESSERA_SKIP_TRIXIE=1 skips):\n" + r.describe())
        sys.exit(1)


if __name__ == "__main__":
    ensure_trixie()
    common.main()
