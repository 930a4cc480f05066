"""tessera compile --generate + tessera generate: prefill, then one decode step
per token with the KV cache on the device.

- The bundled model: greedy output equals the float64 PyTorch reference
  (test/reference/tiny_llama_torch.py generate: a full forward per token) token
  for token, without and with a LoRA adapter (PEFT folder, and the same
  adapter as a llama.cpp GGUF); the reference's top-2 logit margins are
  printed with a failure, so a near tie is visible.
- The Hugging Face fixtures (Llama 3, Qwen 3, Gemma 3 with its sliding window,
  dynamo exports with dynamic length; transformers is not installed here):
  greedy output equals real llama.cpp's argmax on the same tokens (our GGUF,
  test_gguf.py's oracle), without and with an adapter.
- The plan decodes from the cache: `decode` takes one token and a position,
  the cache buffers hold [1, kv_heads, T, head_dim].
- Sampling: seeded and reproducible; top-k 1 is greedy.
- Bad input: one clear error each.
"""
import json
import os
import shutil
import struct

import numpy as np

import common
from common import ROOT, TempDirTest, reference, tessera
from test_gguf import HF, install_oracle

PROMPT = [72, 101, 108, 108, 111, 44, 32]  # "Hello, "


def plan_manifest(path):
    with open(path, "rb") as f:
        head = f.read(32)
        (n,) = struct.unpack("<Q", head[16:24])
        return json.loads(f.read(n))


def parse_ids(result):
    return [int(x) for x in result.stdout.strip().splitlines()[-1].split(",")]


