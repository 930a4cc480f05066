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
- Text (scripts/tiny-tokenizer: ids are UTF-8 bytes, <|im_start|> / <|im_end|> /
  <|endoftext|> = 1 / 2 / 3, so this file encodes and decodes independently):
  `--prompt TEXT` prints the reference's greedy tokens decoded as Hugging Face
  decodes them (lossy UTF-8), stopping at the eos token; `--chat` renders
  every turn exactly as python3-jinja2 renders the template (set up as
  transformers does: test/text/render_chat_oracle.py) for the same turns, the
  replies included, and each reply is the reference's for that prompt.
- Bad input: one clear error each.
"""
import json
import os
import re
import shutil

import numpy as np

import sys

import common
from common import ROOT, TempDirTest, plan_manifest, reference, tessera
from test_gguf import HF, install_oracle

sys.path.insert(0, os.path.join(ROOT, "test", "text"))
import render_chat_oracle  # noqa: E402 - python3-jinja2 set up as transformers sets it up

PROMPT = [72, 101, 108, 108, 111, 44, 32]  # "Hello, "
TOK = os.path.join(ROOT, "scripts", "tiny-tokenizer")
SPECIALS = {1: "<|im_start|>", 2: "<|im_end|>", 3: "<|endoftext|>"}
EOS = 2


def tiny_encode(text):
    """The tiny tokenizer by hand: UTF-8 bytes, its three special tokens as ids 1-3."""
    ids, i = [], 0
    while i < len(text):
        special = next((k for k, v in SPECIALS.items() if text.startswith(v, i)), None)
        if special:
            ids.append(special)
            i += len(SPECIALS[special])
        else:
            ids += list(text[i].encode())
            i += 1
    return ids


def tiny_decode(ids):
    """Hugging Face's decode of it: the bytes (special tokens as their text) as lossy UTF-8."""
    return b"".join(SPECIALS[i].encode() if i in SPECIALS else bytes([i]) for i in ids).decode("utf-8", "replace")


def text_mode(s):
    """What a text-mode pipe makes of s (the tests read stdout as text: universal newlines)."""
    return s.replace("\r\n", "\n").replace("\r", "\n")


def reference_reply(model, prompt_ids, n, adapter=None, stop=EOS):
    """The float64 torch reference's greedy tokens, up to (without) the first stop id."""
    extra = ["--adapter", adapter] if adapter else []
    ref = reference("generate", "--model", model, "--prompt-ids", ",".join(map(str, prompt_ids)),
                    "--max-new-tokens", str(n), *extra)[0]
    tokens = ref["tokens"]
    return (tokens[: tokens.index(stop)] if stop in tokens else tokens), ref["margins"]


