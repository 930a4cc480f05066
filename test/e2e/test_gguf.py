"""tessera export (GGUF for llama.cpp) and --init-adapter ADAPTER.gguf, checked
by real llama.cpp.

The oracles (scripts/npm_oracles.sh, installed once per build tree into
build/npm): node-llama-cpp 3.21.1's prebuilt CPU llama.cpp, run with flash
attention off and an F32 KV cache, and @huggingface/tokenizers.

- Base models of the tiny Hugging Face fixtures (Llama 3, Qwen 3, Gemma 3;
  dynamo exports, dynamic and static) evaluated by llama.cpp give the float64
  transformers loss in reference.json.
- With our LoRA GGUF (real PEFT adapters for Qwen 3 / Gemma 3 / rsLoRA, a
  random one for Llama, whose q/k rows llama.cpp permutes), llama.cpp's
  per-position log-probabilities equal `tessera eval --losses` per position
  with the PEFT adapter, within 1e-4 (Gemma 3: 2e-3, llama.cpp's CPU GELU goes
  through an f16 table), and differ from them without the adapter.
- The bundled model: trained with tessera, exported, the same comparison.
- Round trip: `tessera eval --init-adapter adapter.gguf` equals the PEFT
  directory's losses.
- f16 / q8_0: every tensor's bytes equal gguf-py's (llama.cpp's own Python
  package, from the node-llama-cpp source bundle) conversion of the f32 file,
  and llama.cpp's log-probs stay close to the f32 model's; q4_0 / tq2_0 (a
  256-wide Llama): bytes equal gguf-py's, and llama.cpp's log-probs on those
  files follow tessera's eval of a plan on the same file (--weights BASE.gguf).
- Without config.json the graph alone gives the same hyper-parameters.
- Vocabularies from tokenizer.json (Qwen 3, Llama 3, Gemma 3, the bundled
  tiny one): llama.cpp tokenizes like Hugging Face, and a prompt (BOS
  included where llama.cpp adds one) like our runtime tokenizer.
- Bad input: one clear error each.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import unicodedata

import numpy as np

import common
from common import ROOT, TempDirTest, make_data, parse_eval, run, tessera

HF = os.path.join(ROOT, "test", "fixtures", "hf")
ARCHS = ["llama", "qwen3", "gemma3"]
# Per-position log-prob tolerance (absolute) of llama.cpp against tessera.
TOL = {"llama": 1e-4, "qwen3": 1e-4, "gemma3": 2e-3}
PEFT = {"qwen3": "peft-qwen3/final", "gemma3": "peft-gemma3/final"}
T = 16


def install_oracle():
    """The npm oracle cache, with test/e2e/llama_cpp's node scripts in it."""
    return common.npm_oracles()


