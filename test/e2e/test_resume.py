#!/usr/bin/python3
"""e2e: checkpoints and `tessera train --resume` (docs/training.md).

A run interrupted with Ctrl-C (SIGINT) writes a checkpoint of its last step
and exits with 130. A run killed (SIGKILL) after a checkpoint and resumed with the same command
plus --resume ends with the adapter bit-identical to an uninterrupted run's,
and its metrics file holds every step once with the same losses; the setup
exercises everything that depends on the step (cosine schedule, clipping,
two micro-batches per step, LoRA dropout masks). Resuming a finished run
trains nothing; resuming with another setting, or from a damaged
checkpoint, is one clear error; a run without --resume starts over.

    test_resume.py --tessera build/bin/tessera [--keep]
"""
import json
import os
import signal
import subprocess
import time

import common
from common import TempDirTest, tessera

BATCH, SEQ, STEPS, EVERY = 2, 16, 30, 5


class Resume(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", BATCH, "--seq", SEQ, "--lora-rank", 4,
                "--lora-targets", "all-linear", "--lora-dropout", 0.1)
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), SEQ)
        cls.full = os.path.join(cls.dir, "full")
        tessera("train", *cls.args(cls.full))

    @classmethod
    def args(cls, out, *extra, steps=STEPS, every=EVERY):
        return [cls.plan, "--weights", cls.model, "--data", cls.data, "--steps", steps, "--out", out,
                "--metrics", out + ".jsonl", "--checkpoint-every", every, "--grad-accum", 2,
                "--max-grad-norm", 0.5, "--lr-schedule", "cosine", "--warmup-steps", 3, "--lr", 3e-3, *extra]

    def read(self, out):
        with open(os.path.join(out, "adapter_model.safetensors"), "rb") as f:
            adapter = f.read()
        with open(out + ".jsonl") as f:
            metrics = [json.loads(line) for line in f if line.strip()]
        return adapter, metrics

    def checkpoint_step(self, out):
        try:
            with open(os.path.join(out, "checkpoint", "state.json")) as f:
                return json.load(f)["step"]
        except (OSError, ValueError, KeyError):
            return None

    def test_killed_run_resumes_exactly(self):
        out = self.path("killed")
        cmd = [str(a) for a in [common.ARGS.tessera, "train", *self.args(out)]]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while (self.checkpoint_step(out) or 0) < EVERY and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertTrue(alive, "the run ended before it could be interrupted")
        at = self.checkpoint_step(out)
        self.assertIsNotNone(at, "no checkpoint was written before the kill")
        self.assertLess(at, STEPS)
        r = tessera("train", *self.args(out, "--resume"))
        self.assertIn(f"resuming from {os.path.join(out, 'checkpoint')} at step {at} of {STEPS}", r.stderr)
        want_adapter, want_metrics = self.read(self.full)
        adapter, metrics = self.read(out)
        self.assertEqual([m["step"] for m in metrics], list(range(1, STEPS + 1)))
        self.assertEqual([m["loss"] for m in metrics], [m["loss"] for m in want_metrics])
        self.assertEqual([m["lr"] for m in metrics], [m["lr"] for m in want_metrics])
        self.assertEqual(adapter, want_adapter, "the resumed adapter differs from the uninterrupted run's")
        # One tensor file beside state.json: older ones are removed.
        self.assertEqual(sorted(os.listdir(os.path.join(out, "checkpoint"))),
                         ["state.json", f"step-{STEPS:08d}.safetensors"])

    def test_ctrl_c_checkpoints_then_resumes(self):
        # SIGINT: the step in flight finishes, a checkpoint of it is written, exit status 130.
        out = self.path("ctrl_c")
        cmd = [str(a) for a in [common.ARGS.tessera, "train", *self.args(out)]]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            if os.path.exists(out + ".jsonl") and len(open(out + ".jsonl").read().splitlines()) >= 2:
                break
            time.sleep(0.02)
        self.assertIsNone(proc.poll(), "the run ended before it could be interrupted")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        at = self.checkpoint_step(out)
        self.assertIn(f"interrupted after step {at} of {STEPS}", err)
        self.assertEqual(len(self.read(out)[1]), at, "the checkpoint is not of the last step done")
        tessera("train", *self.args(out, "--resume"))
        self.assertEqual(self.read(out)[0], self.read(self.full)[0])
        self.assertEqual([m["loss"] for m in self.read(out)[1]], [m["loss"] for m in self.read(self.full)[1]])

    def test_finished_run_resumes_to_nothing(self):
        out = self.path("finished")
        tessera("train", *self.args(out))
        r = tessera("train", *self.args(out, "--resume"))
        self.assertIn(f"the checkpoint is at the last step ({STEPS}): nothing to train", r.stderr)
        self.assertEqual(self.read(out)[0], self.read(self.full)[0])

    def test_other_settings_are_an_error(self):
        out = self.path("other")
        tessera("train", *self.args(out, steps=8, every=4))
        r = tessera("train", *self.args(out, "--resume"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn("error: " + os.path.join(out, "checkpoint") + ": the checkpoint was made with --steps 8, "
                      f"this run has {STEPS}", r.stderr)
        # Without --resume the same command starts over (and says so).
        r = tessera("train", *self.args(out))
        self.assertIn("holds step 8 of an earlier run; this run starts over", r.stderr)
        self.assertEqual(self.read(out)[0], self.read(self.full)[0])

    def test_damaged_checkpoint_is_an_error(self):
        out = self.path("damaged")
        tessera("train", *self.args(out, steps=5))
        state = os.path.join(out, "checkpoint", "state.json")
        with open(state, "w") as f:
            f.write("{ not json")
        r = tessera("train", *self.args(out, "--resume"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn(f"error: {state}: not valid JSON", r.stderr)

    def test_no_checkpoint_starts_at_step_one(self):
        out = self.path("fresh")
        r = tessera("train", *self.args(out, "--resume"))
        self.assertIn("no checkpoint in", r.stderr)
        self.assertEqual(self.read(out)[0], self.read(self.full)[0])

    def test_out_with_a_trailing_slash_names_the_folder(self):
        """`--out adapter/` (as the README writes it), with a checkpoint on the way: the adapter goes into
        the folder, its temporary folder beside it (it once went inside, and the rename failed)."""
        out = self.path("slash")
        tessera("train", self.plan, "--weights", self.model, "--data", self.data, "--steps", 2,
                "--checkpoint-every", 1, "--out", out + "/")
        self.assertEqual(sorted(os.listdir(out)),
                         ["adapter_config.json", "adapter_model.safetensors", "checkpoint", "loss.svg"])
        self.assertEqual([n for n in os.listdir(self.dir) if n.startswith("slash.")], [])


if __name__ == "__main__":
    common.main()