def fails(test, args, message, input=None):
    r = tessera(*args, check=False, input=input)
    test.assertEqual(r.rc, 1, r.describe())
    test.assertIn(message, r.stderr, r.describe())
    test.assertEqual(len(r.stderr.strip().splitlines()), 1, r.describe())


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

    # -- text: --tokenizer, --prompt, --chat ----------------------------------------
    def generate_text(self, plan, n, *extra, input=None):
        return tessera("generate", plan, "--weights", self.model, "--tokenizer", TOK, "--max-new-tokens", str(n),
                       *extra, input=input)

    def test_text_prompt_equals_torch_reference_decoded(self):
        for prompt, adapter in (("Grüße aus Köln — ", None), ("Hello, ", self.adapter)):
            with self.subTest(prompt=prompt, adapter=bool(adapter)):
                extra = ["--adapter", adapter] if adapter else []
                ids = tiny_encode(prompt)
                want, margins = reference_reply(self.model, ids, 24, adapter)
                r = self.generate_text(self.plan, 24, "--prompt", prompt, "--verbose-prompt", *extra)
                self.assertEqual(r.stdout, text_mode(tiny_decode(want)) + "\n", f"reference margins {margins}")
                self.assertIn(f"prompt ({len(ids)} tokens): {json.dumps(prompt, ensure_ascii=False)}", r.stderr)
                self.assertRegex(r.stderr, r"decode [0-9.]+ tokens/s")

    def test_text_stops_at_the_tokenizers_eos(self):
        """A copy of the tiny tokenizer whose eos is the third token greedy picks: the reply is the first two."""
        greedy, _ = reference_reply(self.model, PROMPT, 8, stop=None)
        d = self.path("eos-tokenizer")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(TOK, "tokenizer.json"), d)
        with open(os.path.join(TOK, "tokenizer.json")) as f:
            spelling = {i: t for t, i in json.load(f)["model"]["vocab"].items()}
        with open(os.path.join(TOK, "tokenizer_config.json")) as f:
            config = json.load(f)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(dict(config, eos_token=spelling[greedy[2]]), f)
        r = tessera("generate", self.plan, "--weights", self.model, "--tokenizer", d, "--prompt", "Hello, ",
                    "--max-new-tokens", "8")
        self.assertEqual(r.stdout, text_mode(tiny_decode(greedy[:2])) + "\n")
        self.assertIn("3 tokens (stopped: eos)", r.stderr)
        r = tessera("generate", self.plan, "--weights", self.model, "--tokenizer", d, "--prompt", "Hello, ",
                    "--max-new-tokens", "8", "--ignore-eos", "--print-ids")
        self.assertEqual(parse_ids(r), greedy)

    def test_chat_renders_the_template_and_keeps_the_history(self):
        plan = self.path("tiny-gen-160.tplan")
        if not os.path.exists(plan):
            tessera("compile", self.model, "-o", plan, "--generate", "--batch", "1", "--seq", "160", "--lora-rank", "8",
                    "--lora-alpha", "16", "--lora-targets", "all-linear")
        with open(os.path.join(TOK, "tokenizer_config.json")) as f:
            config = json.load(f)
        template = render_chat_oracle.environment().from_string(config["chat_template"])
        special = {k: render_chat_oracle.token_text(config, k) for k in ("bos_token", "eos_token", "pad_token")}
        turns = ["What should I sow in May?", "Danke schön 🌱"]
        messages = [{"role": "system", "content": "Be brief."}]
        prompts, replies = [], []
        for turn in turns:
            messages.append({"role": "user", "content": turn})
            text = template.render(messages=messages, tools=None, documents=None, add_generation_prompt=True,
                                   **{k: v for k, v in special.items() if v is not None})
            prompts.append(text)
            reply, _ = reference_reply(self.model, tiny_encode(text), 10, self.adapter)
            replies.append(tiny_decode(reply))
            messages.append({"role": "assistant", "content": replies[-1]})
        r = self.generate_text(plan, 10, "--chat", "--system", "Be brief.", "--adapter", self.adapter,
                               "--verbose-prompt", input="\n".join(turns) + "\n")
        got = [json.loads(l.split(": ", 1)[1]) for l in r.stderr.splitlines() if l.startswith("prompt (")]
        self.assertEqual(got, prompts)
        self.assertEqual(r.stdout, text_mode("".join(reply + "\n" for reply in replies)))
        self.assertEqual(len(re.findall(r"decode [0-9.]+ tokens/s", r.stderr)), 2)

    def test_text_bad_input(self):
        g = ["generate", self.plan, "--weights", self.model, "--max-new-tokens", "4"]
        fails(self, g + ["--tokenizer", self.path("nowhere"), "--prompt", "hi"], "not a tokenizer folder")
        empty = self.path("empty-folder")
        os.makedirs(empty, exist_ok=True)
        fails(self, g + ["--tokenizer", empty, "--prompt", "hi"], f"{empty}: no tokenizer.json")
        fails(self, g + ["--tokenizer", TOK, "--prompt", "x" * 48], "the prompt has 48 tokens, the plan's context is 48")
        no_template = self.path("no-template")
        os.makedirs(no_template, exist_ok=True)
        shutil.copy(os.path.join(TOK, "tokenizer.json"), no_template)
        with open(os.path.join(TOK, "tokenizer_config.json")) as f:
            config = json.load(f)
        del config["chat_template"]
        with open(os.path.join(no_template, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
        fails(self, g + ["--tokenizer", no_template, "--chat"], f"{no_template}: the tokenizer has no chat_template",
              input="Hi\n")
        fails(self, g + ["--prompt", "hi"], "--prompt needs the model's tokenizer: --tokenizer DIR")
        fails(self, g + ["--chat"], "--chat needs the model's tokenizer: --tokenizer DIR")
        fails(self, g + ["--tokenizer", TOK, "--prompt", "hi", "--prompt-ids", "1"], "give the prompt as one of")
        fails(self, g + ["--tokenizer", TOK], "give the prompt as one of --prompt TEXT, --chat or --prompt-ids")
        fails(self, g + ["--tokenizer", TOK, "--prompt", "hi", "--system", "Be brief."], "use it with --chat")
        qwen = os.path.join(common.npm_oracles(), "tokenizers", "qwen3")
        fails(self, g + ["--tokenizer", qwen, "--prompt", "hi"],
              f"{qwen}: the tokenizer has 151669 tokens but the plan's model has a vocabulary of 256")
        # A conversation that outgrows the context (48): the error names the turn's stdin line.
        r = tessera(*g, "--tokenizer", TOK, "--chat", input="Hi\n\n" + "y" * 30 + "\n", check=False)
        self.assertEqual(r.rc, 1, r.describe())
        self.assertRegex(r.stderr.strip().splitlines()[-1], r"^error: stdin line 3: the conversation has \d+ tokens, "
                         r"the plan's context is 48: compile with a larger --seq$")

    def test_bad_input(self):
        def fails_(args, message):
            fails(self, args, message)

        g = ["generate", self.plan, "--weights", self.model, "--max-new-tokens", "4"]
        fails_(g + ["--prompt-ids", "1,x,3", "--print-ids"], "--prompt-ids: 'x' is not a token id")
        fails_(g + ["--prompt-ids", "1,2"], "pass --print-ids")
        fails_(g + ["--prompt-ids", ",".join(["1"] * 48), "--print-ids"], "the prompt has 48 tokens, the plan's context is 48")
        fails_(g + ["--prompt-ids", "1,256", "--print-ids"], "prompt token 2 is 256, the vocabulary has 256 ids")
        fails_(g + ["--prompt-ids", "1", "--print-ids", "--top-p", "0"], "--top-p must be in (0, 1]")
        train_plan = self.compile(self.path("train.tplan"), "--batch", "1", "--seq", "16")
        fails_(["generate", train_plan, "--weights", self.model, "--max-new-tokens", "4", "--prompt-ids", "1",
               "--print-ids"], "has no program 'prefill'")
        # A static export's RoPE tables are initializers of its export length: no rows to gather.
        fails_(["compile", os.path.join(HF, "gemma3-static", "model.onnx"), "-o", self.path("s.tplan"), "--generate",
               "--batch", "1", "--seq", "16"], "the RoPE tables are not constants of the graph")
        fails_(["compile", self.model, "-o", self.path("b.tplan"), "--generate", "--batch", "2"], "--batch must be 1")


if __name__ == "__main__":
    common.main()
