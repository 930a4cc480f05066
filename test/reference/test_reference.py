#!/usr/bin/python3
"""Self-checks of the generators (scripts/make_tiny_model.py, scripts/make_data.py)
and of the PyTorch reference (tiny_llama_torch.py) that the e2e tests compare
Tessera against. Needs no Tessera binary.

    /usr/bin/python3 test/reference/test_reference.py [-v]
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, HERE)
import onnx_numpy_eval  # noqa: E402
import safetensors_io  # noqa: E402
import tiny_llama_torch as R  # noqa: E402

PY = sys.executable


def run(*args):
    r = subprocess.run([PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


class Fixture:
    tmp = None

    @classmethod
    def get(cls):
        if cls.tmp is None:
            cls.tmp = tempfile.TemporaryDirectory(prefix="tessera-ref-")
            d = cls.tmp.name
            run(os.path.join(SCRIPTS, "make_tiny_model.py"), "--out", os.path.join(d, "m.onnx"))
            run(os.path.join(SCRIPTS, "make_tiny_model.py"), "--out", os.path.join(d, "ext"), "--external-data")
            run(os.path.join(SCRIPTS, "make_data.py"), "--out", os.path.join(d, "data32.jsonl"), "--seq", "32")
            cls.model = os.path.join(d, "m.onnx")
            cls.ext = os.path.join(d, "ext", "tiny-llama.onnx")
            cls.data = os.path.join(d, "data32.jsonl")
            cls.cfg = R.load_config(cls.model)
            cls.weights = R.load_onnx_weights(cls.model)
            cls.net = R.TinyLlama(cls.weights, cls.cfg)
            cls.lines = R.read_jsonl(cls.data)
        return cls


class TestModelFile(unittest.TestCase):
    def setUp(self):
        self.f = Fixture.get()

    def test_structure(self):
        m = onnx.load(self.f.model)
        onnx.checker.check_model(m)
        self.assertEqual(m.ir_version, 8)
        self.assertEqual([(o.domain, o.version) for o in m.opset_import], [("", 17)])
        (inp,) = m.graph.input
        self.assertEqual(inp.name, "input_ids")
        self.assertEqual(inp.type.tensor_type.elem_type, onnx.TensorProto.INT64)
        self.assertEqual([d.dim_param for d in inp.type.tensor_type.shape.dim], ["batch", "seq"])
        (out,) = m.graph.output
        self.assertEqual(out.name, "logits")
        dims = out.type.tensor_type.shape.dim
        self.assertEqual((dims[0].dim_param, dims[1].dim_param, dims[2].dim_value), ("batch", "seq", 256))
        names = {t.name: tuple(t.dims) for t in m.graph.initializer}
        self.assertEqual(names["model.embed_tokens.weight"], (256, 128))
        self.assertEqual(names["lm_head.weight"], (256, 128))
        self.assertEqual(names["model.layers.1.self_attn.q_proj.weight"], (128, 128))
        self.assertEqual(names["model.layers.1.self_attn.k_proj.weight"], (64, 128))
        self.assertEqual(names["model.layers.0.self_attn.v_proj.weight"], (64, 128))
        self.assertEqual(names["model.layers.0.self_attn.o_proj.weight"], (128, 128))
        self.assertEqual(names["model.layers.0.mlp.gate_proj.weight"], (352, 128))
        self.assertEqual(names["model.layers.0.mlp.down_proj.weight"], (128, 352))
        self.assertEqual(names["model.rotary_emb.inv_freq"], (16,))
        # The position-dependent values are computed from the input shape, not baked in.
        ops = {n.op_type for n in m.graph.node}
        for op in ("Shape", "Range", "Cos", "Sin", "Softmax", "ReduceMean", "Expand"):
            self.assertIn(op, ops)
        norm = self.f.weights["model.layers.0.input_layernorm.weight"]
        self.assertGreater(float(np.std(norm)), 0.05)  # not all ones: a misplaced norm weight is visible

    def test_deterministic(self):
        with tempfile.TemporaryDirectory() as d:
            run(os.path.join(SCRIPTS, "make_tiny_model.py"), "--out", os.path.join(d, "x.onnx"))
            with open(os.path.join(d, "x.onnx"), "rb") as a, open(self.f.model, "rb") as b:
                self.assertEqual(a.read(), b.read())
            run(os.path.join(SCRIPTS, "make_tiny_model.py"), "--out", os.path.join(d, "y.onnx"), "--seed", "1")
            w1 = R.load_onnx_weights(os.path.join(d, "y.onnx"))
            self.assertFalse(np.array_equal(w1["lm_head.weight"], self.f.weights["lm_head.weight"]))

    def test_external_data_same_weights(self):
        self.assertTrue(os.path.exists(self.f.ext + ".data"))
        self.assertLess(os.path.getsize(self.f.ext), 200_000)  # weights are not embedded
        m = onnx.load(self.f.ext, load_external_data=False)
        self.assertTrue(all(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer))
        w = R.load_onnx_weights(self.f.ext)
        self.assertEqual(set(w), set(self.f.weights))
        for k, v in self.f.weights.items():
            np.testing.assert_array_equal(w[k], v)

    def test_graph_matches_reference(self):
        """The ONNX graph (numpy interpreter) computes the reference's function, for two shapes."""
        m = onnx.load(self.f.model)
        rng = np.random.default_rng(3)
        for shape in [(2, 17), (1, 40)]:
            ids = rng.integers(0, 256, size=shape)
            ref = self.f.net.forward(torch.tensor(ids)).numpy()
            got64 = onnx_numpy_eval.run(m, {"input_ids": ids}, np.float64)["logits"]
            got32 = onnx_numpy_eval.run(m, {"input_ids": ids})["logits"]
            self.assertEqual(got64.shape, shape + (256,))
            self.assertLess(np.abs(got64 - ref).max(), 1e-7)  # only inv_freq is float32 in the graph
            self.assertLess(np.abs(got32 - ref).max(), 1e-5)
            self.assertGreater(np.abs(ref).max(), 0.1)  # logits are not trivially zero


