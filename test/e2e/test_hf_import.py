#!/usr/bin/python3
"""e2e: real Hugging Face exports (test/fixtures/hf) import, evaluate and train.

For Llama 3, Qwen 3 and Gemma 3, each exported statically (at [1,16]: shapes,
RoPE tables and masks baked in) and dynamically: `tessera compile --batch 2
--seq T` then `tessera eval` on the two reference rows cut to T tokens equals
transformers' float64 loss (reference.json, computed on the export machine) to
1e-4 relative, for T = 16 (the export length) and 64 (static graphs
re-specialised: RoPE tables and causal / sliding-window masks regenerated).
Then 30 steps of LoRA training on one export per architecture lower the eval
loss on the training data.

Bad input, each one clear `error:` line and exit code 1: a truncated model, a
missing external data file, external data offset / length out of range or
wrong, ops outside the supported set (all collected, the first few named,
and the count), a graph input that is not token ids (float, rank 3), opset
too old / too new, and a static export whose baked RoPE table or mask does not
verify when re-specialised.
"""
import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

import common
from common import parse_eval, tessera

ROOT = common.ROOT
HF = os.path.join(ROOT, "test", "fixtures", "hf")
ARCHS = ["llama", "qwen3", "gemma3"]
FORMS = ["static", "dynamic"]
LENGTHS = [16, 64]
BATCH, TOL = 2, 1e-4
# One export per architecture for training; static ones are re-specialised to seq 32.
TRAIN = {"llama": "static", "qwen3": "dynamic", "gemma3": "static"}
TRAIN_SEQ, TRAIN_BATCH, TRAIN_STEPS, TRAIN_LR = 32, 4, 30, 1e-2


def fixture(arch, form):
    d = os.path.join(HF, f"{arch}-{form}")
    with open(os.path.join(d, "reference.json")) as f:
        return os.path.join(d, "model.onnx"), json.load(f)


