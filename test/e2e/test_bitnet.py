#!/usr/bin/python3
"""e2e: BitNet b1.58 (test/fixtures/hf/bitnet: transformers' BitNetForCausalLM whose
linear layers are AutoBitLinear in online mode, exported by dynamo) imports, is
raised to BitLinear layers (tessera.ternary_weight + tessera.act_quant), evaluates
and trains with LoRA as PEFT does.

* `tessera inspect` names the architecture `bitnet` and its 14 BitLinear layers;
* the plan stores each BitLinear weight as ternary codes in TQ2_0 blocks and a
  one-value f32 scale, both derived by the runtime (no f32 copy); an override
  keeps the codes as floats;
* every BitLinear forward is computed in integers (int8 activation codes x
  ternary codes, int32 sums; OpSDot where the profile has
  integer_dot_product) and the backward reads the same codes;
* `tessera eval` in fp32 equals transformers' own loss (reference.json: the
  float64 model with the quantisers in f32) within 1e-4 at T = 16 and 64;
* 20 LoRA steps from test/fixtures/hf/peft-bitnet/init equal PEFT's losses
  (run.json, an H200 in fp32 with TF32 off) within STEP_TOL at every step,
  under two kernel configurations, and within MEAN_TOL on average (STEP_TOL
  says why);
* a BitNet-like graph whose activation clamp differs (127 -> 100, or -128 ->
  -200) is not raised: the quantiser stays generic ops, which compute what
  the graph says (-200 is the same function: the loss still equals
  transformers').
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

import common
from common import losses_of, parse_eval, plan_manifest, tessera

HF = os.path.join(common.ROOT, "test", "fixtures", "hf")
MODEL = os.path.join(HF, "bitnet", "model.onnx")
PEFT = os.path.join(HF, "peft-bitnet")
EVAL_TOL = 1e-4
# The int8 activation quantiser is discontinuous: a different f32 summation
# order flips a few codes, and AdamW's first steps (lr * g / |g|) turn those
# tiny gradient changes into full-size updates of the elements whose gradient
# is near 0, so the curves drift apart step by step while step 1 (B = 0: the
# base model) agrees to 1e-6. Measured on lavapipe (docs/quantization.md):
# tessera vs PEFT up to 7.5e-3 at one step, 1.4e-3 on average over the 20
# steps; the nvidia profile's tiles unfused up to 3.0e-3 / 1.2e-3; the two
# tessera runs differ from each other by up to 6.1e-3. Bounds: 2e-2 per step
# (3x the spread of tessera against itself, 2% of the curve's fall of 1.0)
# and 4e-3 on average (3x the measured mean). Step 1 (the base model) within
# 1e-4 of PEFT; with nvidia.json within 2e-3: its reductions on one subgroup
# per row (reduce.subgroup_max, 2026-12-04) sum the RMSNorm means in another
# f32 order, which flips a few codes of the base model already: 4.5e-4 at
# step 1, 3.2e-3 / 1.5e-3 over the 20 steps (the reduction itself agrees with
# the workgroup one to rounding: KernelNumerics.ReduceSubgroupMatchesWorkgroup).
STEP_TOL = 2e-2
MEAN_TOL = 4e-3
BASE_TOL = {"default": 1e-4, "nvidia tiles, unfused": 2e-3}
PROFILES = {"default": [], "nvidia tiles, unfused": ["--profile", os.path.join(common.ROOT, "autotune", "profiles",
                                                                             "nvidia.json"), "--no-fuse"]}


def write_ids(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({"input_ids": row}) + "\n")


class BitNet(common.TempDirTest):
    def eval_loss(self, model, rows, seq, tag):
        data = self.path(f"{tag}.jsonl")
        write_ids(data, [r[:seq] for r in rows])
        plan = self.path(f"{tag}.tplan")
        tessera("compile", model, "-o", plan, "--batch", len(rows), "--seq", seq, "--precision", "fp32")
        return parse_eval(tessera("eval", plan, "--weights", model, "--data", data))

    def test_inspect_names_bitnet(self):
        out = tessera("inspect", MODEL).stdout
        self.assertRegex(out, r"architecture:\s+bitnet")
        self.assertRegex(out, r"BitLinear layers:\s+14 ")
        self.assertIn("relu(gate)^2 * up", out)
        self.assertEqual(out.count("(BitLinear: ternary weight, int8 activations)"), 14, out)
        for name in ("layers.1.self_attn.o_proj", "layers.1.mlp.down_proj", "layers.0.mlp.gate_proj"):
            self.assertIn(name, out)
        self.assertNotIn("binary div", out, "a quantiser stayed generic:\n" + out)

    def test_plan_stores_ternary_codes_as_tq2_0(self):
        plan = self.path("types.tplan")
        r = tessera("compile", MODEL, "-o", plan, "--batch", 2, "--seq", 16, "--lora-rank", 8,
                    "--lora-targets", "all-linear", "--precision", "fp32")
        self.assertRegex(r.stdout, r"tq2_0 [0-9.]+ MiB in 14 tensors")
        weights = [b for b in plan_manifest(plan)["buffers"] if b["kind"] == "weight" and "alias_of" not in b]
        codes = [b for b in weights if b.get("ternary", {}).get("part") == "codes"]
        scales = [b for b in weights if b.get("ternary", {}).get("part") == "scale"]
        self.assertEqual(len(codes), 14)
        self.assertEqual(len(scales), 14)
        self.assertEqual({b["dtype"] for b in codes}, {"tq2_0"})
        self.assertEqual({(b["dtype"], b["bytes"]) for b in scales}, {("f32", 4)})
        self.assertEqual({b["name"] for b in codes}, {b["name"] for b in scales})
        for b in codes:
            self.assertEqual(b["ternary"]["eps"], float(np.float32(1e-5)))
            self.assertFalse(b.get("transposed", False))  # [out, in]: blocks along the input features
        # No f32 copy of a BitLinear weight: only the norms and the tied embedding / head.
        plain = [b["name"] for b in weights if "ternary" not in b]
        self.assertTrue(all("proj" not in n for n in plain), plain)
        # An override keeps those codes as floats (exact too).
        r = tessera("compile", MODEL, "-o", self.path("types-fp32.tplan"), "--batch", 2, "--seq", 16,
                    "--precision", "fp32", "--base-dtype-override", "down_proj=fp32")
        codes = {b["name"]: b["dtype"] for b in plan_manifest(self.path("types-fp32.tplan"))["buffers"]
                 if b.get("ternary", {}).get("part") == "codes"}
        self.assertEqual({n for n, t in codes.items() if t == "f32"},
                         {f"m.model.layers.{i}.mlp.down_proj.weight" for i in (0, 1)}, codes)
        self.assertEqual(sum(t == "tq2_0" for t in codes.values()), 12)

    def test_forward_products_are_integer(self):
        """Every BitLinear forward is the integer kernel pair (tessera-integer-bitlinear): int8 codes of the
        activations, then int32 sums against the TQ2_0 codes, OpSDot (plan feature integer_dot_product) only
        under a profile that has it; no act_quant kernel is left, and the backward still reads the same codes
        through the f32 matmuls (the straight-through dX)."""
        for tag, flags in PROFILES.items():
            with self.subTest(profile=tag):
                plan = self.path(f"int-{len(tag)}.tplan")
                tessera("compile", MODEL, "-o", plan, "--batch", 2, "--seq", 16, "--lora-rank", 8,
                        "--lora-targets", "all-linear", "--precision", "fp32", *flags)
                m = plan_manifest(plan)
                kernels = [k["name"] for k in m["kernels"]]
                self.assertFalse([k for k in kernels if k.startswith("act_quant")], kernels)
                codes = {i for i, b in enumerate(m["buffers"]) if b.get("ternary", {}).get("part") == "codes"}
                self.assertEqual(len(codes), 14)
                for program in ("train_step", "eval"):
                    ds = next(p for p in m["programs"] if p["name"] == program)["dispatches"]
                    name = [kernels[d["kernel"]] for d in ds]
                    products = [d for d, n in zip(ds, name) if n.startswith("bitlinear_matmul")]
                    self.assertEqual(len(products), 14, program)
                    self.assertEqual(sum(n.startswith("bitlinear_quant") for n in name), 14, program)
                    self.assertEqual({d["bindings"][2] for d in products}, codes, program)  # slot 2: the codes
                    if program == "train_step":  # dX = dY (codes * scale): f32 matmuls over the same codes,
                        # of every BitLinear but layer 0's q, k, v (nothing before them trains)
                        grads = {b for d, n in zip(ds, name) if n.startswith("matmul") for b in d["bindings"][:2]}
                        first = {i for i in codes if any(f"layers.0.self_attn.{p}_proj" in m["buffers"][i]["name"]
                                                         for p in "qkv")}
                        self.assertEqual(len(first), 3)
                        self.assertEqual(codes & grads, codes - first)
                self.assertEqual("integer_dot_product" in m["features"], tag != "default", m["features"])

    def test_integer_dot_plan_needs_the_device_feature(self):
        """A plan with OpSDot is refused at load on a device without shaderIntegerDotProduct (hidden here),
        naming it; the multiply-add plan of the default profile runs there."""
        with open(os.path.join(HF, "bitnet", "reference.json")) as f:
            ref = json.load(f)
        data = self.path("dot.jsonl")
        write_ids(data, [r[:16] for r in ref["ids"]])
        env = {"TESSERA_HIDE_FEATURES": "integer_dot_product"}
        for tag, flags in PROFILES.items():
            plan = self.path(f"dot-{len(tag)}.tplan")
            tessera("compile", MODEL, "-o", plan, "--batch", len(ref["ids"]), "--seq", 16, "--precision", "fp32",
                    *flags)
            r = tessera("eval", plan, "--weights", MODEL, "--data", data, env=env, check=False)
            if tag == "default":
                self.assertEqual(r.rc, 0, r.describe())
                loss, _ = parse_eval(r)
                self.assertLess(abs(loss - ref["losses"]["16"]), EVAL_TOL)
            else:
                self.assertEqual(r.rc, 1, r.describe())
                self.assertIn("needs shaderIntegerDotProduct", r.stderr, r.describe())
                self.assertIn("one without integer_dot_product", r.stderr, r.describe())

    def test_eval_matches_transformers(self):
        with open(os.path.join(HF, "bitnet", "reference.json")) as f:
            ref = json.load(f)
        for seq in (16, 64):
            with self.subTest(seq=seq):
                loss, tokens = self.eval_loss(MODEL, ref["ids"], seq, f"eval-{seq}")
                want = ref["losses"][str(seq)]
                self.assertEqual(tokens, len(ref["ids"]) * (seq - 1))
                print(f"bitnet T={seq}: tessera {loss:.7f} transformers {want:.7f} |d| {abs(loss - want):.1e}",
                      file=sys.stderr)
                self.assertLess(abs(loss - want), EVAL_TOL)

    def test_training_matches_peft(self):
        with open(os.path.join(PEFT, "run.json")) as f:
            run = json.load(f)
        hp = run["hparams"]
        want = run["losses"]
        curves = {}
        for tag, flags in PROFILES.items():
            plan = self.path(f"peft-{len(curves)}.tplan")
            tessera("compile", MODEL, "-o", plan, "--batch", hp["micro_batch"], "--seq", hp["seq"],
                    "--lora-rank", hp["r"], "--lora-alpha", hp["alpha"], "--lora-targets", "all-linear",
                    "--precision", "fp32", *flags)
            out, metrics = self.path(f"peft-out-{len(curves)}"), self.path(f"peft-{len(curves)}.jsonl")
            tessera("train", plan, "--weights", MODEL, "--data", os.path.join(PEFT, "data.jsonl"),
                    "--init-adapter", os.path.join(PEFT, "init"), "--out", out, "--metrics", metrics,
                    "--steps", hp["steps"], "--lr", hp["lr"], "--weight-decay", hp["weight_decay"],
                    "--lr-schedule", hp["schedule"])
            curves[tag] = losses_of(metrics)
            self.assertEqual(len(curves[tag]), hp["steps"])
        tags = list(curves)
        report = [f"step  PEFT      " + "  ".join(f"{t:>22}" for t in tags)]
        for i, w in enumerate(want):
            report.append(f"{i + 1:4d}  {w:.6f}  " + "  ".join(
                f"{curves[t][i]:.6f} ({abs(curves[t][i] - w):.1e})" for t in tags))
        spread = max(abs(a - b) for a, b in zip(*curves.values()))
        report.append(f"largest difference between the two tessera runs: {spread:.1e}")
        print("\n".join(report), file=sys.stderr)
        for t in tags:
            for i, (g, w) in enumerate(zip(curves[t], want)):
                self.assertLessEqual(abs(g - w), STEP_TOL, f"{t} step {i + 1}\n" + "\n".join(report))
        for t in tags:
            mean = sum(abs(g - w) for g, w in zip(curves[t], want)) / len(want)
            self.assertLessEqual(mean, MEAN_TOL, f"{t}: mean |d| {mean:.1e}\n" + "\n".join(report))
            # Step 1 reads the initial adapter (B = 0): the base model's loss.
            self.assertLess(abs(curves[t][0] - want[0]), BASE_TOL[t])

    def modified(self, tag, old, new):
        """The fixture with every 1-element initializer equal to `old` set to `new`."""
        m = onnx.load(MODEL)  # with its external data
        changed = 0
        for init in m.graph.initializer:
            a = numpy_helper.to_array(init)
            if a.size == 1 and float(a.ravel()[0]) == old:
                init.CopyFrom(numpy_helper.from_array(np.full(a.shape, new, a.dtype), init.name))
                changed += 1
        self.assertGreater(changed, 0, f"no initializer {old}")
        path = self.path(f"{tag}.onnx")
        onnx.save(m, path, save_as_external_data=True, location=f"{tag}.onnx.data")
        return path

    def test_near_miss_stays_generic(self):
        # The activation clamp to [-128, 100]: not transformers' quantiser, so
        # not raised; the ternary weights still are.
        out = tessera("inspect", self.modified("clamp100", 127.0, 100.0)).stdout
        self.assertNotIn("int8 activations)", out)
        self.assertEqual(out.count("(ternary weight)"), 14, out)
        self.assertRegex(out, r"tessera.unary round x8 ")
        # A lower bound of -200 instead of -128 computes the same function
        # (x * a >= -127 - 1/2 always) but is no exact match: the generic ops
        # must give transformers' loss too.
        path = self.modified("clamp-200", -128.0, -200.0)
        out = tessera("inspect", path).stdout
        self.assertNotIn("int8 activations)", out)
        with open(os.path.join(HF, "bitnet", "reference.json")) as f:
            ref = json.load(f)
        loss, _ = self.eval_loss(path, ref["ids"], 16, "clamp-200")
        print(f"generic activation quantiser T=16: tessera {loss:.7f} transformers {ref['losses']['16']:.7f}",
              file=sys.stderr)
        self.assertLess(abs(loss - ref["losses"]["16"]), EVAL_TOL)

if __name__ == "__main__":
    common.main()