class GgufTest(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.oracle_dir = install_oracle()
        cls.gguf_py = cls._gguf_py()
        cls.refs, cls.dirs, cls.plans = {}, {}, {}
        for arch in ARCHS:
            for form in ("dynamic", "static"):
                src = os.path.join(HF, f"{arch}-{form}")
                d = os.path.join(cls.dir, f"{arch}-{form}")
                os.makedirs(d)
                for f in ("model.onnx", "model.onnx.data"):
                    os.symlink(os.path.join(src, f), os.path.join(d, f))
                with open(os.path.join(src, "reference.json")) as f:
                    ref = json.load(f)
                # The transformers config the fixture was made from, as config.json beside it.
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(ref["config"], f)
                cls.refs[f"{arch}-{form}"] = ref
                cls.dirs[f"{arch}-{form}"] = d
            d = cls.dirs[f"{arch}-dynamic"]
            cls.plans[arch] = os.path.join(d, "plan.tplan")
            tessera("compile", os.path.join(d, "model.onnx"), "-o", cls.plans[arch], "--batch", "1", "--seq", str(T),
                    "--lora-rank", "8", "--lora-alpha", "16", "--lora-targets", "all-linear")

    @classmethod
    def _gguf_py(cls):
        """llama.cpp's gguf-py, from the source bundle node-llama-cpp ships."""
        dest = os.path.join(cls.oracle_dir, "gguf-py")
        if not os.path.isdir(dest):
            bundle = os.path.join(cls.oracle_dir, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle")
            repo = os.path.join(cls.dir, "llama.cpp.git")
            subprocess.run(["git", "init", "-q", "--bare", repo], check=True)
            subprocess.run(["git", "-C", repo, "fetch", "-q", bundle, "HEAD"], check=True)
            tmp = dest + ".tmp"
            os.makedirs(tmp, exist_ok=True)
            archive = subprocess.run(["git", "-C", repo, "archive", "FETCH_HEAD", "gguf-py"], check=True,
                                     stdout=subprocess.PIPE).stdout
            subprocess.run(["tar", "-x", "-C", tmp, "--strip-components=1"], input=archive, check=True)
            os.rename(tmp, dest)
        sys.path.insert(0, dest)
        import gguf  # noqa: F401
        return sys.modules["gguf"]

    # -- helpers ------------------------------------------------------------------
    def oracle(self, script, request):
        path = self.path(f"request-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump(request, f)
        r = run(["node", os.path.join(self.oracle_dir, script), path], cwd=self.oracle_dir, timeout=300)
        if r.rc != 0:
            raise AssertionError(f"{script} failed:\n" + r.describe())
        return json.loads(r.stdout.strip().splitlines()[-1])

    def llama_logprobs(self, base, sequences, lora=None):
        return np.array(self.oracle("oracle.mjs", {"model": base, "lora": lora, "sequences": sequences})["logprobs"])

    def export(self, *args, check=True):
        return tessera("export", *args, check=check)

    def position_data(self, ids, name):
        """One line per position t >= 1 labelling only token t: with a batch-1
        plan, `tessera eval --losses` then gives -log p(ids[t] | ids[:t])."""
        path = self.path(name)
        with open(path, "w") as f:
            for t in range(1, len(ids)):
                labels = [-100] * len(ids)
                labels[t] = ids[t]
                f.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
        return path

    def tessera_logprobs(self, plan, model, data, adapter=None):
        out = self.path("losses.jsonl")
        args = ["eval", plan, "--weights", model, "--data", data, "--losses", out]
        if adapter:
            args += ["--init-adapter", adapter]
        tessera(*args)
        with open(out) as f:
            return -np.array([json.loads(l)["loss"] for l in f])

    def random_adapter(self, plan, model, out, seed=1):
        """A PEFT adapter with random A and B (a fresh one has B = 0)."""
        fresh = self.path(f"fresh-{seed}")
        data = self.position_data(list(range(T)), f"fresh-{seed}.jsonl")
        tessera("train", plan, "--weights", model, "--data", data, "--steps", "1", "--out", fresh,
                "--checkpoint-every", "0")
        tensors, _ = common.safetensors_io.load(os.path.join(fresh, "adapter_model.safetensors"))
        rng = np.random.default_rng(seed)
        os.makedirs(out, exist_ok=True)
        common.safetensors_io.save(os.path.join(out, "adapter_model.safetensors"),
                                   {k: rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in tensors.items()})
        shutil.copy(os.path.join(fresh, "adapter_config.json"), os.path.join(out, "adapter_config.json"))
        return out

    def adapter_for(self, arch):
        if arch in PEFT:
            return os.path.join(HF, PEFT[arch])
        d = self.dirs[f"{arch}-dynamic"]
        return self.random_adapter(self.plans[arch], os.path.join(d, "model.onnx"), self.path(f"{arch}-random"))

    def metadata(self, path):
        r = self.gguf_py.GGUFReader(path)
        out = {}
        for name, field in r.fields.items():
            if field.types and field.types[0] == self.gguf_py.GGUFValueType.ARRAY:
                continue
            out[name] = field.contents()
        return out

    def assert_gguf_py_exact(self, files, types):
        """Every tensor of files[ty] is gguf-py's conversion of the f32 export's (1-D ones stay F32)."""
        g = self.gguf_py
        ref = {t.name: np.array(t.data) for t in g.GGUFReader(files["f32"]).tensors}
        for ty, qtype in types.items():
            for t in g.GGUFReader(files[ty]).tensors:
                with self.subTest(ty=ty, tensor=t.name):
                    want_type = g.GGMLQuantizationType.F32 if ref[t.name].ndim == 1 else qtype
                    self.assertEqual(t.tensor_type, want_type)
                    want = g.quants.quantize(ref[t.name].astype(np.float32), want_type)
                    self.assertEqual(np.asarray(t.data).tobytes(), want.tobytes(), f"{ty} bytes of {t.name}")

    # -- tests ----------------------------------------------------------------------
    def test_base_models_match_transformers(self):
        """llama.cpp on our base GGUF gives transformers' float64 loss (reference.json)."""
        for key, ref in sorted(self.refs.items()):
            with self.subTest(key):
                d = self.dirs[key]
                base = os.path.join(d, "base.gguf")
                self.export("--weights", os.path.join(d, "model.onnx"), "--gguf-base", base)
                lp = self.llama_logprobs(base, [row[:T] for row in ref["ids"]])
                loss = -lp.mean()
                tol = 5e-5 if key.startswith("gemma3") else 1e-5
                self.assertLess(abs(loss - ref["losses"][str(T)]), tol, f"{key}: llama.cpp {loss} vs transformers")

    def test_adapters_match_tessera_eval_per_position(self):
        for arch in ARCHS:
            with self.subTest(arch):
                d = self.dirs[f"{arch}-dynamic"]
                model = os.path.join(d, "model.onnx")
                base, lora = os.path.join(d, "base.gguf"), os.path.join(d, "lora.gguf")
                adapter = self.adapter_for(arch)
                self.export("--weights", model, "--gguf-base", base, "--adapter", adapter, "--gguf-adapter", lora)
                ids = self.refs[f"{arch}-dynamic"]["ids"][0][:T]
                data = self.position_data(ids, f"{arch}-positions.jsonl")
                ours = self.tessera_logprobs(self.plans[arch], model, data, adapter)
                theirs = self.llama_logprobs(base, [ids], lora)[0]
                err = np.abs(ours - theirs).max()
                self.assertLess(err, TOL[arch], f"{arch}: llama.cpp + LoRA vs tessera eval, per position")
                # Without the adapter llama.cpp computes something else.
                plain = self.llama_logprobs(base, [ids])[0]
                self.assertGreater(np.abs(ours - plain).max(), 50 * TOL[arch], f"{arch}: the adapter changes nothing")
                # Round trip: our GGUF read back by --init-adapter.
                back = self.tessera_logprobs(self.plans[arch], model, data, lora)
                self.assertLess(np.abs(back - ours).max(), 1e-6, f"{arch}: --init-adapter lora.gguf")

    def test_rslora_alpha_is_folded(self):
        """rsLoRA (alpha / sqrt(r)) written as llama.cpp's alpha / r."""
        d = self.dirs["qwen3-dynamic"]
        model = os.path.join(d, "model.onnx")
        plan = self.path("qwen3-rslora.tplan")
        tessera("compile", model, "-o", plan, "--batch", "1", "--seq", str(T), "--lora-rank", "8", "--lora-alpha", "16",
                "--lora-targets", "all-linear", "--rslora")
        adapter = os.path.join(HF, "peft-qwen3-sched", "final")
        base, lora = self.path("rs-base.gguf"), self.path("rs-lora.gguf")
        r = self.export("--weights", model, "--gguf-base", base, "--adapter", adapter, "--gguf-adapter", lora)
        self.assertIn("scale 5.65685", r.stdout)  # 16 / sqrt(8)
        self.assertAlmostEqual(float(self.metadata(lora)["adapter.lora.alpha"]), 16 * np.sqrt(8), places=4)
        ids = self.refs["qwen3-dynamic"]["ids"][1][:T]
        data = self.position_data(ids, "rs-positions.jsonl")
        ours = self.tessera_logprobs(plan, model, data, adapter)
        theirs = self.llama_logprobs(base, [ids], lora)[0]
        self.assertLess(np.abs(ours - theirs).max(), TOL["qwen3"])

    def test_bundled_model_trained_adapter(self):
        """The bundled model: train, export base + adapter, llama.cpp agrees per position."""
        data = make_data(self.path("data.jsonl"), T)
        plan = self.compile(self.path("tiny.tplan"), "--batch", "2", "--seq", str(T), "--lora-rank", "8",
                            "--lora-targets", "all-linear")
        adapter = self.path("tiny-adapter")
        tessera("train", plan, "--weights", self.model, "--data", data, "--steps", "30", "--lr", "1e-2",
                "--out", adapter, "--checkpoint-every", "0")
        base, lora = self.path("tiny.gguf"), self.path("tiny-LoRA.gguf")
        self.export("--weights", self.model, "--gguf-base", base, "--adapter", adapter, "--gguf-adapter", lora)
        eval_plan = self.compile(self.path("tiny-eval.tplan"), "--batch", "1", "--seq", str(T), "--lora-rank", "8",
                                 "--lora-targets", "all-linear")
        with open(data) as f:
            ids = json.loads(f.readline())["input_ids"][:T]
        positions = self.position_data(ids, "tiny-positions.jsonl")
        ours = self.tessera_logprobs(eval_plan, self.model, positions, adapter)
        theirs = self.llama_logprobs(base, [ids], lora)[0]
        self.assertLess(np.abs(ours - theirs).max(), TOL["llama"])
        base_only = self.tessera_logprobs(eval_plan, self.model, positions)
        self.assertGreater(np.abs(ours - base_only).max(), 0.05, "30 steps at lr 1e-2 should change the model")

    def test_f16_and_q8_0_are_gguf_py_exact(self):
        d = self.dirs["qwen3-dynamic"]
        model = os.path.join(d, "model.onnx")
        files = {}
        for ty in ("f32", "f16", "q8_0"):
            files[ty] = self.path(f"qwen3-{ty}.gguf")
            self.export("--weights", model, "--gguf-base", files[ty], "--type", ty)
        g = self.gguf_py
        self.assert_gguf_py_exact(files, {"f16": g.GGMLQuantizationType.F16, "q8_0": g.GGMLQuantizationType.Q8_0})
        ids = [row[:T] for row in self.refs["qwen3-dynamic"]["ids"]]
        lp = {ty: self.llama_logprobs(f, ids) for ty, f in files.items()}
        self.assertLess(np.abs(lp["f16"] - lp["f32"]).max(), 1e-2)
        self.assertLess(np.abs(lp["q8_0"] - lp["f32"]).max(), 0.15)

    def test_q4_0_and_tq2_0_are_gguf_py_exact_and_llama_cpp_agrees_with_tessera_on_them(self):
        """A Llama of 256-wide layers (TQ2_0 blocks are 256 values): every tensor of the q4_0 / tq2_0 exports
        equals gguf-py's quantisation of the f32 export byte for byte; llama.cpp reads both, and its
        log-probs equal `tessera eval` of a plan on the same file (`compile --weights BASE.gguf`: the same
        blocks) more closely than the f32 model's."""
        model = common.make_model(self.path("wide", "tiny-llama.onnx"), "--hidden", "256",
                                                    "--intermediate", "512")
        g = self.gguf_py
        files = {}
        for ty in ("f32", "q4_0", "tq2_0"):
            files[ty] = self.path(f"wide-{ty}.gguf")
            self.export("--weights", model, "--gguf-base", files[ty], "--type", ty)
        self.assert_gguf_py_exact(files, {"q4_0": g.GGMLQuantizationType.Q4_0, "tq2_0": g.GGMLQuantizationType.TQ2_0})
        ids = list(range(3, 3 + T))
        positions = self.position_data(ids, "wide-positions.jsonl")
        f32_plan = self.path("wide-f32.tplan")
        tessera("compile", model, "-o", f32_plan, "--batch", "1", "--seq", str(T))
        ours_f32 = self.tessera_logprobs(f32_plan, model, positions)
        report = []
        for ty in ("q4_0", "tq2_0"):
            plan = self.path(f"wide-{ty}.tplan")
            tessera("compile", model, "-o", plan, "--batch", "1", "--seq", str(T), "--weights", files[ty])
            ours = self.tessera_logprobs(plan, files[ty], positions)
            theirs = self.llama_logprobs(files[ty], [ids])[0]
            d_same, d_f32 = np.abs(ours - theirs).max(), np.abs(ours_f32 - theirs).max()
            report.append(f"{ty}: |tessera {ty} - llama.cpp {ty}| {d_same:.2e}, |tessera f32 - llama.cpp {ty}| {d_f32:.2e}")
            self.assertTrue(np.isfinite(theirs).all())
            # llama.cpp's CPU products quantise the activations to 8 bits against these weights: close, not equal.
            self.assertLess(d_same, 0.02, report[-1])  # measured 7.7e-3 (q4_0), 7.5e-3 (tq2_0)
            self.assertLess(d_same, 0.5 * d_f32, report[-1])
        print("\n".join(report), file=sys.stderr)

    def test_without_config_the_graph_gives_the_same_hyperparameters(self):
        for arch in ARCHS:
            with self.subTest(arch):
                src = self.dirs[f"{arch}-dynamic"]
                d = self.path(f"{arch}-noconfig")
                os.makedirs(d, exist_ok=True)
                for f in ("model.onnx", "model.onnx.data"):
                    if not os.path.exists(os.path.join(d, f)):
                        os.symlink(os.path.join(src, f), os.path.join(d, f))
                r = self.export("--weights", os.path.join(d, "model.onnx"), "--gguf-base", self.path("x.gguf"), check=False)
                self.assertEqual(r.rc, 1)
                self.assertIn("--context-length", r.stderr)
                with_cfg, without = self.path(f"{arch}-cfg.gguf"), self.path(f"{arch}-nocfg.gguf")
                self.export("--weights", os.path.join(src, "model.onnx"), "--gguf-base", with_cfg)
                self.export("--weights", os.path.join(d, "model.onnx"), "--gguf-base", without,
                            "--context-length", str(self.refs[f"{arch}-dynamic"]["config"]["max_position_embeddings"]))
                # Everything but the name and the special token ids (config.json's alone).
                keep = lambda m: {k: v for k, v in m.items()  # noqa: E731
                                  if k != "general.name" and not k.endswith("_token_id") and not k.startswith("GGUF.")}
                a, b = keep(self.metadata(with_cfg)), keep(self.metadata(without))
                self.assertEqual(a, b)

    def test_tokenizer_vocabularies_tokenize_like_hugging_face_and_our_tokenizer(self):
        """llama.cpp on our vocab-only GGUFs tokenizes like Hugging Face (no special tokens added), and a
        prompt like Tessera's runtime tokenizer (tessera tokenize: the post-processor's BOS where llama.cpp
        adds it from tokenizer.ggml.add_bos_token)."""
        texts = ["Hello, world!", "  leading spaces and  double  spaces", "Ünïcödé façade naïve — “quotes”",
                 "日本語のテキストと中文", "emoji 👩‍👩‍👧‍👦 👍🏽 🇫🇷", "code: def f(x):\n\treturn x**2  # comment\n",
                 "1234567890 3.14159 1e-10", "<|im_start|>user\nhi<|im_end|>", "<start_of_turn>user\nhi<end_of_turn>",
                 "<|begin_of_text|>text", "", "\n\n\n", "a\u00a0b\u2009c\u3000d", "Здравствуйте, мир", "مرحبا بالعالم",
                 "    indented\n        more", "e\u0301 (a combining accent)"]
        model = os.path.join(self.dirs["qwen3-dynamic"], "model.onnx")
        folders = {name: os.path.join(self.oracle_dir, "tokenizers", name) for name in ("qwen3", "llama3", "gemma3")}
        folders["tiny"] = os.path.join(ROOT, "scripts", "tiny-tokenizer")  # the bundled model's (no merges)
        for name, tok in folders.items():
            with self.subTest(name):
                vocab = self.path(f"vocab-{name}.gguf")
                self.export("--weights", model, "--tokenizer", tok, "--gguf-base", vocab, "--vocab-only")
                # llama.cpp does not apply Qwen's NFC normalizer (its own converter's files neither).
                cases = [unicodedata.normalize("NFC", t) for t in texts] if name == "qwen3" else texts
                hf = self.oracle("hf_tokenize.mjs", {"tokenizer": tok, "texts": cases})["tokens"]
                lc = self.oracle("oracle.mjs", {"model": vocab, "vocabOnly": True, "texts": cases})
                for text, want, got in zip(cases, hf, lc["tokens"]):
                    self.assertEqual(got, want, f"{name}: {text!r}")
                # Ours, with the special tokens the tokenizer adds (prepare drops an empty sample: "" is left out).
                nonempty = [t for t in cases if t]
                lines = self.path(f"texts-{name}.jsonl")
                with open(lines, "w") as f:
                    f.writelines(json.dumps({"text": t}) + "\n" for t in nonempty)
                r = tessera("tokenize", "--tokenizer", tok, "--in", lines, "--json", "--no-eos")
                ours = [json.loads(l)["input_ids"] for l in r.stdout.splitlines() if l.startswith("{")]
                self.assertEqual(len(ours), len(nonempty))
                bos = [lc["bos"]] if lc["addBos"] else []
                for text, mine in zip(nonempty, ours):
                    self.assertEqual(bos + lc["tokens"][cases.index(text)], mine, f"{name}: {text!r}")

    def test_tokenizer_metadata_with_weights(self):
        """--tokenizer with weights: a tokenizer larger than the embedding is refused before anything is written."""
        model = os.path.join(self.dirs["qwen3-dynamic"], "model.onnx")
        tok = os.path.join(self.oracle_dir, "tokenizers", "qwen3")
        r = self.export("--weights", model, "--tokenizer", tok, "--gguf-base", self.path("t.gguf"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn("the tokenizer has 151669 tokens, the model's embedding only 256 rows", r.stderr)

    def test_bad_input(self):
        d = self.dirs["qwen3-dynamic"]
        model = os.path.join(d, "model.onnx")
        out = self.path("bad.gguf")

        def fails(args, message):
            r = tessera(*args, check=False)
            self.assertEqual(r.rc, 1, r.describe())
            self.assertIn(message, r.stderr, r.describe())
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.describe())

        fails(["export", "--weights", model], "nothing to write")
        fails(["export", "--weights", model, "--gguf-base", out, "--type", "q4_k"],
              "--type q4_k: expected f32, f16, q8_0, q4_0 or tq2_0")
        fails(["export", "--weights", model, "--adapter", os.path.join(HF, PEFT["qwen3"]), "--gguf-adapter", out,
               "--type", "tq2_0"], "--type tq2_0 is for the base model; a LoRA adapter is written in f32, f16 or q8_0")
        fails(["export", "--weights", model, "--gguf-adapter", out], "--gguf-adapter needs --adapter")
        fails(["export", "--weights", model, "--gguf-base", out, "--tokenizer", self.path("nowhere")], "tokenizer directory not found")
        bad_cfg = self.path("bad-config")
        os.makedirs(bad_cfg, exist_ok=True)
        cfg = dict(self.refs["qwen3-dynamic"]["config"], num_attention_heads=8)
        with open(os.path.join(bad_cfg, "config.json"), "w") as f:
            json.dump(cfg, f)
        fails(["export", "--weights", model, "--gguf-base", out, "--config", os.path.join(bad_cfg, "config.json")],
              "num_attention_heads = 8 but the model's graph has 4")
        # Another model's adapter (the bundled model is 128 wide, the fixture 64).
        fails(["export", "--weights", self.model, "--adapter", os.path.join(HF, "peft-qwen3", "final"),
               "--gguf-adapter", out], "is [128 -> 64] but the model's is [352 -> 128]")
        # --init-adapter with GGUF files that are not this plan's adapter.
        plan, data = self.plans["qwen3"], self.position_data(list(range(T)), "bad.jsonl")
        evaluate = ["eval", plan, "--weights", model, "--data", data, "--init-adapter"]
        base = self.path("bad-base.gguf")
        self.export("--weights", model, "--gguf-base", base)
        fails(evaluate + [base], "general.type: is \"model\"")
        gemma_lora = self.path("gemma-lora.gguf")
        self.export("--weights", os.path.join(self.dirs["gemma3-dynamic"], "model.onnx"),
                    "--adapter", os.path.join(HF, PEFT["gemma3"]), "--gguf-adapter", gemma_lora)
        fails(evaluate + [gemma_lora], "general.architecture is \"gemma3\" but the plan's model is qwen3")
        with open(gemma_lora, "rb") as f:
            blob = f.read()
        cut = self.path("cut.gguf")
        with open(cut, "wb") as f:
            f.write(blob[: len(blob) // 2])
        fails(evaluate + [cut], "runs past the end of the data section")
        with open(cut, "wb") as f:
            f.write(b"GGUF" + struct.pack("<I", 3) + struct.pack("<QQ", 1, 1 << 40))
        fails(evaluate + [cut], "metadata count")
        # An adapter of fewer layers than the plan adapts.
        partial = self.path("partial-lora.gguf")
        q_only = self.path("q-only")
        os.makedirs(q_only, exist_ok=True)
        tensors, _ = common.safetensors_io.load(os.path.join(HF, PEFT["qwen3"], "adapter_model.safetensors"))
        common.safetensors_io.save(os.path.join(q_only, "adapter_model.safetensors"),
                                   {k: v for k, v in tensors.items() if "q_proj" in k})
        shutil.copy(os.path.join(HF, PEFT["qwen3"], "adapter_config.json"), q_only)
        self.export("--weights", model, "--adapter", q_only, "--gguf-adapter", partial)
        fails(evaluate + [partial], "no LoRA tensors for layers.0.self_attn.k_proj, which the plan adapts")


if __name__ == "__main__":
    common.main()