class TestReference(unittest.TestCase):
    def setUp(self):
        self.f = Fixture.get()

    def test_float32_equals_float64_zero_adapter(self):
        net32 = R.TinyLlama(self.f.weights, self.f.cfg, torch.float32)
        l64, n64 = R.eval_loss(self.f.net, self.f.lines[:12], 4, 32)
        l32, n32 = R.eval_loss(net32, self.f.lines[:12], 4, 32)
        self.assertEqual(n64, n32)
        self.assertLess(abs(l64 - l32) / l64, 1e-5)
        # A zero-B adapter changes nothing.
        ad = R.random_adapter(self.f.cfg, 4, R.ALL_LINEAR, 0)
        zero = {m: (a, np.zeros_like(b)) for m, (a, b) in ad.items()}
        lz, _ = R.eval_loss(self.f.net, self.f.lines[:12], 4, 32, R.lora_params(zero), 4.0)
        self.assertAlmostEqual(lz, l64, places=12)
        lr_, _ = R.eval_loss(self.f.net, self.f.lines[:12], 4, 32, R.lora_params(ad), 4.0)
        self.assertGreater(abs(lr_ - l64), 1e-4)  # a nonzero adapter does change the loss
        self.assertTrue(4.5 < l64 < 6.5, l64)  # close to ln(256) for a random tiny model

    def test_loss_matches_manual_cross_entropy(self):
        ids = torch.tensor([[5, 9, 200, 7, 0, 0], [1, 2, 3, 4, 5, 6]])
        labels = torch.tensor([[5, 9, 200, 7, -100, -100], [-100, -100, -100, 4, 5, 6]])
        logits = self.f.net.forward(ids)
        s, n = R.causal_lm_loss_sum(logits, labels)
        logp = torch.log_softmax(logits, -1)
        terms = [-logp[0, 0, 9], -logp[0, 1, 200], -logp[0, 2, 7], -logp[1, 2, 4], -logp[1, 3, 5], -logp[1, 4, 6]]
        self.assertEqual(n, 6)
        self.assertAlmostEqual(float(s), float(sum(terms)), places=10)

    def test_causality(self):
        ids = torch.tensor([[10, 20, 30, 40, 50]])
        ids2 = ids.clone()
        ids2[0, 4] = 99
        a, b = self.f.net.forward(ids), self.f.net.forward(ids2)
        self.assertLess(float((a[0, :4] - b[0, :4]).abs().max()), 1e-12)
        self.assertGreater(float((a[0, 4] - b[0, 4]).abs().max()), 1e-6)

    def test_batching(self):
        lines = [([1, 2, 3, 4], [1, 2, 3, 4]), ([5, 6, 7, 8, 9, 10, 11], [-100, -100, 7, 8, 9, 10, 11]),
                 ([12, 13], [12, 13])]
        ids, labels = R.train_batch(lines, 1, 2, 5)  # lines 2, 0
        self.assertEqual(ids.tolist(), [[12, 13, 0, 0, 0], [1, 2, 3, 4, 0]])
        self.assertEqual(labels.tolist(), [[12, 13, -100, -100, -100], [1, 2, 3, 4, -100]])
        ids, labels = R.train_batch(lines, 0, 2, 5)
        self.assertEqual(ids.tolist()[1], [5, 6, 7, 8, 9])  # truncated
        self.assertEqual(labels.tolist()[1], [-100, -100, 7, 8, 9])
        batches = list(R.eval_batches(lines, 2, 5))
        self.assertEqual(len(batches), 2)
        self.assertEqual(batches[1][1].tolist()[1], [-100] * 5)  # padding row
        # Eval loss does not depend on the batch size (padding rows count nothing).
        l1, n1 = R.eval_loss(self.f.net, self.f.lines[:7], 1, 32)
        l3, n3 = R.eval_loss(self.f.net, self.f.lines[:7], 3, 32)
        self.assertEqual(n1, n3)
        self.assertAlmostEqual(l1, l3, places=12)

    def test_grads_match_finite_differences(self):
        ad = R.random_adapter(self.f.cfg, 4, ["q_proj", "v_proj", "down_proj"], 7, b_std=0.05)
        lines = self.f.lines[:2]
        scale = 2.0
        lora = R.lora_params(ad, requires_grad=True)
        loss, n, grads = R.first_batch_grads(self.f.net, lines, 2, 24, lora, scale)
        self.assertGreater(n, 0)
        ids, labels = R.train_batch(lines, 0, 2, 24)
        rng = np.random.default_rng(0)
        checked = 0
        for module, factor in [("layers.0.self_attn.q_proj", 0), ("layers.1.mlp.down_proj", 1),
                               ("layers.0.self_attn.v_proj", 1), ("layers.1.self_attn.v_proj", 0)]:
            g = grads[f"{module}.lora_{'AB'[factor]}.grad"]
            self.assertGreater(np.abs(g).max(), 0)  # A grads are nonzero because B is
            # the largest entry and a random one
            flat = [int(np.argmax(np.abs(g))), int(rng.integers(g.size))]
            for k in flat:
                idx = np.unravel_index(k, g.shape)
                vals = []
                for h in (1e-6, -1e-6):
                    pert = {m: (a.detach().clone(), b.detach().clone()) for m, (a, b) in lora.items()}
                    with torch.no_grad():
                        pert[module][factor][idx] += h
                        vals.append(float(R.batch_loss(self.f.net, ids, labels, pert, scale)[0]))
                fd = (vals[0] - vals[1]) / 2e-6
                self.assertLess(abs(fd - g[idx]), 1e-6 * max(1.0, abs(fd)) + 1e-3 * abs(fd),
                                f"{module} {'AB'[factor]}{idx}: autograd {g[idx]} vs fd {fd}")
                checked += 1
        self.assertEqual(checked, 8)

    def test_train_reduces_loss(self):
        ad = R.random_adapter(self.f.cfg, 4, ["q_proj", "v_proj", "o_proj", "down_proj"], 1)
        lora = R.lora_params(ad, requires_grad=True)
        lines = self.f.lines[:8]
        losses = R.train(self.f.net, lines, 4, 32, lora, 2.0, 16, 3e-3)
        self.assertEqual(len(losses), 16)
        self.assertLess(np.mean(losses[-4:]), np.mean(losses[:4]) - 0.05)


