"""tessera-raise end to end: `tessera inspect` on the Hugging Face fixtures
against their transformers configs, and structural LoRA names on anonymous
dynamo weights against a real PEFT adapter.

The fixtures (test/fixtures/hf/*) are torch.onnx dynamo exports whose linear
weights are anonymous initializers (val_159, stored [in, out]); the names
below come from the graph structure alone.
"""
import json
import os
import re
import unittest

import common
from common import ROOT, tessera
import safetensors_io

HF = os.path.join(ROOT, "test", "fixtures", "hf")
FIXTURES = ["llama-dynamic", "llama-static", "qwen3-dynamic", "qwen3-static", "gemma3-dynamic",
            "gemma3-static"]
PROJ = {"self_attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "mlp": ["gate_proj", "up_proj", "down_proj"]}


def parse_inspect(text):
    """`  key:   value` lines -> dict; linear layer lines -> list of (name, in, out, param)."""
    fields, linears = {}, []
    for line in text.splitlines():
        m = re.match(r"^  ([a-z/ ]+):\s+(.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^  (\S+)\s+\[(\d+) -> (\d+)\]\s+(\S+)", line)
        if m:
            linears.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return fields, linears



class InspectFixtures(unittest.TestCase):
    def check_fixture(self, fixture):
        with open(os.path.join(HF, fixture, "reference.json")) as f:
            ref = json.load(f)
        cfg = ref["config"]
        batch = ref["export_shape"][0] if ref["form"] == "static" else 2
        r = tessera("inspect", os.path.join(HF, fixture, "model.onnx"), "--batch", batch, "--seq", 16)
        fields, linears = parse_inspect(r.stdout)
        msg = r.describe()
        self.assertEqual(fields.get("architecture"), ref["arch"], msg)
        self.assertEqual(int(fields["layers"]), cfg["num_hidden_layers"], msg)
        self.assertEqual(int(fields["hidden size"]), cfg["hidden_size"], msg)
        self.assertEqual(int(fields["attention heads"]), cfg["num_attention_heads"], msg)
        self.assertEqual(int(fields["kv heads"].split()[0]), cfg["num_key_value_heads"], msg)
        self.assertEqual(int(fields["head dim"]), cfg["head_dim"], msg)
        self.assertEqual(int(fields["intermediate size"]), cfg["intermediate_size"], msg)
        self.assertEqual(int(fields["vocab size"]), cfg["vocab_size"], msg)
        self.assertTrue(fields["norm"].startswith("rms_norm"), msg)
        self.assertEqual(fields["q/k norm"], "no" if ref["arch"] == "llama" else "yes", msg)
        act = cfg.get("hidden_act") or cfg.get("hidden_activation")
        want_act = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh"}[act]
        self.assertEqual(fields["activation"].split()[0], want_act, msg)
        self.assertEqual(fields["tied embeddings"], "yes" if cfg["tie_word_embeddings"] else "no", msg)
        # Attention scale: 1/sqrt(head_dim), Gemma 3: 1/sqrt(query_pre_attn_scalar).
        scalar = cfg.get("query_pre_attn_scalar") or cfg["head_dim"]
        self.assertAlmostEqual(float(fields["attention scale"]), scalar ** -0.5, places=5, msg=msg)
        if ref["arch"] == "gemma3":
            self.assertAlmostEqual(float(fields["embedding scale"]), cfg["hidden_size"] ** 0.5, places=4)
            if ref["form"] == "dynamic":  # masks computed in the graph (static: baked initializers)
                want = ", ".join(
                    f"layer {i} " + (f"sliding window {cfg['sliding_window']}" if t == "sliding_attention"
                                     else "causal")
                    for i, t in enumerate(cfg["layer_types"]))
                self.assertEqual(fields["attention masks"], want, msg)
        # Every linear layer named structurally, in graph order, with its shape.
        h, kv, hd, inter = cfg["hidden_size"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]
        shapes = {"q_proj": (h, cfg["num_attention_heads"] * hd), "k_proj": (h, kv * hd),
                  "v_proj": (h, kv * hd), "o_proj": (cfg["num_attention_heads"] * hd, h),
                  "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
        want = [(f"layers.{i}.{blk}.{p}",) + shapes[p]
                for i in range(cfg["num_hidden_layers"]) for blk in ("self_attn", "mlp") for p in PROJ[blk]]
        want.append(("lm_head", h, cfg["vocab_size"]))
        self.assertEqual([l[:3] for l in linears], want, msg)
        self.assertTrue(all(l[3] for l in linears))
        self.assertIn("generic ops: none", r.stdout, msg)

    def test_fixtures(self):
        for fixture in FIXTURES:
            with self.subTest(fixture=fixture):
                self.check_fixture(fixture)

    def test_static_masks_at_another_length(self):
        """A static export re-specialised to 64 tokens: its masks are recomputed, Gemma's
        sliding window included (at the export length they are the baked initializers)."""
        for fixture, want in [("gemma3-static", "layer 0 sliding window 8, layer 1 causal"),
                              ("llama-static", "layer 0 causal, layer 1 causal")]:
            r = tessera("inspect", os.path.join(HF, fixture, "model.onnx"), "--batch", 2, "--seq", 64)
            fields, linears = parse_inspect(r.stdout)
            self.assertEqual(fields["attention masks"], want, r.describe())
            self.assertEqual(len(linears), 15, r.describe())
            r = tessera("inspect", os.path.join(HF, fixture, "model.onnx"), "--batch", 1, "--seq", 16)
            self.assertEqual(parse_inspect(r.stdout)[0]["attention masks"],
                             "layer 0 from an initializer, layer 1 from an initializer", r.describe())

    def test_bundled_model_names_agree(self):
        """The bundled TorchScript model keeps HF names: structure and names must agree."""
        with common.tempfile.TemporaryDirectory() as d:
            model = common.make_model(os.path.join(d, "tiny.onnx"))
            r = tessera("inspect", model, "--batch", 1, "--seq", 8)
            _, linears = parse_inspect(r.stdout)
            self.assertEqual(len(linears), 15, r.describe())
            for name, _, _, param in linears:
                self.assertEqual(param, ("model." if name != "lm_head" else "") + name + ".weight")

    def test_not_a_decoder(self):
        """A graph without decoder layers: one clear error line."""
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        with common.tempfile.TemporaryDirectory() as d:
            rng = np.random.default_rng(0)
            table = numpy_helper.from_array(rng.standard_normal((32, 8)).astype(np.float32), "embed.weight")
            head = numpy_helper.from_array(rng.standard_normal((8, 32)).astype(np.float32), "head.weight")
            g = helper.make_graph(
                [helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"], name="embed"),
                 helper.make_node("Tanh", ["h"], ["t"], name="squash"),
                 helper.make_node("MatMul", ["t", "head.weight"], ["logits"], name="head")],
                "bag_of_words",
                [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
                [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "t", 32])],
                [table, head])
            path = os.path.join(d, "bow.onnx")
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
            r = tessera("inspect", path, check=False)
            self.assertEqual(r.rc, 1, r.describe())
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.describe())
            self.assertIn("not a decoder language model", r.stderr, r.describe())


