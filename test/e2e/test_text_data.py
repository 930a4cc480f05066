#!/usr/bin/python3
"""e2e: text and chat data through the tokenizer (docs/data.md).

The bundled tiny tokenizer (scripts/tiny-tokenizer: ids are UTF-8 bytes,
<|im_start|> = 1, <|im_end|> = 2) makes an independent reference easy: this
file renders the chats with python3-jinja2 (set up as transformers does),
encodes the bytes itself and masks everything but the assistant's content
and its <|im_end|>. Checked against it:

* `tessera prepare --assistant-only-loss` writes exactly those lines;
* `tessera train --tokenizer` trains exactly as on the prepared file;
* --val-split holds out the last lines; its eval loss (every --eval-every
  steps, in the metrics and the progress line) equals the float64 PyTorch
  reference's loss of the trained adapter on those lines, and evaluating
  does not change the training losses;
* --epochs picks ceil(epochs * lines / (batch * grad_accum)) steps;
* OUT/loss.svg holds the train and eval curves of the metrics;
* `tessera tokenize` shows the mask; bad input and a tokenizer whose
  vocabulary exceeds the embedding are one clear error.

    test_text_data.py --tessera build/bin/tessera [--keep]
"""
import json
import math
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

from jinja2.sandbox import ImmutableSandboxedEnvironment

import common
from common import TempDirTest, reference, tessera

BATCH, SEQ = 2, 48
TOK = os.path.join(common.ROOT, "scripts", "tiny-tokenizer")

LINES = [
    {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
    {"text": "Water the roots, not the leaves."},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                  {"role": "assistant", "content": "See you."}]},
    {"prompt": "Q: two plus two?\nA:", "completion": " four"},
    {"text": "Compost feeds the soil."},
    {"messages": [{"role": "user", "content": "Best month to sow beans?"},
                  {"role": "assistant", "content": "May, once frosts are over."}]},
    {"text": "Mulch keeps moisture in during dry spells."},
    {"messages": [{"role": "user", "content": "Sun or shade for tomatoes?"},
                  {"role": "assistant", "content": "Full sun."}]},
]


def reference_prepare(lines, seq):
    """The tiny tokenizer's samples, by hand: ids are bytes, specials are 1 and 2."""
    with open(os.path.join(TOK, "tokenizer_config.json")) as f:
        config = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(config["chat_template"])
    out = []
    for line in lines:
        if "messages" in line:
            # Render the chat with a marker around each assistant content to find its bytes.
            marked = [dict(m, content=f"\x10{m['content']}\x11") if m["role"] == "assistant" else m
                      for m in line["messages"]]
            text = template.render(messages=marked, add_generation_prompt=False, eos_token="<|im_end|>")
            ids, labels, counting = [], [], False
            i = 0
            while i < len(text):
                if text.startswith("<|im_start|>", i):
                    ids.append(1), labels.append(-100)
                    i += len("<|im_start|>")
                elif text.startswith("<|im_end|>", i):
                    ids.append(2), labels.append(2 if counting else -100)
                    counting = False
                    i += len("<|im_end|>")
                elif text[i] in "\x10\x11":
                    counting = text[i] == "\x10"
                    i += 1
                    if text[i - 1] == "\x11":
                        counting = "end"  # the next token, <|im_end|>, counts
                else:
                    b = list(text[i].encode())
                    ids += b
                    labels += b if counting is True else [-100] * len(b)
                    i += 1
        elif "prompt" in line:
            ids = list((line["prompt"] + line["completion"]).encode()) + [2]
            labels = [-100] * len(line["prompt"].encode()) + ids[len(line["prompt"].encode()):]
        else:
            ids = list(line["text"].encode()) + [2]
            labels = list(ids)
        out.append({"input_ids": ids[:seq], "labels": labels[:seq]})
    return out