class HfImport(common.TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls._tmp = common.tempfile.mkdtemp(prefix="tessera-e2e-hf-")
        cls.dir = cls._tmp

    def eval_loss(self, model, ids, seq, tag):
        data = self.path(f"{tag}.jsonl")
        with open(data, "w") as f:
            for row in ids:
                f.write(json.dumps({"input_ids": row[:seq]}) + "\n")
        plan = self.path(f"{tag}.tplan")
        tessera("compile", model, "-o", plan, "--batch", BATCH, "--seq", seq)
        return parse_eval(tessera("eval", plan, "--weights", model, "--data", data))

    def test_eval_matches_transformers(self):
        for arch in ARCHS:
            for form in FORMS:
                model, ref = fixture(arch, form)
                for seq in LENGTHS:
                    with self.subTest(arch=arch, form=form, seq=seq):
                        loss, tokens = self.eval_loss(model, ref["ids"], seq, f"{arch}-{form}-{seq}")
                        want = ref["losses"][str(seq)]
                        self.assertEqual(tokens, BATCH * (seq - 1))
                        rel = abs(loss - want) / want
                        print(f"{arch}-{form} T={seq}: tessera {loss:.7f} transformers {want:.7f} rel {rel:.1e}",
                              file=common.sys.stderr)
                        self.assertLess(rel, TOL, f"{arch}-{form} T={seq}: tessera {loss} vs transformers {want}")

    def test_lora_training_lowers_loss(self):
        data = os.path.join(HF, "peft-qwen3", "data.jsonl")  # 16 learnable lines of 32 tokens
        for arch, form in TRAIN.items():
            with self.subTest(arch=arch, form=form):
                model, _ = fixture(arch, form)
                plan, out = self.path(f"train-{arch}.tplan"), self.path(f"adapter-{arch}")
                tessera("compile", model, "-o", plan, "--batch", TRAIN_BATCH, "--seq", TRAIN_SEQ,
                        "--lora-rank", 8, "--lora-alpha", 16, "--lora-targets", "all-linear")
                before, tokens = parse_eval(tessera("eval", plan, "--weights", model, "--data", data))
                self.assertEqual(tokens, 16 * (TRAIN_SEQ - 1))
                tessera("train", plan, "--weights", model, "--data", data, "--steps", TRAIN_STEPS,
                        "--lr", TRAIN_LR, "--out", out)
                after, _ = parse_eval(tessera("eval", plan, "--weights", model, "--data", data,
                                              "--init-adapter", out))
                print(f"{arch}-{form} LoRA {TRAIN_STEPS} steps: eval loss {before:.4f} -> {after:.4f}",
                      file=common.sys.stderr)
                self.assertLess(after, before - 0.5, f"{arch}-{form}: eval loss {before} -> {after}")


class HfImportErrors(common.TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls._tmp = common.tempfile.mkdtemp(prefix="tessera-e2e-hf-errors-")
        cls.dir = cls._tmp

    def variant(self, name, src="qwen3-dynamic", edit=None, inline=False, copy_data=True):
        """A copy of a fixture in its own directory, optionally edited (onnx ModelProto)."""
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        srcdir = os.path.join(HF, src)
        m = onnx.load(os.path.join(srcdir, "model.onnx"), load_external_data=inline)
        if edit:
            edit(m)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(m.SerializeToString())
        if copy_data and not inline:
            shutil.copy(os.path.join(srcdir, "model.onnx.data"), d)
        return os.path.join(d, "model.onnx")

    def expect_error(self, model, *contains, seq=16):
        r = tessera("compile", model, "-o", self.path("x.tplan"), "--batch", 2, "--seq", seq, check=False)
        info = r.describe()
        self.assertEqual(r.rc, 1, info)
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        self.assertEqual(len(errors), 1, "not exactly one 'error:' line:\n" + info)
        for c in contains:
            self.assertIn(c, errors[0], info)
        return errors[0]

    def external_initializer(self, m):
        return next(t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL
                    and len(t.dims) == 2)

    def set_external(self, t, key, value):
        for e in t.external_data:
            if e.key == key:
                e.value = str(value)

    def test_truncated_model(self):
        d = self.path("truncated")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(HF, "qwen3-dynamic", "model.onnx"), "rb") as f:
            raw = f.read()
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(raw[: len(raw) // 2])
        self.expect_error(os.path.join(d, "model.onnx"), "not a valid ONNX model")

    def test_missing_external_data(self):
        self.expect_error(self.variant("nodata", copy_data=False), "external data file 'model.onnx.data' not found")

    def test_external_offset_and_length(self):
        size = os.path.getsize(os.path.join(HF, "qwen3-dynamic", "model.onnx.data"))
        names = {}

        def past_end(m):
            t = self.external_initializer(m)
            names["offset"] = t.name
            self.set_external(t, "offset", size - 8)

        def wrong_length(m):
            t = self.external_initializer(m)
            names["length"] = t.name
            self.set_external(t, "length", 12)

        msg = self.expect_error(self.variant("offset", edit=past_end), "is past the end of 'model.onnx.data'")
        self.assertIn(f"initializer '{names['offset']}'", msg)
        msg = self.expect_error(self.variant("length", edit=wrong_length), "external data length 12 does not match")
        self.assertIn(f"initializer '{names['length']}'", msg)

    def test_unsupported_ops_all_listed(self):
        renamed = []

        def edit(m):
            new = {"Softmax": "Hardmax", "Sigmoid": "Det", "Neg": "Shrink"}
            for n in m.graph.node:
                if n.op_type in new:
                    n.op_type = new[n.op_type]
                    renamed.append(n)
        msg = self.expect_error(self.variant("unsupported", edit=edit), f"{len(renamed)} nodes use an unsupported op")
        self.assertGreater(len(renamed), 4)
        for n in renamed[:4]:
            self.assertIn(f"node '{n.name}' ({n.op_type})", msg)
        self.assertIn(f"and {len(renamed) - 4} more", msg)

    def test_input_not_token_ids(self):
        def to_float(m):
            m.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT

        def rank3(m):
            m.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 4
        self.expect_error(self.variant("float_input", edit=to_float),
                          "graph input 'input_ids' is not supported", "got FLOAT of rank 2")
        self.expect_error(self.variant("rank3_input", edit=rank3),
                          "graph input 'input_ids' is not supported", "got INT64 of rank 3")

    def test_opset_range(self):
        for v in (12, 19):
            def edit(m, v=v):
                m.opset_import[0].version = v
            self.expect_error(self.variant(f"opset{v}", edit=edit), f"default-domain opset {v} is not supported")

    def test_static_table_that_does_not_verify(self):
        def bad(name, where):
            def edit(m):
                t = next(t for t in m.graph.initializer if t.name == name)
                a = numpy_helper.to_array(t).copy()
                a[where] = 0.5 if name.startswith("unsqueeze") else 0.0
                t.CopyFrom(numpy_helper.from_array(a, name))
            return edit
        # A RoPE cos entry off by a little, a future key opened in the sliding-window mask.
        msg = self.expect_error(self.variant("badrope", "gemma3-static", bad("unsqueeze_31", (0, 0, 7, 3)), inline=True),
                                "initializer 'unsqueeze_31' [1,1,16,16]", "export the model with dynamic shapes",
                                seq=64)
        self.assertIn("entry [7,3]", msg)
        msg = self.expect_error(self.variant("badmask", "gemma3-static", bad("val_277", (0, 0, 3, 9)), inline=True),
                                "initializer 'val_277' [1,1,16,16]", "export the model with dynamic shapes", seq=64)
        # The unmodified fixture re-specialises (the eval test checks its numbers).
        r = tessera("compile", self.variant("good", "gemma3-static", inline=True), "-o", self.path("g.tplan"),
                    "--batch", 2, "--seq", 64)
        self.assertEqual(r.rc, 0)


if __name__ == "__main__":
    common.main()