class GenerateTest(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "tiny-gen.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--generate", "--batch", "1", "--seq", "48", "--lora-rank", "8",
                "--lora-alpha", "16", "--lora-targets", "all-linear")
        cls.adapter = os.path.join(cls.dir, "random-adapter")
        reference("random-adapter", "--model", cls.model, "--rank", "8", "--alpha", "16", "--targets", "all-linear",
                  "--b-std", "0.2", "--out", cls.adapter)

    def generate(self, plan, model, prompt, n, *extra, check=True):
        return tessera("generate", plan, "--weights", model, "--prompt-ids", ",".join(map(str, prompt)),
                       "--max-new-tokens", str(n), "--print-ids", *extra, check=check)

    def test_greedy_equals_torch_reference(self):
        for adapter in (None, self.adapter):
            with self.subTest(adapter=bool(adapter)):
                extra = ["--adapter", adapter] if adapter else []
                r = self.generate(self.plan, self.model, PROMPT, 24, *extra)
                ref = reference("generate", "--model", self.model, "--prompt-ids", ",".join(map(str, PROMPT)),
                                "--max-new-tokens", "24", *extra)[0]
                self.assertEqual(parse_ids(r), ref["tokens"], f"reference margins {ref['margins']}")
                self.assertRegex(r.stderr, r"decode [0-9.]+ tokens/s")
                self.assertIn("24 tokens (stopped: max-new-tokens)", r.stderr)
        # The same adapter as a llama.cpp GGUF.
        gguf = self.path("random-LoRA.gguf")
        tessera("export", "--weights", self.model, "--adapter", self.adapter, "--gguf-adapter", gguf)
        a = self.generate(self.plan, self.model, PROMPT, 24, "--adapter", self.adapter)
        b = self.generate(self.plan, self.model, PROMPT, 24, "--adapter", gguf)
        self.assertEqual(parse_ids(a), parse_ids(b))

    def test_decode_is_one_token_against_the_cache(self):
        m = plan_manifest(self.plan)
        programs = {p["name"] for p in m["programs"]}
        self.assertEqual(programs, {"prefill", "decode"})
        buffers = {b["name"]: b for b in m["buffers"]}
        self.assertEqual(buffers["token"]["shape"], [1, 1])
        self.assertEqual(buffers["position"]["shape"], [1])
        self.assertEqual(buffers["decode.logits"]["shape"], [1, 1, 256])
        for layer in (0, 1):
            for kv in "kv":  # kv heads x T x head dim (the shape may keep a unit axis of the export)
                self.assertEqual(np.prod(buffers[f"kv_cache.{layer}.{kv}"]["shape"]), 2 * 48 * 32)

    def test_sampling_is_seeded(self):
        runs = {}
        for seed in (1, 1, 2):
            r = self.generate(self.plan, self.model, PROMPT, 16, "--temperature", "1.5", "--top-p", "0.95",
                              "--seed", str(seed))
            runs.setdefault(seed, []).append(parse_ids(r))
        self.assertEqual(runs[1][0], runs[1][1])
        self.assertNotEqual(runs[1][0], runs[2][0])
        greedy = parse_ids(self.generate(self.plan, self.model, PROMPT, 8))
        top1 = parse_ids(self.generate(self.plan, self.model, PROMPT, 8, "--temperature", "0.7", "--top-k", "1"))
        self.assertEqual(greedy, top1)
        # Stops at an end-of-sequence id, and when the context (48) is full.
        r = self.generate(self.plan, self.model, PROMPT, 8, "--stop-ids", str(greedy[2]))
        self.assertEqual(parse_ids(r), greedy[:3])
        r = self.generate(self.plan, self.model, list(range(40)), 20)
        self.assertIn("stopped: context", r.stderr)

    def test_hf_fixtures_greedy_equals_llama_cpp(self):
        oracle_dir = install_oracle()
        peft = {"qwen3": "peft-qwen3/final", "gemma3": "peft-gemma3/final"}
        for arch in ("llama", "qwen3", "gemma3"):
            with self.subTest(arch):
                src = os.path.join(HF, f"{arch}-dynamic")
                with open(os.path.join(src, "reference.json")) as f:
                    ref = json.load(f)
                d = self.path(arch)
                os.makedirs(d, exist_ok=True)
                for name in ("model.onnx", "model.onnx.data"):
                    if not os.path.exists(os.path.join(d, name)):
                        os.symlink(os.path.join(src, name), os.path.join(d, name))
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(ref["config"], f)
                model = os.path.join(d, "model.onnx")
                plan = os.path.join(d, "gen.tplan")
                tessera("compile", model, "-o", plan, "--generate", "--batch", "1", "--seq", "32", "--lora-rank", "8",
                        "--lora-alpha", "16", "--lora-targets", "all-linear")
                if arch in peft:
                    adapter = os.path.join(HF, peft[arch])
                else:
                    adapter = os.path.join(d, "adapter")
                    reference("random-adapter", "--model", model, "--rank", "8", "--alpha", "16", "--targets",
                              "all-linear", "--b-std", "0.3", "--out", adapter)
                base, lora = os.path.join(d, "base.gguf"), os.path.join(d, "lora.gguf")
                tessera("export", "--weights", model, "--gguf-base", base, "--adapter", adapter, "--gguf-adapter", lora)
                prompt = ref["ids"][0][:6]
                for with_adapter in (False, True):
                    extra = ["--adapter", adapter] if with_adapter else []
                    ours = parse_ids(self.generate(plan, model, prompt, 14, *extra))
                    req = self.path("req.json")
                    with open(req, "w") as f:
                        json.dump({"model": base, "lora": lora if with_adapter else None,
                                   "sequences": [prompt + ours]}, f)
                    r = common.run(["node", os.path.join(oracle_dir, "oracle.mjs"), req], cwd=oracle_dir)
                    self.assertEqual(r.rc, 0, r.describe())
                    argmax = json.loads(r.stdout.strip().splitlines()[-1])["argmax"][0]
                    self.assertEqual(argmax[len(prompt) - 1:], ours, f"{arch}, adapter {with_adapter}")

    def test_bad_input(self):
        def fails(args, message):
            r = tessera(*args, check=False)
            self.assertEqual(r.rc, 1, r.describe())
            self.assertIn(message, r.stderr, r.describe())
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.describe())

        g = ["generate", self.plan, "--weights", self.model, "--max-new-tokens", "4"]
        fails(g + ["--prompt-ids", "1,x,3", "--print-ids"], "--prompt-ids: 'x' is not a token id")
        fails(g + ["--prompt-ids", "1,2"], "pass --print-ids")
        fails(g + ["--prompt-ids", ",".join(["1"] * 48), "--print-ids"], "the prompt has 48 tokens, the plan's context is 48")
        fails(g + ["--prompt-ids", "1,256", "--print-ids"], "prompt token 2 is 256, the vocabulary has 256 ids")
        fails(g + ["--prompt-ids", "1", "--print-ids", "--top-p", "0"], "--top-p must be in (0, 1]")
        train_plan = self.compile(self.path("train.tplan"), "--batch", "1", "--seq", "16")
        fails(["generate", train_plan, "--weights", self.model, "--max-new-tokens", "4", "--prompt-ids", "1",
               "--print-ids"], "has no program 'prefill'")
        # A static export's RoPE tables are initializers of its export length: no rows to gather.
        fails(["compile", os.path.join(HF, "gemma3-static", "model.onnx"), "-o", self.path("s.tplan"), "--generate",
               "--batch", "1", "--seq", "16"], "the RoPE tables are not constants of the graph")
        fails(["compile", self.model, "-o", self.path("b.tplan"), "--generate", "--batch", "2"], "--batch must be 1")


if __name__ == "__main__":
    common.main()
