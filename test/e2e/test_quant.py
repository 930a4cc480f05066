#!/usr/bin/python3
"""e2e: block-quantised frozen bases (`tessera compile --base-dtype q8_0|q4_0|tq2_0`) on lavapipe.

The three Hugging Face fixtures (Llama 3, Qwen 3, Gemma 3; dynamic dynamo
exports, whose linear weights are [in, out] initializers) in Q8_0 and Q4_0,
and a wider bundled-style Llama (hidden 256, MLP 512, [out, in] weights) in
TQ2_0 and Q4_0 - TQ2_0 blocks hold 256 input features, wider than any layer of
the 64-wide fixtures - and the 256-wide Qwen 3 / Gemma 3 exports
(test/fixtures/hf/{qwen3,gemma3}-wide) in TQ2_0 train from the same random
nonzero adapter as the reference:
test/reference/tiny_llama_torch.py in float32 with every linear weight but
lm_head replaced by its dequantised values, which
test/reference/ggml_quants.py (written from the GGUF format, checked against
llama.cpp's gguf-py in test_gguf.py) computes. Checked, per model and type:

* the plan: the 7 linear weights of every layer in the block type, blocked
  along their input features (`transposed` for the [in, out] initializers),
  the embedding, the norms and lm_head in f32; `tessera compile` reports the
  frozen-weight memory by type;
* per-step training losses within 1e-3 of the quantised reference, and
  closer to it than to the f32 reference (the quantisation took effect);
* a layer whose rows are not whole blocks keeps f32 and is named (TQ2_0 on
  the fixtures); a --generate plan refuses --base-dtype; bad types and
  overrides are one clear error; an override quantises lm_head or keeps a
  layer in f32; tuning plans offer no cooperative-matrix candidate for a
  quantised product;
* a GGUF base written by `tessera export --type q4_0|q8_0` (the wide Llama,
  whose q/k rows llama.cpp permutes; Qwen 3's [in, out] weights) as the
  frozen weights (`compile --weights BASE.gguf`, `train --weights
  BASE.gguf`): its blocks used as they are, the embedding decoded; the
  losses equal the reference on those dequantised tensors; another model's
  GGUF, another architecture, an unsupported tensor type and a file of
  other types are refused naming the tensor.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

import common
from common import losses_of, plan_manifest, ref, tessera

sys.path.insert(0, os.path.join(common.ROOT, "test", "reference"))
import ggml_quants  # noqa: E402

HF = os.path.join(common.ROOT, "test", "fixtures", "hf")
LAVAPIPE = os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")
BATCH, SEQ, RANK, ALPHA, STEPS, LR = 4, 32, 4, 8.0, 3, 5e-3
STEP_TOL = 1e-3
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def rms(xs):
    return math.sqrt(sum(x * x for x in xs) / len(xs))


def dequantized(weights, cfg, kind, keep=()):
    """The reference's weights with every linear layer but lm_head (and `keep`) dequantised."""
    out = dict(weights)
    for i in range(cfg["num_hidden_layers"]):
        for m in LINEARS:
            name = f"model.layers.{i}.{m}.weight"
            if m.split(".")[1] not in keep:
                out[name] = ggml_quants.dequantize(weights[name], kind)  # [out, in]: blocks along in
    return out