class TestFiles(unittest.TestCase):
    def setUp(self):
        self.f = Fixture.get()

    def test_safetensors_roundtrip(self):
        t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1.5], np.float32),
             "i": np.array([[1, -2]], np.int64)}
        raw = safetensors_io.dumps(t, {"k": "v"})
        n = int.from_bytes(raw[:8], "little")
        self.assertEqual((8 + n) % 8, 0)
        header = json.loads(raw[8:8 + n])
        self.assertEqual(header["b"], {"dtype": "F32", "shape": [2, 3], "data_offsets": [4, 28]})
        self.assertEqual(header["__metadata__"], {"k": "v"})
        back, meta = safetensors_io.loads(raw)
        self.assertEqual(meta, {"k": "v"})
        for k in t:
            np.testing.assert_array_equal(back[k], t[k])
            self.assertEqual(back[k].dtype, t[k].dtype)
        with self.assertRaises(safetensors_io.SafetensorsError):
            safetensors_io.loads(raw[:-4])

    def test_adapter_cli_roundtrip(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "ad")
            run(os.path.join(HERE, "tiny_llama_torch.py"), "random-adapter", "--model", self.f.model,
                "--rank", "4", "--targets", "q_proj,v_proj", "--out", out, "--seed", "3")
            t, _ = safetensors_io.load(os.path.join(out, "adapter_model.safetensors"))
            self.assertEqual(len(t), 8)
            a = t["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"]
            b = t["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
            self.assertEqual((a.shape, b.shape), ((4, 128), (64, 4)))
            self.assertTrue(np.all(a != 0) and np.all(b != 0))
            with open(os.path.join(out, "adapter_config.json")) as f:
                cfg = json.load(f)
            self.assertEqual((cfg["peft_type"], cfg["r"], cfg["lora_alpha"]), ("LORA", 4, 8.0))
            self.assertEqual(sorted(cfg["target_modules"]), ["q_proj", "v_proj"])
            ads, _ = R.read_adapter(out)
            np.testing.assert_array_equal(ads["layers.1.self_attn.v_proj"][0], a)
            # loss and grads subcommands
            l0 = json.loads(run(os.path.join(HERE, "tiny_llama_torch.py"), "loss", "--model", self.f.model,
                                "--data", self.f.data, "--batch", "2", "--seq", "16", "--first-batch"))
            l1 = json.loads(run(os.path.join(HERE, "tiny_llama_torch.py"), "loss", "--model", self.f.model,
                                "--data", self.f.data, "--batch", "2", "--seq", "16", "--first-batch",
                                "--adapter", out))
            self.assertNotAlmostEqual(l0["loss"], l1["loss"], places=5)
            gpath = os.path.join(d, "g.safetensors")
            gl = json.loads(run(os.path.join(HERE, "tiny_llama_torch.py"), "grads", "--model", self.f.model,
                                "--data", self.f.data, "--batch", "2", "--seq", "16", "--adapter", out,
                                "--out", gpath))
            self.assertAlmostEqual(gl["loss"], l1["loss"], places=10)
            g, meta = safetensors_io.load(gpath)
            self.assertEqual(sorted(g)[0], "layers.0.self_attn.q_proj.lora_A.grad")
            self.assertEqual(len(g), 8)
            self.assertTrue(all(np.abs(v).max() > 0 for v in g.values()))

    def test_data(self):
        with tempfile.TemporaryDirectory() as d:
            for seq in (16, 64):
                p = os.path.join(d, f"d{seq}.jsonl")
                run(os.path.join(SCRIPTS, "make_data.py"), "--out", p, "--seq", str(seq))
                with open(p) as f:
                    text = f.read()
                run(os.path.join(SCRIPTS, "make_data.py"), "--out", p + "2", "--seq", str(seq))
                with open(p + "2") as f:
                    self.assertEqual(f.read(), text)
                rows = [json.loads(l) for l in text.splitlines()]
                self.assertGreater(len(rows), 50)
                n_lab = 0
                for r in rows:
                    ids = r["input_ids"]
                    self.assertTrue(1 <= len(ids) <= seq)
                    self.assertTrue(all(isinstance(x, int) and 0 <= x < 256 for x in ids))
                    if "labels" in r:
                        n_lab += 1
                        lab = r["labels"]
                        self.assertEqual(len(lab), len(ids))
                        self.assertIn(-100, lab)
                        self.assertTrue(sum(x != -100 for x in lab) >= 2)
                        self.assertTrue(all(x == -100 or x == y for x, y in zip(lab, ids)))
                self.assertGreaterEqual(n_lab, 3)
                # The plain lines are the corpus, in order.
                plain = b"".join(bytes(r["input_ids"]) for r in rows if "labels" not in r).decode()
                with open(os.path.join(SCRIPTS, "corpus.txt")) as f:
                    corpus = f.read()
                self.assertEqual("".join(plain.split()), "".join(corpus.split()))


HF = os.path.join(ROOT, "test", "fixtures", "hf")


class TestHfArchitectures(unittest.TestCase):
    """The reference's Llama 3, Qwen 3 and Gemma 3 (from each fixture's
    transformers config, weights found by their use in the graph) against what
    the fixtures recorded on the export machine."""

    def model(self, arch, form):
        path = os.path.join(HF, f"{arch}-{form}", "model.onnx")
        cfg = R.load_config(path)
        return cfg, R.weights(path, cfg)

    def test_losses_match_transformers(self):
        # transformers' float64 loss, stored as float32 (ulp 4.8e-7 at 5.8).
        for arch in ("llama", "qwen3", "gemma3"):
            for form in ("dynamic", "static"):
                cfg, w = self.model(arch, form)
                net = R.TinyLlama(w, cfg)
                with open(os.path.join(HF, f"{arch}-{form}", "reference.json")) as f:
                    want = json.load(f)
                for T in (16, 64):
                    with self.subTest(arch=arch, form=form, T=T):
                        ids = torch.tensor([r[:T] for r in want["ids"]])
                        with torch.no_grad():
                            s, n = R.causal_lm_loss_sum(net.forward(ids), ids)
                        self.assertLess(abs(float(s) / n - want["losses"][str(T)]), 2e-6)

    def test_training_matches_peft(self):
        # 40 steps of LoRA AdamW from PEFT's initial adapter: PEFT's per-step losses (fp32, TF32 off).
        for arch in ("qwen3", "gemma3"):
            with self.subTest(arch=arch):
                run_dir = os.path.join(HF, f"peft-{arch}")
                with open(os.path.join(run_dir, "run.json")) as f:
                    run = json.load(f)
                hp = run["hparams"]
                cfg, w = self.model(arch, "dynamic")
                adapters, acfg = R.read_adapter(os.path.join(run_dir, "init"))
                lora = R.lora_params(adapters, requires_grad=True)
                lines = R.read_jsonl(os.path.join(run_dir, "data.jsonl"))
                losses = R.train(R.TinyLlama(w, cfg), lines, hp["micro_batch"], hp["seq"], lora, R.adapter_scale(acfg),
                                 hp["steps"], hp["lr"], weight_decay=hp["weight_decay"])
                self.assertLess(max(abs(a - b) for a, b in zip(losses, run["losses"])), 1e-5)

    def test_precision_emulation(self):
        # The half stores: f32 first, round to nearest even, f16 saturates.
        for name, vals, want in (
                ("bf16", [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38], [1.0, 1 + 2 ** -6, float("inf")]),
                ("f16", [1 + 2 ** -11, 1 + 3 * 2 ** -11, 7e4, -1e9, 2 ** -25, 3 * 2 ** -25],
                 [1.0, 1 + 2 ** -9, 65504.0, -65504.0, 0.0, 2 ** -23])):
            p = R.Precision(name)
            got = p.store(torch.tensor(vals, dtype=torch.float64)).tolist()
            self.assertEqual(got, want, name)
        # The gradient passes through an f16 store, and is rounded by a bf16 one.
        for name, g in (("f16", 1 + 2 ** -9), ("bf16", 1.0)):
            x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
            y = R.Precision(name).store(x)
            y.backward(torch.tensor([1 + 2 ** -9], dtype=torch.float64))
            self.assertEqual(x.grad.tolist(), [g], name)
        # A half plan's loss: close to the fp32 one, not equal.
        f = Fixture.get()
        ids, labels = R.train_batch(f.lines, 0, 2, 32)
        losses = {}
        for name in ("fp32", "f16", "bf16"):
            with torch.no_grad():
                losses[name] = float(R.batch_loss(R.TinyLlama(f.weights, f.cfg, precision=name), ids, labels)[0])
        for name in ("f16", "bf16"):
            self.assertGreater(abs(losses[name] - losses["fp32"]), 1e-7, losses)
            self.assertLess(abs(losses[name] - losses["fp32"]), 1e-2, losses)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main()
