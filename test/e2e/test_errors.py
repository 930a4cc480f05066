#!/usr/bin/python3
"""e2e (e): bad input gives exit code 1 and exactly one `error:` line on stderr,
never a signal, abort, uncaught exception or traceback.

Compile: missing / truncated / malformed ONNX, an unsupported op (a Det node;
the message names the node and the op type), an unknown LoRA target, batch 0.
Train / eval: data that is not JSON (names the line), a token id outside the
vocabulary (names the line), an empty data file, missing plan / weights /
data / adapter, an adapter of the wrong rank, truncated weights, no Vulkan
device, a plan file with a flipped byte or cut short.
Half precision: --precision f16/bf16 with a profile without 16-bit storage
(the built-in one) or an unknown precision; a weight of an integer or other
unsupported type (UINT8, INT4, STRING: named with its type) at compile and
in --weights at train; a device without the 16-bit features a plan needs
(TESSERA_HIDE_FEATURES); a plan of format version 1.
"""
import struct
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

import common
from common import TempDirTest, tessera

CRASH_MARKERS = ("Traceback", "terminate called", "Aborted", "Segmentation fault", "core dumped",
                 "Assertion", "LLVM ERROR", "PLEASE submit a bug report", "Stack dump")


def det_model(src, dst):
    """The bundled model with a Det node in layer 0's attention, used by the rest of the graph."""
    m = onnx.load(src)
    nodes = list(m.graph.node)
    idx = next(i for i, n in enumerate(nodes)
               if n.op_type == "Softmax" and n.name.startswith("/model/layers.0/"))
    sm = nodes[idx]
    scores = sm.input[0]
    new = [
        helper.make_node("Det", [scores], ["det_out"], name="/model/layers.0/self_attn/Det"),
        helper.make_node("Constant", [], ["det_zero"], name="det_zero_const",
                         value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Mul", ["det_out", "det_zero"], ["det_scaled"], name="det_mul"),
        helper.make_node("Constant", [], ["det_axes"], name="det_axes_const",
                         value=numpy_helper.from_array(np.array([2, 3], np.int64))),
        helper.make_node("Unsqueeze", ["det_scaled", "det_axes"], ["det_4d"], name="det_unsqueeze"),
        helper.make_node("Add", [scores, "det_4d"], ["det_scores"], name="det_add"),
    ]
    sm.input[0] = "det_scores"
    del m.graph.node[:]
    m.graph.node.extend(nodes[:idx] + new + nodes[idx:])
    onnx.checker.check_model(m)
    onnx.save(m, dst)
    return dst


class Errors(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", 1, "--seq", 16, "--lora-rank", 2,
                "--lora-alpha", 4, "--lora-targets", "q_proj,v_proj")
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), 16, max_lines=4)

    def expect_error(self, *args, env=None, pattern=None, contains=()):
        r = tessera(*args, env=env, check=False, timeout=120)
        info = r.describe()
        self.assertGreaterEqual(r.rc, 0, "killed by a signal:\n" + info)
        self.assertEqual(r.rc, 1, "exit code is not 1:\n" + info)
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        self.assertEqual(len(errors), 1, "not exactly one 'error:' line:\n" + info)
        for marker in CRASH_MARKERS:
            self.assertNotIn(marker, r.stderr + r.stdout, info)
        msg = errors[0]
        self.assertGreater(len(msg.strip()), len("error:") + 5, "empty error message:\n" + info)
        if pattern:
            self.assertRegex(msg, pattern, info)
        for c in contains:
            self.assertIn(c, msg, info)
        return msg

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

    def train(self, *extra, plan=None, weights=None, data=None, env=None, **kw):
        return self.expect_error("train", plan or self.plan, "--weights", weights or self.model, "--data",
                                 data or self.data, "--steps", 1, "--out", self.path("out"), *extra, env=env, **kw)

    # ------------------------------------------------------------------ compile

    def test_compile_missing_model(self):
        self.expect_error("compile", self.path("no-such-model.onnx"), "-o", self.path("x.tplan"),
                          contains=("no-such-model.onnx",))

    def test_compile_truncated_onnx(self):
        with open(self.model, "rb") as f:
            raw = f.read()
        p = self.write("truncated.onnx", raw[: len(raw) // 2])
        self.expect_error("compile", p, "-o", self.path("x.tplan"))

    def test_compile_malformed_onnx(self):
        p = self.write("garbage.onnx", b"\xff\xfe this is not an ONNX protobuf \x00\x01\x02" * 40)
        self.expect_error("compile", p, "-o", self.path("x.tplan"))

    def test_compile_unsupported_op(self):
        p = det_model(self.model, self.path("det.onnx"))
        msg = self.expect_error("compile", p, "-o", self.path("x.tplan"))
        self.assertIn("Det", msg)
        self.assertIn("/model/layers.0/self_attn/Det", msg)
        self.assertFalse(os.path.exists(self.path("x.tplan")), "a plan was written despite the error")

    def test_compile_unknown_lora_target(self):
        self.expect_error("compile", self.model, "-o", self.path("y.tplan"), "--lora-targets", "nonsense_proj",
                          contains=("nonsense_proj",))

    def test_compile_lora_layers_and_dropout(self):
        # --lora-layers keeps the named decoder layers (the bundled model has 2).
        r = tessera("compile", self.model, "-o", self.path("l1.tplan"), "--batch", 1, "--seq", 16,
                    "--lora-targets", "all-linear", "--lora-layers", "1")
        self.assertIn("7 LoRA adapters", r.stdout + r.stderr)
        self.expect_error("compile", self.model, "-o", self.path("l.tplan"), "--lora-layers", "0,7",
                          contains=("--lora-layers", "no decoder layer 7"))
        self.expect_error("compile", self.model, "-o", self.path("l.tplan"), "--lora-layers", "two",
                          contains=("'two'",))
        self.expect_error("compile", self.model, "-o", self.path("d.tplan"), "--lora-dropout", 1,
                          contains=("--lora-dropout", "[0, 1)"))

    def test_compile_zero_batch(self):
        self.expect_error("compile", self.model, "-o", self.path("z.tplan"), "--batch", 0)

    # ------------------------------------------------------------------ data

    def test_data_not_json(self):
        lines = ['{"input_ids": [1, 2, 3, 4]}', '{"input_ids": [5, 6, 7]}', '{"input_ids": [8, 9,', '{"input_ids": [1]}']
        p = self.write("bad.jsonl", "\n".join(lines) + "\n")
        self.train(data=p, pattern=r"(:|line )3\b")

    def test_token_out_of_vocab(self):
        lines = ['{"input_ids": [1, 2, 3, 4]}', '{"input_ids": [5, 300, 7]}', '{"input_ids": [8, 9]}']
        p = self.write("oov.jsonl", "\n".join(lines) + "\n")
        self.train(data=p, pattern=r"(:|line )2\b", contains=("300",))
        self.expect_error("eval", self.plan, "--weights", self.model, "--data", p, pattern=r"(:|line )2\b")

    def test_empty_data(self):
        self.train(data=self.write("empty.jsonl", ""))

    # ------------------------------------------------------------------ files

    def test_missing_files(self):
        self.train(plan=self.path("missing.tplan"), contains=("missing.tplan",))
        self.train(weights=self.path("missing.onnx"), contains=("missing.onnx",))
        self.train(data=self.path("missing.jsonl"), contains=("missing.jsonl",))
        self.train("--init-adapter", self.path("missing-adapter"), contains=("missing-adapter",))
        self.expect_error("eval", self.path("missing.tplan"), "--weights", self.model, "--data", self.data)

    def test_truncated_weights(self):
        with open(self.model, "rb") as f:
            raw = f.read()
        p = self.write("cut.onnx", raw[: len(raw) * 2 // 3])
        self.train(weights=p)

    def test_adapter_wrong_rank(self):
        ad = self.path("rank8")
        common.reference("random-adapter", "--model", self.model, "--rank", 8, "--targets", "q_proj,v_proj",
                         "--out", ad)
        self.train("--init-adapter", ad)

    def test_no_vulkan_device(self):
        env = {"VK_ICD_FILENAMES": "/nonexistent", "VK_DRIVER_FILES": "/nonexistent"}
        self.train(env=env)
        self.expect_error("eval", self.plan, "--weights", self.model, "--data", self.data, env=env)

    def test_plan_flipped_byte(self):
        with open(self.plan, "rb") as f:
            raw = bytearray(f.read())
        for i, pos in enumerate([len(raw) // 2, len(raw) - 1, len(raw) // 3 + 7]):
            bad = bytearray(raw)
            bad[pos] ^= 0x10
            p = self.write(f"flipped{i}.tplan", bytes(bad))
            self.train(plan=p)
        self.train(plan=self.write("short.tplan", bytes(raw[: len(raw) // 2])))
        self.train(plan=self.write("notaplan.tplan", b"hello\n"))

    # ------------------------------------------------------------------ half precision

    def bad_weight(self, kind, name="model.layers.0.self_attn.q_proj.weight"):
        """The bundled model with one weight stored as UINT8 codes, INT4 or STRING."""
        m = onnx.load(self.model)
        t = next(t for t in m.graph.initializer if t.name == name)
        n = int(np.prod(t.dims))
        dims = list(t.dims)
        if kind == "UINT8":
            t.CopyFrom(numpy_helper.from_array(np.zeros(dims, np.uint8), name))
        else:
            t.Clear()
            t.name = name
            t.dims.extend(dims)
            if kind == "INT4":
                t.data_type, t.raw_data = 22, bytes((n + 1) // 2)  # ONNX 1.16's INT4
            else:
                t.data_type = onnx.TensorProto.STRING
                t.string_data.extend([b"x"] * n)
        d = self.path(f"weights-{kind}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "model.onnx")
        onnx.save(m, p)
        return p

    def test_precision_needs_16bit_storage(self):
        for mode in ("f16", "bf16"):
            self.expect_error("compile", self.model, "-o", self.path("h.tplan"), "--precision", mode,
                              contains=(f"--precision {mode}", "storage16", "profile 'default'", "--precision fp32"))
        self.expect_error("compile", self.model, "-o", self.path("h.tplan"), "--precision", "fp8",
                          contains=("--precision", "'fp8'", "fp32, f16 or bf16"))
        self.assertFalse(os.path.exists(self.path("h.tplan")))

    def test_weight_of_unsupported_type(self):
        name = "model.layers.0.self_attn.q_proj.weight"
        for kind in ("UINT8", "INT4", "STRING"):
            model = self.bad_weight(kind)
            with self.subTest(kind=kind, at="compile"):
                self.expect_error("compile", model, "-o", self.path("w.tplan"), contains=(f"'{name}'", kind))
            with self.subTest(kind=kind, at="train"):
                # A plan compiled from the good model, the weights from this one.
                self.train(weights=model, contains=(f"initializer '{name}'", kind,
                                                    "weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE"))

    def test_device_without_16bit_features(self):
        lavapipe = os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")
        plans = {}
        for mode in ("f16", "bf16"):
            plans[mode] = self.path(f"{mode}.tplan")
            tessera("compile", self.model, "-o", plans[mode], "--batch", 1, "--seq", 16, "--lora-rank", 2,
                    "--lora-targets", "q_proj", "--profile", lavapipe, "--precision", mode)
        # What each plan needs (its features) against what the device seems to lack.
        for mode, hidden, vk in (("f16", "storage16", "storageBuffer16BitAccess"), ("f16", "float16", "shaderFloat16"),
                                 ("bf16", "int16", "shaderInt16"), ("bf16", "storage16", "storageBuffer16BitAccess")):
            with self.subTest(mode=mode, hidden=hidden):
                env = {"TESSERA_HIDE_FEATURES": hidden}
                self.train(plan=plans[mode], env=env,
                           contains=(f"precision {mode}", vk, "device 0", "--precision fp32"))
                self.expect_error("eval", plans[mode], "--weights", self.model, "--data", self.data, env=env,
                                  contains=(vk,))
        # An fp32 plan needs none of them.
        r = tessera("eval", self.plan, "--weights", self.model, "--data", self.data,
                    env={"TESSERA_HIDE_FEATURES": "float16,int16,storage16,int8"})
        common.parse_eval(r)

    def test_plan_format_version_1(self):
        with open(self.plan, "rb") as f:
            raw = bytearray(f.read())
        self.assertEqual(struct.unpack("<I", raw[8:12])[0], 2)
        raw[8:12] = struct.pack("<I", 1)  # the header of a plan written before half precision
        p = self.write("v1.tplan", bytes(raw))
        for cmd in ("train", "eval"):
            args = [p, "--weights", self.model, "--data", self.data] + (["--steps", 1, "--out", self.path("o")]
                                                                         if cmd == "train" else [])
            self.expect_error(cmd, *args, contains=("v1.tplan", "plan format version 1", "reads version 2",
                                                    "recompile the plan with this version"))


if __name__ == "__main__":
    common.main()