class Quantized(common.TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wide = common.make_model(os.path.join(cls.dir, "wide", "tiny-llama.onnx"), "--hidden", "256",
                                     "--intermediate", "512")
        cls.tiny_data = common.make_data(os.path.join(cls.dir, "tiny.jsonl"), SEQ, max_lines=16)
        hf_data = os.path.join(HF, "peft-qwen3", "data.jsonl")  # 16 lines of 32 tokens
        cls.models = {"wide": (cls.wide, cls.tiny_data)}
        for arch in ("llama", "qwen3", "gemma3"):
            cls.models[arch] = (os.path.join(HF, f"{arch}-dynamic", "model.onnx"), hf_data)
        for arch in ("qwen3", "gemma3"):  # 256-wide dynamic exports: every layer's rows are TQ2_0 blocks
            cls.models[f"{arch}-wide"] = (os.path.join(HF, f"{arch}-wide", "model.onnx"), hf_data)
        cls.refs = {}

    def reference(self, name):
        if name not in self.refs:
            model = self.models[name][0]
            cfg = ref.load_config(model)
            self.refs[name] = (cfg, ref.weights(model, cfg))
        return self.refs[name]

    def init_adapter(self, name):
        d = self.path(f"init-{name}")
        if not os.path.exists(d):
            cfg, _ = self.reference(name)
            ref.write_adapter(d, ref.random_adapter(cfg, RANK, ref.ALL_LINEAR, seed=21), RANK, ALPHA, ref.ALL_LINEAR)
        return d

    def compile_quant(self, name, plan, *flags):
        model = self.models[name][0]
        return tessera("compile", model, "-o", plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                       "--lora-alpha", ALPHA, "--lora-targets", "all-linear", "--profile", LAVAPIPE, *flags)

    def ref_train(self, name, weights, lines):
        cfg, _ = self.reference(name)
        adapters, _ = ref.read_adapter(self.init_adapter(name))
        lora = ref.lora_params(adapters, torch.float32, requires_grad=True)
        net = ref.TinyLlama(weights, cfg, torch.float32, "fp32")
        return ref.train(net, lines, BATCH, SEQ, lora, ALPHA / RANK, STEPS, LR, weight_decay=0.01)

    def train(self, name, plan, tag, weights=None):
        model, data = self.models[name]
        model = weights or model
        out, metrics = self.path(f"out-{tag}"), self.path(f"{tag}.jsonl")
        tessera("train", plan, "--weights", model, "--data", data, "--steps", STEPS, "--lr", LR,
                "--init-adapter", self.init_adapter(name), "--out", out, "--metrics", metrics)
        return losses_of(metrics)

    def run_model(self, name, kind):
        plan = self.path(f"{name}-{kind}.tplan")
        r = self.compile_quant(name, plan, "--base-dtype", kind)
        cfg, weights = self.reference(name)
        n_quant = 7 * cfg["num_hidden_layers"]
        self.assertRegex(r.stdout, rf"frozen weights .*\(f32 [0-9.]+ MiB in \d+ tensors, {kind} [0-9.]+ MiB in {n_quant} tensors\)")
        m = plan_manifest(plan)
        weights_by_dtype = {}
        for b in m["buffers"]:
            if b["kind"] == "weight" and "alias_of" not in b:
                weights_by_dtype.setdefault(b["dtype"], []).append(b)
        quant = weights_by_dtype.get(kind, [])
        self.assertEqual(len(quant), 7 * cfg["num_hidden_layers"], f"{name} {kind}: the linear weights")
        per = ggml_quants.BLOCK[kind]
        for b in quant:
            # [in, out] initializers of the dynamo exports are stored transposed (blocks along in).
            self.assertEqual(b.get("transposed", False), name != "wide", b["name"])
            rows, cols = b["shape"]
            n_in = rows if b.get("transposed") else cols
            self.assertEqual(b["bytes"], (rows * cols // per * ggml_quants.BLOCK_BYTES[kind] + 3) // 4 * 4)
            self.assertEqual(n_in % per, 0)
        self.assertEqual({b["dtype"] for bs in weights_by_dtype.values() for b in bs} - {kind}, {"f32"})
        for b in weights_by_dtype["f32"]:
            self.assertTrue(len(b["shape"]) == 1 or b["shape"][0] == cfg["vocab_size"] or b["shape"][1] == cfg["vocab_size"],
                            f"only norms, the embedding and lm_head stay f32: {b['name']} {b['shape']}")

        got = self.train(name, plan, f"{name}-{kind}")
        lines = ref.read_jsonl(self.models[name][1])
        want = self.ref_train(name, dequantized(weights, cfg, kind), lines)
        fp32 = self.ref_train(name, weights, lines)
        report = [f"{name} {kind}: step  tessera    quantised ref  f32 ref"]
        for k, (g, w, f) in enumerate(zip(got, want, fp32)):
            report.append(f"  {k + 1:2d}  {g:.6f}  {w:.6f} ({abs(g - w):.1e})  {f:.6f}")
        print("\n".join(report), file=sys.stderr)
        self.assertEqual(len(got), STEPS)
        for k, (g, w) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - w), STEP_TOL, f"step {k + 1}\n" + "\n".join(report))
        d_q = [g - w for g, w in zip(got, want)]
        d_f = [w - f for w, f in zip(want, fp32)]
        self.assertLess(rms(d_q), 0.5 * rms(d_f), "tessera is not closer to the quantised reference\n" + "\n".join(report))

    def test_llama_q8_0(self):
        self.run_model("llama", "q8_0")

    def test_llama_q4_0(self):
        self.run_model("llama", "q4_0")

    def test_qwen3_q8_0(self):
        self.run_model("qwen3", "q8_0")

    def test_qwen3_q4_0(self):
        self.run_model("qwen3", "q4_0")

    def test_gemma3_q8_0(self):
        self.run_model("gemma3", "q8_0")

    def test_gemma3_q4_0(self):
        self.run_model("gemma3", "q4_0")

    def test_wide_tq2_0(self):
        self.run_model("wide", "tq2_0")

    def test_wide_q4_0(self):
        self.run_model("wide", "q4_0")

    def test_qwen3_wide_tq2_0(self):
        self.run_model("qwen3-wide", "tq2_0")

    def test_gemma3_wide_tq2_0(self):
        self.run_model("gemma3-wide", "tq2_0")

    def test_rows_not_whole_blocks_stay_f32_and_are_named(self):
        plan = self.path("qwen3-tq2_0.tplan")
        r = self.compile_quant("qwen3", plan, "--base-dtype", "tq2_0")
        self.assertIn("layers.0.self_attn.q_proj ('val_145') stays in fp32, not tq2_0: its rows of 64 input features "
                      "are not whole blocks of 256", r.stderr)
        self.assertEqual({b["dtype"] for b in plan_manifest(plan)["buffers"] if b["kind"] == "weight"}, {"f32"})

    def test_overrides(self):
        # lm_head quantised on request, down_proj kept in f32: the plan and the trained losses say so.
        plan = self.path("llama-override.tplan")
        self.compile_quant("llama", plan, "--base-dtype", "q4_0", "--base-dtype-override", "lm_head=q8_0,down_proj=fp32")
        m = plan_manifest(plan)
        cfg, weights = self.reference("llama")
        dt = {}
        for b in m["buffers"]:
            if b["kind"] == "weight":
                dt.setdefault(b["dtype"], 0)
                dt[b["dtype"]] += 1
        L = cfg["num_hidden_layers"]
        self.assertEqual(dt.get("q4_0"), 6 * L)
        self.assertEqual(dt.get("q8_0"), 1, "lm_head")
        got = self.train("llama", plan, "llama-override")
        w = dequantized(weights, cfg, "q4_0", keep=("down_proj",))
        w["lm_head.weight"] = ggml_quants.dequantize(weights["lm_head.weight"], "q8_0")
        want = self.ref_train("llama", w, ref.read_jsonl(self.models["llama"][1]))
        for k, (g, x) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - x), STEP_TOL, f"step {k + 1}: {got} {want}")

    def gguf_base(self, name, kind):
        path = self.path(f"{name}-{kind}.gguf")
        if not os.path.exists(path):
            tessera("export", "--weights", self.models[name][0], "--gguf-base", path, "--type", kind,
                    "--context-length", 64)
        return path

    def run_gguf(self, name, kind):
        """A base written by our exporter (every 2-D tensor in `kind`, llama's q/k rows permuted) as the
        frozen weights: the linear layers and lm_head stay blocks, the embedding decodes into f32."""
        base = self.gguf_base(name, kind)
        plan = self.path(f"{name}-{kind}-gguf.tplan")
        r = self.compile_quant(name, plan, "--weights", base)
        cfg, weights = self.reference(name)
        L = cfg["num_hidden_layers"]
        self.assertIn(f"linear layers kept as blocks", r.stdout)
        m = plan_manifest(plan)
        tensors = {b["gguf"]["tensor"]: b for b in m["buffers"] if b["kind"] == "weight"}
        self.assertEqual(tensors["blk.0.attn_q.weight"]["dtype"], kind)
        self.assertEqual(tensors["token_embd.weight"]["dtype"], "f32")
        got = self.train(name, plan, f"{name}-{kind}-gguf", weights=base)
        w = dequantized(weights, cfg, kind)
        w["model.embed_tokens.weight"] = ggml_quants.dequantize(weights["model.embed_tokens.weight"], kind)
        if not cfg["tie_word_embeddings"]:
            self.assertEqual(tensors["output.weight"]["dtype"], kind)
            w["lm_head.weight"] = ggml_quants.dequantize(weights["lm_head.weight"], kind)
        want = self.ref_train(name, w, ref.read_jsonl(self.models[name][1]))
        for k, (g, x) in enumerate(zip(got, want)):
            self.assertLessEqual(abs(g - x), STEP_TOL, f"{name} {kind} from GGUF, step {k + 1}: {got} {want}")
        return base, plan

    def test_gguf_base_llama_permuted_q4_0(self):
        base, plan = self.run_gguf("wide", "q4_0")
        # The plan needs its GGUF: the ONNX file is refused, naming a tensor.
        r = tessera("train", plan, "--weights", self.models["wide"][0], "--data", self.tiny_data, "--steps", 1,
                    "--out", self.path("x"), check=False)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("the plan was compiled for a GGUF base (tensor names such as 'token_embd.weight'): pass "
                      "--weights BASE.gguf", r.stderr)

    def test_gguf_base_qwen3_q8_0(self):
        self.run_gguf("qwen3", "q8_0")

    def test_gguf_base_bad_input(self):
        q4 = self.gguf_base("wide", "q4_0")
        qwen = self.gguf_base("qwen3", "q8_0")
        def fails(model, base, *extra):
            r = tessera("compile", model, "-o", self.path("bad.tplan"), "--batch", 1, "--seq", 8, "--weights", base,
                        *extra, check=False)
            self.assertNotEqual(r.rc, 0, r.stdout)
            self.assertNotIn("Traceback", r.stderr)
            return r.stderr
        self.assertIn(f"{qwen}: general.architecture is 'qwen3', {self.models['llama'][0]} is a llama model",
                      fails(self.models["llama"][0], qwen))
        # Another llama (the bundled 128-wide one): the first tensor that differs is named.
        self.assertIn(f"{q4}: tensor 'token_embd.weight' has shape [256,256], '", fails(self.model, q4))
        self.assertIn("needs [256,128]: not this model's GGUF", fails(self.model, q4))
        self.assertIn("the GGUF's tensor types decide", fails(self.wide, q4, "--base-dtype", "q8_0"))
        self.assertIn("not a GGUF file", fails(self.wide, self.wide))
        # An unsupported tensor type: blk.0.attn_q.weight rewritten as Q4_K (ggml type 12).
        with open(q4, "rb") as f:
            data = bytearray(f.read())
        at = data.index(b"blk.0.attn_q.weight") + len(b"blk.0.attn_q.weight")
        n_dims = struct.unpack_from("<I", data, at)[0]
        struct.pack_into("<I", data, at + 4 + 8 * n_dims, 12)
        bad = self.path("q4k.gguf")
        with open(bad, "wb") as f:
            f.write(bytes(data))
        self.assertIn("tensor 'blk.0.attn_q.weight': ggml type 12 (Q4_K) is not supported", fails(self.wide, bad))
        # A plan of one GGUF trained on another type's file: the tensor and both types are named.
        plan = self.path("wide-q4-gguf2.tplan")
        self.compile_quant("wide", plan, "--weights", q4)
        q8 = self.gguf_base("wide", "q8_0")
        r = tessera("train", plan, "--weights", q8, "--data", self.tiny_data, "--steps", 1, "--out", self.path("y"),
                    check=False)
        self.assertNotEqual(r.rc, 0)
        self.assertIn(f"{q8}: tensor 'blk.0.attn_q.weight' is Q8_0, the plan stores it as q4_0", r.stderr)

    def test_tuning_plan_offers_coopmat_for_quantised_weights(self):
        # The tensor-core profile in f16: the quantised products (forward, f16 activations) get tensor-core
        # candidates, which dequantise while staging, besides SIMT ones; their reference kernel stays SIMT.
        out = self.path("wide-q4.ttune")
        tessera("compile", self.wide, "--tuning-plan", out, "--batch", BATCH, "--seq", SEQ, "--base-dtype", "q4_0",
                "--precision", "f16", "--profile", os.path.join(common.ROOT, "autotune", "profiles", "nvidia.json"),
                "--tune-candidates", 8)
        import ttune
        _, _, m, _ = ttune.read(out)
        quant = [p for p in m["problems"] if " as q4_0" in p["key"]]
        self.assertGreaterEqual(len(quant), 4)
        kinds = lambda cs: {c["config"]["matmul"]["kind"] for c in cs}
        self.assertIn("coopmat", kinds(c for p in quant for c in p["candidates"]))
        self.assertIn("tiled", kinds(c for p in quant for c in p["candidates"]))
        self.assertNotIn("coopmat", kinds(p["reference"] for p in quant))

    def test_bad_input(self):
        cases = [
            (["--base-dtype", "q5_k"], "--base-dtype = 'q5_k' is not q8_0, q4_0, tq2_0 or fp32"),
            (["--base-dtype", "f16"], "--base-dtype = f16: frozen weights are stored in the plan's precision (fp32) "
                                      "or block-quantised (q8_0, q4_0, tq2_0); for f16 storage compile with --precision f16"),
            (["--base-dtype", "q8_0", "--base-dtype-override", "down_proj"], "--base-dtype-override 'down_proj': "
                                                                            "expected LAYER=TYPE"),
            (["--base-dtype", "q8_0", "--generate"], "--base-dtype and --weights BASE.gguf are for training plans"),
        ]
        for flags, message in cases:
            with self.subTest(flags=flags):
                r = tessera("compile", self.models["llama"][0], "-o", self.path("bad.tplan"), "--batch", 1, "--seq",
                            8, *flags, check=False)
                self.assertNotEqual(r.rc, 0)
                self.assertIn(message, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
        # The embedding is gathered, not a linear layer: an override naming it says so.
        r = self.compile_quant("gemma3", self.path("gemma-embed.tplan"), "--base-dtype", "q8_0",
                               "--base-dtype-override", "embed_tokens=q8_0")
        self.assertIn("--base-dtype-override embed_tokens: no linear layer is named so", r.stderr)
        self.assertIn("the embedding is gathered and stays in fp32", r.stderr)


if __name__ == "__main__":
    common.main()
