#!/usr/bin/python3
"""e2e: half precision (`tessera compile --precision f16|bf16`) on lavapipe.

The bundled model and the three Hugging Face fixtures (Llama 3, Qwen 3,
Gemma 3; dynamic exports) compile with the lavapipe profile in f16 and in
bf16, and train from the same random nonzero adapter as the reference, which
is test/reference/tiny_llama_torch.py computing what a plan of that precision
computes (--precision: frozen weights rounded to the half type, activations
rounded where the plan stores them in it, the f32 residual stream, statistics,
scores, logits and LoRA state; in float32 torch). Checked, per model and mode:

* the plan: weights stored in the half type, LoRA factors / gradients / AdamW
  moments in f32, its precision and device features (test_spirv.py runs
  spirv-val on the kernels of half plans);
* no NaN or inf in any loss;
* per-step training losses within STEP_TOL of the reference's;
* the forward pass where nothing has diverged (the step-1 loss, and the
  per-batch eval losses of tessera's trained adapter): within FWD_TOL of the
  reference's, and closer to it than the reference's fp32 losses are (RMS over
  those losses, FWD_RATIO): the half precision took effect as the policy says.
  Plans compile with fused attention (the default: probabilities never
  stored); Qwen 3 bf16 and Gemma 3 f16 also with --no-fused-attention against
  the reference's --decomposed-attention policy (probabilities stored in the
  half type).

The tolerances (docs/precision.md) are measured bounds with a 2-4x margin.
A half-precision forward differs from its emulation where the device's f32
value and the reference's fall on two sides of a rounding boundary (llvmpipe's
exp / rsqrt differ from torch's by up to ~1e-6 relative; a flip moves an
element by one half-type ulp, 2^-8 relative in bf16): single batch losses
move by up to ~7e-5. Training amplifies such differences through AdamW's
normalised updates (the first step is a sign step: a gradient element near 0
may flip), and the bf16 backward keeps gradients in bf16 (the reference
rounds them at the same kinds of places, not in the same order): per-step
losses move by up to ~1.3e-3 (bf16) and ~3e-4 (f16) over 6 steps at lr 5e-3.

Gemma 3 in f16 with large activations: the fixture with its MLP gate/up
weights scaled by 300 (gate * up products and down projections beyond 65504)
and layer 0's v_proj by 1e6 (weights beyond the f16 range): training stays
finite, the run names the saturated weight, the reference (saturating where
the plan's f16 stores saturate) reports which activations saturate, and
tessera's eval losses follow the saturating reference.

Weights stored as DOUBLE, FLOAT16 or BFLOAT16 load into half plans: a model
whose initializers hold the same values in another type trains to the same
per-step losses, bit for bit.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper

import common
from common import losses_of, plan_manifest, ref, tessera

ROOT = common.ROOT
HF = os.path.join(ROOT, "test", "fixtures", "hf")
LAVAPIPE = os.path.join(ROOT, "autotune", "profiles", "lavapipe.json")
BATCH, SEQ, RANK, ALPHA, STEPS, LR, EPS = 4, 32, 4, 8.0, 6, 5e-3, 1e-3
MODES = ["f16", "bf16"]
STEP_TOL = {"f16": 5e-4, "bf16": 3e-3}
FWD_TOL = 3e-4
FWD_RATIO = 0.6


def batch_losses(path):
    with open(path) as f:
        return [json.loads(l)["loss"] for l in f if l.strip()]


def rms(xs):
    return math.sqrt(sum(x * x for x in xs) / len(xs))


class Reference:
    """The reference model of one ONNX file, in-process (float32 torch)."""

    def __init__(self, model):
        self.cfg = ref.load_config(model)
        self.weights = ref.weights(model, self.cfg)

    def net(self, precision, fused_attention=True, lora_products="f32"):
        return ref.TinyLlama(self.weights, self.cfg, torch.float32, ref.Precision(precision, lora_products),
                             fused_attention)

    def train(self, precision, lines, adapter, fused_attention=True, lora_products="f32"):
        adapters, _ = ref.read_adapter(adapter)
        lora = ref.lora_params(adapters, torch.float32, requires_grad=True)
        return ref.train(self.net(precision, fused_attention, lora_products), lines, BATCH, SEQ, lora, ALPHA / RANK,
                         STEPS, LR, weight_decay=0.01, eps=EPS)

    def eval_batches(self, net, lines, adapter):
        """Per-batch losses over every line once (tessera eval --losses)."""
        lora = ref.lora_params(ref.read_adapter(adapter)[0], torch.float32)
        out = []
        with torch.no_grad():
            for ids, labels in ref.eval_batches(lines, BATCH, SEQ):
                s, n = ref.causal_lm_loss_sum(net.forward(ids, lora, ALPHA / RANK), labels)
                out.append(float(s) / n)
        return out


class HalfPrecision(common.TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()  # the bundled model
        cls.tiny_data = common.make_data(os.path.join(cls.dir, "tiny.jsonl"), SEQ, max_lines=16)
        cls.hf_data = os.path.join(HF, "peft-qwen3", "data.jsonl")  # 16 lines of 32 tokens
        cls.models = {"tiny": (cls.model, cls.tiny_data)}
        for arch in ("llama", "qwen3", "gemma3"):
            cls.models[arch] = (os.path.join(HF, f"{arch}-dynamic", "model.onnx"), cls.hf_data)
        cls.refs = {}

    def reference(self, name):
        if name not in self.refs:
            self.refs[name] = Reference(self.models[name][0])
        return self.refs[name]

    def init_adapter(self, name):
        d = self.path(f"init-{name}")
        if not os.path.exists(d):
            r = self.reference(name)
            adapters = ref.random_adapter(r.cfg, RANK, ref.ALL_LINEAR, seed=21)
            ref.write_adapter(d, adapters, RANK, ALPHA, ref.ALL_LINEAR)
        return d

    def compile_half(self, model, plan, mode, *extra):
        # --no-fuse-epilogue: the reference emulates the unfused plan's
        # rounding points (a fused_matmul rounds once where it rounded the
        # product and the sum); teaching it the fused ones is still to do.
        tessera("compile", model, "-o", plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK, "--lora-alpha",
                ALPHA, "--lora-targets", "all-linear", "--profile", LAVAPIPE, "--precision", mode,
                "--no-fuse-epilogue", *extra)
        return plan

    def check_plan(self, plan, mode):
        m = plan_manifest(plan)
        self.assertEqual(m["precision"], mode)
        self.assertIn("storage16", m["features"])
        kinds = {}
        for b in m["buffers"]:
            kinds.setdefault(b["kind"], set()).add(b["dtype"])
        self.assertEqual(kinds["weight"], {mode}, "frozen weights must be stored in the half type")
        for kind in ("lora", "optimizer_state", "gradient"):
            self.assertEqual(kinds[kind], {"f32"}, f"{kind} buffers must be f32")
        self.assertIn(mode, kinds["activation"])
        self.assertIn("f32", kinds["activation"])  # the residual stream, statistics, logits

    # ------------------------------------------------------------------ training parity

    def run_model(self, name, mode, fused_attention=True, lora_products="f32"):
        model, data = self.models[name]
        init = self.init_adapter(name)
        tag = f"{name}-{mode}" + ("" if fused_attention else "-decomposed") + f"-lora-{lora_products}"
        plan = self.compile_half(model, self.path(f"{tag}.tplan"), mode,
                                 *([] if fused_attention else ["--no-fused-attention"]),
                                 "--lora-products", lora_products)
        self.check_plan(plan, mode)
        out, metrics = self.path(f"out-{tag}"), self.path(f"{tag}.jsonl")
        tessera("train", plan, "--weights", model, "--data", data, "--steps", STEPS, "--lr", LR, "--eps", EPS,
                "--init-adapter", init, "--out", out, "--metrics", metrics)
        got = losses_of(metrics)
        evals = self.path(f"eval-{tag}.jsonl")
        tessera("eval", plan, "--weights", model, "--data", data, "--init-adapter", out, "--losses", evals)
        got_eval = batch_losses(evals)
        self.assertEqual(len(got), STEPS)
        for x in got + got_eval:
            self.assertTrue(math.isfinite(x), f"{name} {mode}: a loss is not finite: {got} {got_eval}")

        r = self.reference(name)
        lines = ref.read_jsonl(data)
        want = r.train(mode, lines, init, fused_attention, lora_products)
        want_eval = r.eval_batches(r.net(mode, fused_attention, lora_products), lines, out)
        fp32_eval = r.eval_batches(r.net("fp32"), lines, out)
        fp32_first = r.eval_batches(r.net("fp32"), lines[:BATCH], init)[0]

        report = [f"{name} {mode}: step  tessera    reference  |d|"]
        for k, (g, w) in enumerate(zip(got, want)):
            report.append(f"  {k + 1:2d}  {g:.6f}  {w:.6f}  {abs(g - w):.1e}")
        fwd_t, fwd_r, fwd_f = [got[0]] + got_eval, [want[0]] + want_eval, [fp32_first] + fp32_eval
        d_tr = [t - w for t, w in zip(fwd_t, fwd_r)]
        d_rf = [w - f for w, f in zip(fwd_r, fwd_f)]
        report.append(f"  forward (step 1, eval batches): |tessera - reference| {' '.join(f'{abs(d):.1e}' for d in d_tr)};"
                      f" |reference - fp32 reference| {' '.join(f'{abs(d):.1e}' for d in d_rf)}")
        print("\n".join(report), file=sys.stderr)
        for k, (g, w) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - w), STEP_TOL[mode], f"{name} {mode} step {k + 1}\n" + "\n".join(report))
        for d in d_tr:
            self.assertLessEqual(abs(d), FWD_TOL, "\n".join(report))
        self.assertLess(rms(d_tr), FWD_RATIO * rms(d_rf),
                        f"{name} {mode}: tessera is not closer to the {mode} reference than fp32 is\n" + "\n".join(report))
        self.assertGreater(want[0] - min(want), 0.05, "the loss must move")
        if lora_products == "half":
            # The factors' rounding took effect: tessera's forward is closer to
            # the half-factor reference than that is to the f32-factor one.
            f32_lora = [r.eval_batches(r.net(mode, fused_attention), lines[:BATCH], init)[0]] + \
                r.eval_batches(r.net(mode, fused_attention), lines, out)
            d_lf = [w - f for w, f in zip(fwd_r, f32_lora)]
            print(f"  |reference - f32-factor reference| {' '.join(f'{abs(d):.1e}' for d in d_lf)}", file=sys.stderr)
            self.assertLess(rms(d_tr), FWD_RATIO * rms(d_lf),
                            f"{name} {mode}: tessera is not closer to the half-factor reference than the f32-factor "
                            "one is\n" + "\n".join(report))

    def test_tiny_f16(self):
        self.run_model("tiny", "f16")

    # --lora-products half (nvidia.json's default): the factors rounded in
    # their products, also in the bf16 backward (dY B, dZ A) but not where dY
    # is the f32 residual stream's gradient.
    def test_tiny_bf16_lora_products_half(self):
        self.run_model("tiny", "bf16", lora_products="half")

    def test_qwen3_f16_lora_products_half(self):
        self.run_model("qwen3", "f16", lora_products="half")

    def test_tiny_bf16(self):
        self.run_model("tiny", "bf16")

    def test_llama_f16(self):
        self.run_model("llama", "f16")

    # --no-fused-attention plans (probabilities stored in the half type)
    # against the reference's --decomposed-attention policy.
    def test_qwen3_bf16_decomposed_attention(self):
        self.run_model("qwen3", "bf16", fused_attention=False)

    def test_gemma3_f16_decomposed_attention(self):
        self.run_model("gemma3", "f16", fused_attention=False)

    def test_llama_bf16(self):
        self.run_model("llama", "bf16")

    def test_qwen3_f16(self):
        self.run_model("qwen3", "f16")

    def test_qwen3_bf16(self):
        self.run_model("qwen3", "bf16")

    def test_gemma3_f16(self):
        self.run_model("gemma3", "f16")

    def test_gemma3_bf16(self):
        self.run_model("gemma3", "bf16")

    # ------------------------------------------------------------------ Gemma 3, f16, large activations

    def test_gemma3_f16_saturation(self):
        src = os.path.join(HF, "gemma3-dynamic", "model.onnx")
        m = onnx.load(src, load_external_data=True)
        graph_linears = [n.input[1] for n in m.graph.node
                         if n.op_type == "MatMul" and n.input[1] in {t.name for t in m.graph.initializer}
                         and len(next(t for t in m.graph.initializer if t.name == n.input[1]).dims) == 2]
        # Per layer: q, k, v, o, gate, up, down (the order of ref.LINEAR_ORDER).
        scale = {graph_linears[7 * i + k]: 300.0 for i in range(2) for k in (4, 5)}
        v_proj = graph_linears[2]
        scale[v_proj] = 1e6
        for t in m.graph.initializer:
            if t.name in scale:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(scale[t.name]), t.name))
        d = self.path("gemma3-large")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(HF, "gemma3-dynamic", "reference.json"), d)  # the config
        model = os.path.join(d, "model.onnx")
        onnx.save(m, model)
        data, init = self.hf_data, self.init_adapter("gemma3")
        plan = self.compile_half(model, self.path("gemma3-large.tplan"), "f16")
        out, metrics = self.path("out-gemma3-large"), self.path("gemma3-large.jsonl")
        r = tessera("train", plan, "--weights", model, "--data", data, "--steps", 4, "--lr", LR, "--eps", EPS,
                    "--init-adapter", init, "--out", out, "--metrics", metrics)
        warnings = [l for l in r.stderr.splitlines() if l.startswith("warning: weight")]
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn(f"'{v_proj}'", warnings[0])
        self.assertIn("saturated to +-65504", warnings[0])
        evals = self.path("eval-gemma3-large.jsonl")
        tessera("eval", plan, "--weights", model, "--data", data, "--init-adapter", out, "--losses", evals)
        got, got_eval = losses_of(metrics), batch_losses(evals)
        for x in got + got_eval:
            self.assertTrue(math.isfinite(x), f"gemma3 f16 with large activations: {got} {got_eval}")

        rf = Reference(model)
        lines = ref.read_jsonl(data)
        counting = ref.Precision("f16")
        counting.saturated = {}
        net = ref.TinyLlama(rf.weights, rf.cfg, torch.float32, counting)
        want_eval = rf.eval_batches(net, lines, out)
        saturated = {site: v for site, v in net.p.saturated.items() if v[0]}
        fp32_eval = rf.eval_batches(rf.net("fp32"), lines, out)
        print(f"gemma3 f16, large activations: {warnings[0]}\n  saturated f16 stores (reference), site: elements of "
              f"stored, largest |value|: " + "; ".join(f"{s}: {v[0]} of {v[1]}, {v[2]:.3g}" for s, v in saturated.items())
              + f"\n  eval per batch: tessera {got_eval}\n  reference f16 {want_eval}\n  reference fp32 {fp32_eval}",
              file=sys.stderr)
        # The MLP products and the v / attention path saturate.
        self.assertGreater(saturated.get("mlp", [0])[0], 0, saturated)
        self.assertIn("model.layers.0.self_attn.v_proj.weight", saturated)
        self.assertIn("layers.0.mlp.down_proj", saturated)
        for t, w in zip(got_eval, want_eval):
            self.assertLessEqual(abs(t - w), FWD_TOL, f"tessera {got_eval} vs saturating reference {want_eval}")
        self.assertGreater(max(abs(w - f) for w, f in zip(want_eval, fp32_eval)), 10 * FWD_TOL,
                           "saturation must change the function, or this test does not exercise it")

    # ------------------------------------------------------------------ weights of other stored types

    def test_weights_of_every_float_type(self):
        """DOUBLE, FLOAT16 and BFLOAT16 initializers: converted at load (f64
        and the other half type) or copied (the plan's own type)."""
        f32 = onnx.load(self.model)

        def variant(name, convert):
            m = onnx.ModelProto()
            m.CopyFrom(f32)
            for t in m.graph.initializer:
                if t.data_type == TensorProto.FLOAT and len(t.dims) >= 1:
                    convert(t)
            d = self.path(f"weights-{name}")
            os.makedirs(d, exist_ok=True)
            shutil.copy(os.path.join(os.path.dirname(self.model), "config.json"), d)
            p = os.path.join(d, "model.onnx")
            onnx.save(m, p)
            return p

        def to_f64(t):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))

        def rounded_f32(t, dtype):  # the values of the half type, stored as FLOAT
            a = torch.tensor(numpy_helper.to_array(t)).to(dtype).float().numpy()
            t.CopyFrom(numpy_helper.from_array(a, t.name))

        def to_f16(t):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))

        def to_bf16(t):
            bits = torch.tensor(numpy_helper.to_array(t)).to(torch.bfloat16).view(torch.int16).numpy()
            dims, name = list(t.dims), t.name
            t.Clear()
            t.name, t.data_type, t.raw_data = name, TensorProto.BFLOAT16, bits.astype("<i2").tobytes()
            t.dims.extend(dims)

        for mode, store, dtype in (("f16", to_f16, torch.float16), ("bf16", to_bf16, torch.bfloat16)):
            with self.subTest(mode=mode):
                plan = self.compile_half(self.model, self.path(f"w-{mode}.tplan"), mode)
                runs = {}
                variants = [(f"{mode} values as f32", variant(f"{mode}-as-f32", lambda t: rounded_f32(t, dtype))),
                            (mode, variant(mode, store))]
                if mode == "bf16":
                    variants += [("f32", self.model), ("f64", variant("f64", to_f64))]
                for name, model in variants:
                    metrics = self.path(f"w-{mode}-{name}.jsonl".replace(" ", "_"))
                    tessera("train", plan, "--weights", model, "--data", self.tiny_data, "--steps", 2, "--lr", LR,
                            "--out", self.path(f"w-out-{mode}"), "--metrics", metrics)
                    runs[name] = losses_of(metrics)
                print(f"weights of every type, {mode} plan: {runs}", file=sys.stderr)
                if mode == "bf16":
                    self.assertEqual(runs["f64"], runs["f32"], "f64 weights convert like f32 ones")
                self.assertEqual(runs[mode], runs[f"{mode} values as f32"],
                                 f"{mode} weights are copied as the f32 weights of the same values are converted")


if __name__ == "__main__":
    common.main()
