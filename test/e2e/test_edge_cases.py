#!/usr/bin/python3
"""e2e: the documented outcome of each training edge case (docs/training.md).

* lines longer than --seq are truncated, with one warning that counts them,
  and the loss is the reference loss of the truncated lines;
* a step whose labels are all -100 counts no token: it is skipped (metrics
  loss null, "skipped": true), no NaN anywhere, the adapter is unchanged;
* --lr 0 leaves the adapter bit-identical, weight decay included;
* NaN, inf or a non-integer in the data file: one error naming file:line;
* a loss that becomes non-finite stops training with an error, and --out
  holds the adapter of the last good step, complete (bit-identical to a run
  stopped there), with no temporary files left beside it.

    test_edge_cases.py --tessera build/bin/tessera [--keep]
"""
import json
import os
import re

import numpy as np

import common
from common import TempDirTest, reference, safetensors_io, tessera

BATCH, SEQ, RANK, ALPHA = 2, 16, 4, 8.0


def load_adapter(d):
    tensors, _ = safetensors_io.load(os.path.join(d, "adapter_model.safetensors"))
    return tensors


def write_lines(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


class EdgeCases(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", RANK,
                "--lora-alpha", ALPHA, "--lora-targets", "all-linear")
        cls.init = os.path.join(cls.dir, "init")
        reference("random-adapter", "--model", cls.model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 5, "--out", cls.init)
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), SEQ)

    def train(self, name, data, *flags, check=True):
        out, metrics = self.path(name), self.path(name + ".jsonl")
        r = tessera("train", self.plan, "--weights", self.model, "--data", data, "--init-adapter", self.init,
                    "--out", out, "--metrics", metrics, *flags, check=check)
        rows = []
        if os.path.exists(metrics):
            with open(metrics) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        return r, out, rows

    def test_long_lines_are_truncated(self):
        rows = [{"input_ids": [(7 * i + k) % 64 for k in range(SEQ + 5 * i)]} for i in range(4)]
        data = write_lines(self.path("long.jsonl"), rows)
        r, _, got = self.train("long_out", data, "--steps", 1, "--lr", 0)
        self.assertIn(f"warning: 3 of 4 lines of {data} are longer than {SEQ} tokens and are truncated", r.stderr)
        want = reference("loss", "--model", self.model, "--data", data, "--batch", BATCH, "--seq", SEQ,
                         "--adapter", self.init, "--first-batch")
        self.assertAlmostEqual(got[0]["loss"], want[0]["loss"], delta=1e-4)

    def test_all_ignored_step_is_skipped(self):
        ignored = [{"input_ids": list(range(10, 10 + SEQ)), "labels": [-100] * SEQ} for _ in range(BATCH)]
        normal = [{"input_ids": [(3 * k + i) % 64 for k in range(SEQ)]} for i in range(BATCH)]
        data = write_lines(self.path("ignored.jsonl"), ignored + normal)
        r, out, got = self.train("ignored_out", data, "--steps", 1, "--lr", 1e-2)
        self.assertIn("step 1: every label", r.stderr)
        self.assertEqual(got[0]["loss"], None)
        self.assertTrue(got[0]["skipped"])
        self.assertNotIn("nan", r.stderr.lower())
        before, after = load_adapter(self.init), load_adapter(out)
        for k in before:
            self.assertTrue(np.array_equal(before[k], after[k]), k)
        # The next step trains normally, as the first update (bias correction t = 1).
        r, out, got = self.train("ignored_out2", data, "--steps", 2, "--lr", 1e-2)
        self.assertEqual(got[0]["loss"], None)
        self.assertTrue(np.isfinite(got[1]["loss"]))
        self.assertTrue(any(not np.array_equal(load_adapter(self.init)[k], load_adapter(out)[k])
                            for k in before))

    def test_lr_zero_keeps_the_adapter(self):
        _, out, got = self.train("lr0_out", self.data, "--steps", 4, "--lr", 0, "--weight-decay", 0.1,
                                 "--max-grad-norm", 1.0, "--grad-accum", 2)
        self.assertEqual(len(got), 4)
        before, after = load_adapter(self.init), load_adapter(out)
        self.assertEqual(sorted(before), sorted(after))
        for k in before:
            self.assertTrue(np.array_equal(before[k], after[k]), f"{k} changed with --lr 0")

    def test_bad_numbers_in_data(self):
        ok = json.dumps({"input_ids": [1, 2, 3, 4]})
        cases = {
            "nan": '{"input_ids": [1, NaN, 3]}',
            "inf": '{"input_ids": [1, 2, 1e999]}',
            "float": '{"input_ids": [1, 2.5, 3]}',
            "label": '{"input_ids": [1, 2, 3], "labels": [1, -Infinity, 3]}',
        }
        for name, bad in cases.items():
            data = write_lines(self.path(f"bad_{name}.jsonl"), [ok, ok, bad])
            r, _, _ = self.train(f"bad_{name}_out", data, "--steps", 1, check=False)
            self.assertEqual(r.rc, 1, name)
            lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(f"{data}:3:", lines[0], name)

    def test_bad_optimizer_flags(self):
        cases = {("--grad-accum", 0): "--grad-accum: '0' is out of range: expected an integer in [1, ",
                 ("--lr-schedule", "step"): "--lr-schedule must be constant, linear or cosine",
                 ("--warmup-steps", -1): "--warmup-steps: '-1' is out of range: expected an integer in [0, ",
                 ("--max-grad-norm", -1): "--max-grad-norm must be a positive number",
                 ("--beta2", 1): "--beta2 = 1 must be in [0, 1)",
                 ("--eps", 0): "--eps = 0 must be positive",
                 ("--lr", -1): "--lr must be a non-negative number"}
        for (flag, value), message in cases.items():
            r, _, _ = self.train("flags_out", self.data, "--steps", 1, flag, value, check=False)
            self.assertEqual(r.rc, 1, flag)
            errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
            self.assertEqual(len(errors), 1, r.stderr)
            self.assertIn(message, errors[0], flag)
            self.assertFalse(os.path.exists(self.path("flags_out")), flag)

    def test_diverging_loss_stops_and_keeps_last_good_adapter(self):
        r, out, got = self.train("nan_out", self.data, "--steps", 20, "--lr", 1e30, check=False)
        self.assertEqual(r.rc, 1, r.stderr)
        err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        self.assertEqual(len(err), 1, r.stderr)
        # The stop names where the forward first holds a non-finite value: the diverged adapter's first product.
        m = re.search(r"the loss is (nan|inf) at step (\d+); the first NaN or infinity of its forward is in "
                      r"'/model/layers\.\d+/[^']*' \(layer \d+, dispatch \d+ of \d+ in eval: \w+\): stopped; "
                      r"the adapter after step \d+ was written", err[0])
        self.assertTrue(m, err[0])
        bad_step = int(m.group(2))
        self.assertGreater(bad_step, 1)
        self.assertEqual(len(got), bad_step - 1)  # metrics of the good steps only
        kept = load_adapter(out)
        self.assertTrue(all(np.isfinite(v).all() for v in kept.values()))
        self.assertFalse([n for n in os.listdir(self.dir) if ".tmp" in n], "temporary files left behind")
        # The same run stopped by --steps at the last good step writes the same adapter.
        _, ref_out, _ = self.train("nan_ref", self.data, "--steps", bad_step - 1, "--lr", 1e30)
        want = load_adapter(ref_out)
        for k in want:
            self.assertTrue(np.array_equal(kept[k], want[k]), k)


if __name__ == "__main__":
    common.main()