class PeftNamesOnDynamoWeights(common.TempDirTest):
    """LoRA on anonymous dynamo weights: adapter tensors named exactly as PEFT names them."""

    MODEL = os.path.join(HF, "qwen3-dynamic", "model.onnx")
    PEFT = os.path.join(HF, "peft-qwen3")

    def train_one_step(self, targets, out):
        plan = self.path(out + ".tplan")
        tessera("compile", self.MODEL, "-o", plan, "--batch", 4, "--seq", 32, "--lora-rank", 8,
                "--lora-alpha", 16, "--lora-targets", targets)
        metrics = self.path(out + ".jsonl")
        tessera("train", plan, "--weights", self.MODEL, "--data", os.path.join(self.PEFT, "data.jsonl"),
                "--steps", 1, "--out", self.path(out), "--metrics", metrics)
        with open(metrics) as f:
            first = json.loads(f.readline())
        return safetensors_io.load(self.path(out, "adapter_model.safetensors"))[0], first["loss"]

    def test_q_v_and_all_linear(self):
        with open(os.path.join(self.PEFT, "run.json")) as f:
            run = json.load(f)
        peft = safetensors_io.load(os.path.join(self.PEFT, "init", "adapter_model.safetensors"))[0]
        qv = {n: t for n, t in peft.items() if ".q_proj." in n or ".v_proj." in n}
        self.assertEqual(len(qv), 2 * 2 * 2)  # layers 0..1, q and v, A and B

        got, loss = self.train_one_step("q_proj,v_proj", "qv")
        self.assertEqual(sorted(got), sorted(qv))
        for n in qv:
            self.assertEqual(tuple(got[n].shape), tuple(qv[n].shape), n)
        # B starts at zero, so the first step's loss is the base model's: PEFT's step-1 loss
        # on the same first micro-batch (raised, then decomposed, graph numerics).
        self.assertLess(abs(loss - run["losses"][0]), 1e-4 * abs(run["losses"][0]))

        got, _ = self.train_one_step("all-linear", "all")
        self.assertEqual(sorted(got), sorted(peft))
        for n in peft:
            self.assertEqual(tuple(got[n].shape), tuple(peft[n].shape), n)


if __name__ == "__main__":
    common.main()