def write_lines(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def svg_points(path):
    svg = ET.parse(path).getroot()
    return {p.get("class"): [tuple(map(float, xy.split(","))) for xy in p.get("points").split()]
            for p in svg.iter("{http://www.w3.org/2000/svg}polyline")}


def metrics(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


class TextData(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", 4,
                "--lora-targets", "all-linear")
        cls.raw = write_lines(os.path.join(cls.dir, "chat.jsonl"), LINES)
        cls.want = reference_prepare(LINES, SEQ)

    def train(self, name, *args):
        out = self.path(name)
        r = tessera("train", self.plan, "--weights", self.model, "--out", out, "--metrics", out + ".jsonl",
                    "--lr", 3e-3, *args)
        return r, out, metrics(out + ".jsonl")

    def test_prepare_equals_the_reference(self):
        out = self.path("prepared.jsonl")
        r = tessera("prepare", "--tokenizer", TOK, "--in", self.raw, "--out", out, "--seq", SEQ, "--assistant-only-loss")
        self.assertIn("8 samples, 8 rows", r.stdout)
        self.assertEqual(metrics(out), self.want)
        # Without --assistant-only-loss every token counts.
        out2 = self.path("prepared_all.jsonl")
        tessera("prepare", "--tokenizer", TOK, "--in", self.raw, "--out", out2, "--seq", SEQ)
        for got, want in zip(metrics(out2), self.want):
            self.assertEqual(got["input_ids"], want["input_ids"])
            self.assertEqual(got["labels"], got["input_ids"])

    def test_train_through_the_tokenizer_equals_training_on_the_prepared_file(self):
        prepared = write_lines(self.path("want.jsonl"), self.want)
        _, _, a = self.train("via_tok", "--tokenizer", TOK, "--data", self.raw, "--assistant-only-loss", "--steps", 4)
        _, _, b = self.train("via_file", "--data", prepared, "--steps", 4)
        self.assertEqual([m["loss"] for m in a], [m["loss"] for m in b])

    def test_validation_split_eval_loss_equals_the_reference(self):
        args = ["--tokenizer", TOK, "--data", self.raw, "--assistant-only-loss", "--steps", 4]
        r, out, got = self.train("val", *args, "--val-split", 0.25, "--eval-every", 2)
        self.assertIn("validation: 2 lines", r.stderr)
        self.assertRegex(r.stderr, r"step 4/4 loss [0-9.]+ eval [0-9.]+")
        evals = [(m["step"], m["eval_loss"]) for m in got if "eval_loss" in m]
        self.assertEqual([s for s, _ in evals], [2, 4])
        val = write_lines(self.path("val.jsonl"), self.want[-2:])
        want = reference("loss", "--model", self.model, "--data", val, "--batch", BATCH, "--seq", SEQ,
                         "--adapter", out)
        self.assertAlmostEqual(evals[-1][1], want[0]["loss"], delta=2e-4 * want[0]["loss"])
        # The training part is the first 6 lines, and evaluating does not disturb training.
        train = write_lines(self.path("train6.jsonl"), self.want[:6])
        _, _, plain = self.train("no_val", "--data", train, "--steps", 4)
        self.assertEqual([m["loss"] for m in got], [m["loss"] for m in plain])
        # loss.svg: one train point per step, one eval point per evaluation, higher loss = higher on the page.
        lines = svg_points(os.path.join(out, "loss.svg"))
        self.assertEqual(len(lines["train"]), 4)
        self.assertEqual(len(lines["eval"]), 2)
        losses = [m["loss"] for m in got]
        for (x1, y1), (x2, y2), l1, l2 in zip(lines["train"], lines["train"][1:], losses, losses[1:]):
            self.assertLess(x1, x2)
            self.assertEqual(y1 < y2, l1 > l2)
        self.assertAlmostEqual(lines["eval"][-1][0], lines["train"][-1][0])
        # tessera eval --tokenizer on the held-out lines agrees with the in-training eval.
        held = write_lines(self.path("held.jsonl"), LINES[-2:])
        e = tessera("eval", self.plan, "--weights", self.model, "--tokenizer", TOK, "--data", held,
                    "--assistant-only-loss", "--init-adapter", out)
        self.assertAlmostEqual(common.parse_eval(e)[0], evals[-1][1], delta=1e-5)

    def test_interrupted_text_run_resumes_with_its_plot(self):
        # Ctrl-C after a few steps: checkpoint + loss.svg of the steps done; --resume continues exactly and
        # the final plot has every step (the earlier ones from the metrics file).
        steps = 12
        args = ["--tokenizer", TOK, "--data", self.raw, "--assistant-only-loss", "--steps", steps, "--val-split", 0.25,
                "--eval-every", 3, "--checkpoint-every", 1]
        _, full, want = self.train("resume_full", *args)
        out = self.path("resume_cut")
        cmd = [str(a) for a in [common.ARGS.tessera, "train", self.plan, "--weights", self.model, "--out", out,
                                "--metrics", out + ".jsonl", "--lr", 3e-3, *args]]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            if os.path.exists(out + ".jsonl") and len(metrics(out + ".jsonl")) >= 4:
                break
            time.sleep(0.02)
        self.assertIsNone(proc.poll(), "the run ended before it could be interrupted")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        done = len(metrics(out + ".jsonl"))
        self.assertLess(done, steps)
        self.assertEqual(len(svg_points(os.path.join(out, "loss.svg"))["train"]), done)
        # Another data preparation is another run.
        r = tessera("train", self.plan, "--weights", self.model, "--out", out, "--metrics", out + ".jsonl",
                    "--lr", 3e-3, *args[:4], *args[5:], "--resume", check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn("data preparation", r.stderr)
        r, _, got = self.train("resume_cut", *args, "--resume")
        self.assertIn(f"resuming from {out}/checkpoint at step {done}", r.stderr)
        self.assertEqual([m["loss"] for m in got], [m["loss"] for m in want])
        self.assertEqual([m.get("eval_loss") for m in got], [m.get("eval_loss") for m in want])
        self.assertEqual(svg_points(os.path.join(out, "loss.svg")), svg_points(os.path.join(full, "loss.svg")))

    def test_val_data_file(self):
        val = write_lines(self.path("val_raw.jsonl"), LINES[:3])
        r, _, got = self.train("valdata", "--tokenizer", TOK, "--data", self.raw, "--steps", 2, "--val-data", val,
                               "--checkpoint-every", 0)
        self.assertIn("validation: 3 lines", r.stderr)
        # Without checkpoints the default is every steps / 10 steps (at least 1), and the last.
        self.assertEqual([m["step"] for m in got if "eval_loss" in m], [1, 2])

    def test_epochs_choose_the_step_count(self):
        r, _, got = self.train("epochs", "--tokenizer", TOK, "--data", self.raw, "--epochs", 1.5, "--grad-accum", 2)
        want = math.ceil(1.5 * len(LINES) / (BATCH * 2))
        self.assertIn(f"1.5 epochs of {len(LINES)} lines: {want} steps", r.stderr)
        self.assertEqual(len(got), want)
        r = tessera("train", self.plan, "--weights", self.model, "--data", self.raw, "--tokenizer", TOK,
                    "--epochs", 1, "--steps", 3, check=False)
        self.assertEqual(r.stderr.strip().splitlines()[-1], "error: --steps and --epochs are alternatives: give one")

    def test_tokenize_shows_the_mask(self):
        r = tessera("tokenize", "--tokenizer", TOK, "--in", self.raw, "--line", 1, "--assistant-only-loss")
        rows = [l.split(None, 3) for l in r.stdout.splitlines() if l.split() and l.split()[0].isdigit()]
        counted = "".join(row[3] if len(row) > 3 else " " for row in rows if row[2] == "[x]")
        self.assertEqual(counted, "Blue.<|im_end|>")
        r = tessera("tokenize", "--tokenizer", TOK, "--text", "hé", "--json")
        self.assertEqual(json.loads(r.stdout)["input_ids"], list("hé".encode()))

    def test_bad_input_is_one_clear_error(self):
        bad = self.path("bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(LINES[0]) + "\n" + '{"messages": [{"role": "robot", "content": "x"}]}\n')
        r = tessera("train", self.plan, "--weights", self.model, "--data", bad, "--tokenizer", TOK, "--steps", 1,
                    "--out", self.path("bad_out"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertEqual(r.stderr.strip().splitlines()[-1],
                         f"error: {bad}:2: messages[0]: unknown role 'robot' (expected system, user, assistant, tool "
                         "or developer) (--skip-bad-lines skips such lines)")
        r = tessera("train", self.plan, "--weights", self.model, "--data", bad, "--tokenizer", TOK, "--steps", 1,
                    "--out", self.path("bad_out2"), "--skip-bad-lines", "--checkpoint-every", 0)
        self.assertIn("1 bad lines skipped", r.stderr)
        r = tessera("train", self.plan, "--weights", self.model, "--data", self.raw, "--steps", 1,
                    "--assistant-only-loss", check=False)
        self.assertEqual(r.stderr.strip().splitlines()[-1], "error: --assistant-only-loss prepares text data and "
                         "needs --tokenizer DIR (token-id data already carries its labels)")
        r = tessera("train", self.plan, "--weights", self.model, "--data", self.raw, "--tokenizer", TOK, check=False)
        self.assertEqual(r.stderr.strip().splitlines()[-1], "error: --steps N or --epochs E is required")
        r = tessera("prepare", "--tokenizer", self.path("nowhere"), "--in", self.raw, "--out", self.path("x.jsonl"),
                    "--seq", 8, check=False)
        self.assertIn("not a tokenizer folder", r.stderr)

    def test_a_tokenizer_larger_than_the_embedding_is_refused(self):
        qwen = os.path.join(common.npm_oracles(), "tokenizers", "qwen3")
        r = tessera("train", self.plan, "--weights", self.model, "--data", self.raw, "--tokenizer", qwen,
                    "--steps", 1, "--out", self.path("qwen_out"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn(f"error: {qwen}: the tokenizer has 151669 tokens but the model's embedding has 256 rows",
                      r.stderr)
        self.assertNotIn("device", r.stderr)  # refused before the GPU is touched


if __name__ == "__main__":
    common.main()
