#!/usr/bin/python3
"""e2e: issue 15, one test per class of bad input or hostile condition that
used to crash, hang or give a silent wrong result, now each one clear error
(exit 1, exactly one `error:` line naming the file / field, never a signal).

Plans are code (docs/plan-format.md, "Trust model"): a plan whose dispatch is
redirected to a smaller buffer, whose group count is raised, or whose SPIR-V
is damaged (checksum recomputed each time) is refused before the first
dispatch. Inputs: JSON nested 100k deep in a data line, an adapter header and
a plan manifest; a FIFO and /dev/zero as --data; out-of-range numbers.
Checkpoints: a flipped bit, impossible counts, damage that blocks only
--resume. Concurrency: one run per --out (lock with the holder's pid, stale
locks taken over), whole metrics lines from concurrent runs, leftovers of
killed writes removed. Faults (TESSERA_FAULT): a lost device or exhausted
memory ends the run with the last checkpoint intact, and --resume continues
bit-exactly. Importer: an INT8 weight and a sliding window hidden by a static
export are errors.

    test_hardening.py --tessera build/bin/tessera [--keep]
"""
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper

import common
from common import TempDirTest, reference, safetensors_io, tessera
from planfile import PlanFile

CRASH_MARKERS = ("Traceback", "terminate called", "Aborted", "Segmentation fault", "core dumped",
                 "AddressSanitizer", "LLVM ERROR", "Stack dump")
SEQ = 16
DEEP = 100000


class Hardening(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", 1, "--seq", SEQ, "--lora-rank", 2,
                "--lora-targets", "q_proj,v_proj")
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), SEQ, max_lines=6)

    # ----------------------------------------------------------------- helpers

    def expect_error(self, *args, contains=(), env=None, timeout=120, max_len=600):
        t0 = time.time()
        r = tessera(*args, env=env, check=False, timeout=timeout)
        info = r.describe()
        self.assertGreaterEqual(r.rc, 0, "killed by a signal:\n" + info)
        self.assertEqual(r.rc, 1, "exit code is not 1:\n" + info)
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        self.assertEqual(len(errors), 1, "not exactly one 'error:' line:\n" + info)
        for m in CRASH_MARKERS:
            self.assertNotIn(m, r.stderr + r.stdout, info)
        self.assertLess(len(errors[0]), max_len, "the error line is too long:\n" + errors[0][:2000])
        for c in contains:
            self.assertIn(c, errors[0], info)
        r.error, r.seconds = errors[0], time.time() - t0
        return r

    def train_args(self, out, *extra, plan=None, data=None, steps=3):
        return ["train", plan or self.plan, "--weights", self.model, "--data", data or self.data, "--steps", steps,
                "--out", out, *extra]

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

    # ----------------------------------------------------------------- non-finite values

    def test_a_non_finite_loss_names_the_first_layer_where_it_appeared(self):
        # One infinity in layer 1's down_proj weight: the loss of step 1 is NaN; the stop names the forward's
        # first output holding a NaN or an infinity, layer 1's down_proj product with its residual add
        # (layer 0 stays finite),
        # and keeps the adapter of step 0.
        m = onnx.load(self.model)
        for init in m.graph.initializer:
            if init.name == "model.layers.1.mlp.down_proj.weight":
                a = numpy_helper.to_array(init).copy()
                a[0, 0] = np.inf
                init.CopyFrom(numpy_helper.from_array(a.astype(np.float32), init.name))
                break
        else:
            self.fail("no model.layers.1.mlp.down_proj.weight in the model")
        model = self.path("inf.onnx")
        onnx.save(m, model)
        plan = self.path("inf.tplan")
        tessera("compile", model, "-o", plan, "--batch", 1, "--seq", SEQ, "--lora-rank", 2,
                "--lora-targets", "q_proj,v_proj")
        out = self.path("inf-adapter")
        r = self.expect_error("train", plan, "--weights", model, "--data", self.data, "--steps", 3, "--out", out,
                              contains=("the loss is nan at step 1; the first NaN or infinity of its forward is in "
                                        "'/model/layers.1/", "' (layer 1, dispatch ",
                                        "the adapter after step 0 was written to " + out))
        self.assertTrue(os.path.exists(os.path.join(out, "adapter_model.safetensors")), r.describe())

    def test_a_non_finite_gradient_norm_says_where(self):
        # An adapter whose B is zero and whose A is huge (1e19): the forward is the base model's (B (A x) = 0,
        # finite), the loss finite, but lora_B's gradient dY^T (A x) ~ 1e18 and the sum of its squares overflows
        # float32. The stop names the step, says the training step's values are finite (the search ran it again
        # dispatch by dispatch) and names the largest gradient, a lora_B.
        ad = self.path("huge-a")
        reference("random-adapter", "--model", self.model, "--rank", 2, "--targets", "q_proj,v_proj",
                  "--b-std", 0, "--seed", 3, "--out", ad)
        f = os.path.join(ad, "adapter_model.safetensors")
        tensors, meta = safetensors_io.load(f)
        for k in tensors:
            if "lora_A" in k:
                tensors[k] = (tensors[k] * 1e19).astype(np.float32)
        safetensors_io.save(f, tensors, meta)
        out = self.path("huge-out")
        r = self.expect_error(*self.train_args(out, "--init-adapter", ad, "--lr", 1e-4),
                              contains=("the gradient norm is inf at step 1; every value of its training step is "
                                        "finite: the sum of the gradients' squares overflows (the largest gradient, ",
                                        "lora_B", "the adapter after step 0 was written to " + out))
        self.assertTrue(os.path.exists(os.path.join(out, "adapter_model.safetensors")), r.describe())

    # ----------------------------------------------------------------- plans are code

    def test_redirected_binding_is_refused(self):
        pf = PlanFile(self.plan)
        ev = pf.program("eval")
        loss = pf.manifest["loss"]
        d = next(d for d in ev["dispatches"] if pf.manifest["buffers"][d["bindings"][-1]]["bytes"] > 4)
        d["bindings"][-1] = loss
        p = pf.write(self.path("redirect.tplan"))
        r = self.expect_error("eval", p, "--weights", self.model, "--data", self.data,
                              contains=("buffer 'loss' has 4 bytes", "may touch"))
        self.assertNotIn("eval loss", r.stdout)

    def test_raised_group_count_is_refused_at_once(self):
        pf = PlanFile(self.plan)
        d = pf.program("train_step")["dispatches"][3]
        d["groups"] = [65535, 1, 1]
        r = self.expect_error(*self.train_args(self.path("g1"), plan=pf.write(self.path("groups.tplan"))),
                              contains=("groups[0] = 65535 is more than the",))
        self.assertLess(r.seconds, 60)
        # Raising the recorded bound with it does not help: no more workgroups than elements.
        pf.manifest["kernels"][d["kernel"]]["interface"]["max_groups"] = [65535, 1, 1]
        self.expect_error(*self.train_args(self.path("g2"), plan=pf.write(self.path("groups2.tplan"))),
                          contains=("65535 workgroups, more than the",))

    def test_damaged_spirv_never_reaches_the_driver(self):
        # One byte of one kernel changed, the checksum recomputed: every outcome
        # is a clean refusal (or, for a byte that changes nothing, a normal run).
        pf = PlanFile(self.plan)
        rng = random.Random(15)
        one_line = self.write("one.jsonl", open(self.data).readline())
        refused = 0
        for trial in range(8):
            k = rng.randrange(len(pf.manifest["kernels"]))
            off, size = pf.kernel_blob(k)
            blobs = bytearray(pf.blobs)
            pos = off + rng.randrange(20, size)
            pf.blobs[pos] = (pf.blobs[pos] + rng.randrange(1, 256)) % 256
            p = pf.write(self.path(f"spv{trial}.tplan"))
            pf.blobs = blobs
            r = tessera("eval", p, "--weights", self.model, "--data", one_line, check=False, timeout=120)
            self.assertIn(r.rc, (0, 1), r.describe())
            if r.rc == 1:
                refused += 1
                self.assertEqual(len([l for l in r.stderr.splitlines() if l.startswith("error:")]), 1, r.describe())
                self.assertRegex(r.stderr, r"error: .*(kernel '[a-z_0-9]+'|kernels\[\d+\] \('[a-z_0-9]+'\))", r.describe())
        self.assertGreater(refused, 0)
        # An opcode no SPIR-V has, in the middle of a kernel: refused by the validator.
        off, size = pf.kernel_blob(0)
        words = struct.unpack_from(f"<{size // 4}I", pf.blobs, off)
        i, at = 5, None
        while i < len(words):  # the first OpLoad (opcode 61)
            if words[i] & 0xFFFF == 61:
                at = i
                break
            i += words[i] >> 16
        struct.pack_into("<I", pf.blobs, off + 4 * at, (words[at] & 0xFFFF0000) | 0x7FFF)
        self.expect_error("eval", pf.write(self.path("opcode.tplan")), "--weights", self.model, "--data", one_line,
                          contains=("its SPIR-V",))

    def test_deep_json_in_a_plan_manifest(self):
        pf = PlanFile(self.plan)
        text = json.dumps(pf.manifest).replace(json.dumps(pf.manifest["model_file"]),
                                               "[" * DEEP + "]" * DEEP, 1)
        self.expect_error(*self.train_args(self.path("deep"), plan=pf.write(self.path("deep.tplan"), text)),
                          contains=("nested deeper than 64 levels",))

    # ----------------------------------------------------------------- inputs

    def test_deep_json_in_data_and_adapter(self):
        p = self.write("deep.jsonl", '{"input_ids": ' + "[" * DEEP + "]" * DEEP + "}\n")
        self.expect_error(*self.train_args(self.path("d"), data=p), contains=("deep.jsonl:1:", "nested deeper"))
        ad = self.path("deep-adapter")
        os.makedirs(ad)
        header = ('{"t": {"dtype": "F32", "shape": ' + "[" * DEEP + "]" * DEEP + ', "data_offsets": [0, 4]}}').encode()
        self.write("deep-adapter/adapter_model.safetensors", struct.pack("<Q", len(header)) + header + b"\0" * 4)
        self.expect_error(*self.train_args(self.path("d2"), "--init-adapter", ad), contains=("nested deeper",))
        # A shape that overflows 64 bits.
        header = b'{"t": {"dtype": "F32", "shape": [2147483648, 2147483648], "data_offsets": [0, 0]}}'
        self.write("deep-adapter/adapter_model.safetensors", struct.pack("<Q", len(header)) + header)
        self.expect_error(*self.train_args(self.path("d3"), "--init-adapter", ad),
                          contains=("shape [2147483648,2147483648] of F32 needs more bytes than the file holds",))

    def test_token_id_beyond_int64(self):
        p = self.write("big.jsonl", '{"input_ids": [1, 18446744073709551615]}\n')
        self.expect_error(*self.train_args(self.path("b"), data=p), contains=("token id 18446744073709551615",))

    def test_fifo_and_dev_zero_as_data(self):
        fifo = self.path("data.fifo")
        os.mkfifo(fifo)
        text = open(self.data).read()

        def feed():
            with open(fifo, "w") as f:
                f.write(text)
        t = threading.Thread(target=feed)
        t.start()
        r = tessera(*self.train_args(self.path("fifo-out"), data=fifo), timeout=120)
        t.join()
        self.assertIn("adapter written to", r.stderr)
        # The checkpoint identifies the data by content: the regular file resumes it.
        r = tessera(*self.train_args(self.path("fifo-out"), "--resume"))
        self.assertIn("nothing to train", r.stderr)
        r = self.expect_error(*self.train_args(self.path("z"), data="/dev/zero"), contains=("NUL byte",))
        self.assertLess(r.seconds, 30)

    def test_numbers_out_of_range(self):
        for batch in ("2147483648", "3e9", "4294967297"):
            r = self.expect_error("compile", self.model, "-o", self.path("big.tplan"), "--batch", batch,
                                  contains=("--batch",))
            self.assertLess(r.seconds, 30)
        self.expect_error("compile", self.model, "-o", self.path("big.tplan"), "--batch", 4096, "--seq", 8192,
                          contains=("too large",))
        self.expect_error(*self.train_args(self.path("s"), steps="99999999999999999999"),
                          contains=("--steps", "out of range"))
        for alpha in ("0", "nan", "inf"):
            self.expect_error("compile", self.model, "-o", self.path("a.tplan"), "--lora-alpha", alpha,
                              contains=("--lora-alpha",))
        self.expect_error("compile", self.model, "-o", self.path("r.tplan"), "--lora-rank", 100000,
                          "--lora-targets", "q_proj", contains=("--lora-rank",))
        self.expect_error("compile", self.model, "-o", self.path("r.tplan"), "--lora-rank", 1000,
                          "--lora-targets", "q_proj", contains=("--lora-rank 1000 is larger than",
                                                               "smaller dimension", "use --lora-rank 128 or less"))
        self.assertFalse(os.path.exists(self.path("r.tplan")))

    # ----------------------------------------------------------------- importer

    def test_int8_weight_is_an_error(self):
        m = onnx.load(self.model)
        name = next(t.name for t in m.graph.initializer if "q_proj" in t.name)
        for mode in ("direct", "cast"):
            mm = onnx.ModelProto()
            mm.CopyFrom(m)
            for i, t in enumerate(mm.graph.initializer):
                if t.name == name:
                    q = np.clip(np.round(numpy_helper.to_array(t) * 100), -127, 127).astype(np.int8)
                    if mode == "direct":
                        mm.graph.initializer[i].CopyFrom(numpy_helper.from_array(q, name))
                    else:
                        mm.graph.initializer[i].CopyFrom(numpy_helper.from_array(q, name + "_q"))
                        mm.graph.node.insert(0, helper.make_node("Cast", [name + "_q"], [name], to=1, name="cast_q"))
            p = self.path(f"int8-{mode}.onnx")
            onnx.save(mm, p)
            self.expect_error("compile", p, "-o", self.path("i8.tplan"),
                              contains=("integer initializer", "quantized", "MatMul"))

    def test_static_export_with_a_hidden_sliding_window(self):
        gen = os.path.join(common.ROOT, "test", "lit", "import", "Inputs", "gen_models.py")
        base = self.path("static.onnx")
        common.python(gen, "static_export", base)
        m = onnx.load(base)
        T = 8
        causal = np.where(np.tril(np.ones((T, T))) > 0, 0.0, -3.4028235e38).astype(np.float32)[None, None]
        # Two layers' masks, both plainly causal at the export length: one of
        # them must be a sliding window of at least 8 tokens.
        for i, t in enumerate(m.graph.initializer):
            if t.name == "mask_sw":
                m.graph.initializer[i].CopyFrom(numpy_helper.from_array(causal, "mask_sw"))
        m.graph.initializer.append(numpy_helper.from_array(causal, "mask_global"))
        add = next(n for n in m.graph.node if n.op_type == "Add" and "mask_sw" in n.input)
        out = add.output[0]
        add.output[0] = out + "_local"
        m.graph.node.insert(list(m.graph.node).index(add) + 1,
                            helper.make_node("Add", [out + "_local", "mask_global"], [out], name="add_global"))
        p = self.path("hidden-window.onnx")
        onnx.save(m, p)
        tessera("compile", p, "-o", self.path("hw8.tplan"), "--batch", 1, "--seq", T, "--lora-targets", "val_q")
        self.expect_error("compile", p, "-o", self.path("hw.tplan"), "--batch", 1, "--seq", 16,
                          "--lora-targets", "val_q", contains=("both plain causal masks", "--seq 16"))

    # ----------------------------------------------------------------- checkpoints

    def test_damaged_checkpoint(self):
        out = self.path("ck")
        tessera(*self.train_args(out, "--checkpoint-every", 1))
        ck = os.path.join(out, "checkpoint")
        state = json.load(open(os.path.join(ck, "state.json")))
        tensors = os.path.join(ck, state["tensors"])
        raw = bytearray(open(tensors, "rb").read())
        raw[-5] ^= 0x04  # one bit of one value
        open(tensors, "wb").write(raw)
        self.expect_error(*self.train_args(out, "--resume", "--checkpoint-every", 1),
                          contains=("checksum mismatch", "delete"))
        # Without --resume the run starts over, says so, and replaces it.
        r = tessera(*self.train_args(out, "--checkpoint-every", 1))
        self.assertIn("cannot be used; this run starts over", r.stderr)
        r = tessera(*self.train_args(out, "--resume", "--checkpoint-every", 1))
        self.assertIn("nothing to train", r.stderr)
        # Counts no run can produce.
        sp = os.path.join(ck, "state.json")
        st = json.load(open(sp))
        st["updates"] = 2 ** 62
        json.dump(st, open(sp, "w"))
        self.expect_error(*self.train_args(out, "--resume", "--checkpoint-every", 1),
                          contains=("'updates' (4611686018427387904)",))

    def test_leftover_temporaries_are_removed(self):
        out = self.path("left")
        tessera(*self.train_args(out))
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = [self.path(f"left.tmp-{dead.pid}-00beef"), os.path.join(out, f"adapter_model.safetensors.tmp-{dead.pid}-abc123")]
        os.makedirs(stale[0])
        self.write(os.path.join(stale[0], "adapter_model.safetensors"), b"x")
        self.write(stale[1], b"x")
        r = tessera(*self.train_args(out))
        self.assertIn("removed 2 temporary file(s)", r.stderr)
        for s in stale:
            self.assertFalse(os.path.exists(s), s)

    # ----------------------------------------------------------------- concurrency

    def test_one_run_per_out(self):
        out = self.path("busy")
        slow = [str(a) for a in [common.ARGS.tessera, *self.train_args(out, steps=100000, )]]
        proc = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 120
            while not os.path.exists(out + ".lock") and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            self.expect_error(*self.train_args(out + "/"), contains=(f"(pid {proc.pid},", "in use by another"))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # The killed run's lock file stays; the next run takes it over.
        self.assertTrue(os.path.exists(out + ".lock"))
        r = tessera(*self.train_args(out))
        self.assertIn(f"left by pid {proc.pid}, which is no longer running: taken over", r.stderr)
        self.assertFalse(os.path.exists(out + ".lock"))

    def test_shared_metrics_file_keeps_every_line(self):
        # Two runs at once on one --metrics file: the first to open it starts
        # it over, the other appends (and says so); every line stays whole.
        metrics = self.path("shared.jsonl")
        cmds = [[str(a) for a in [common.ARGS.tessera, *self.train_args(self.path(f"m{i}"), "--metrics", metrics,
                                                                        "--checkpoint-every", 0, steps=150)]]
                for i in range(2)]
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], errs)
        rows = [json.loads(l) for l in open(metrics).read().splitlines()]  # throws on a torn line
        self.assertEqual(sum("appends its lines" in e for e in errs), 1, errs)
        self.assertEqual(len(rows), 300)
        self.assertEqual(sorted(r["step"] for r in rows), sorted(list(range(1, 151)) * 2))

    # ----------------------------------------------------------------- faults

    def test_lost_device_keeps_the_last_checkpoint(self):
        # 2 submissions per step (train_step, optimizer_step): the 9th fails, in step 5.
        full, out = self.path("full"), self.path("lost")
        args = ["--checkpoint-every", 2, "--metrics"]
        tessera(*self.train_args(full, *args, full + ".jsonl", steps=8))
        r = self.expect_error(*self.train_args(out, *args, out + ".jsonl", steps=8),
                              env={"TESSERA_FAULT": "device-lost:9"},
                              contains=("VK_ERROR_DEVICE_LOST", "at step 5 of 8", "the checkpoint of step 4",
                                        "--resume"))
        self.assertEqual(json.load(open(os.path.join(out, "checkpoint", "state.json")))["step"], 4)
        tessera(*self.train_args(out, *args, out + ".jsonl", "--resume", steps=8))
        with open(os.path.join(full, "adapter_model.safetensors"), "rb") as a, \
                open(os.path.join(out, "adapter_model.safetensors"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "the resumed adapter differs from an uninterrupted run's")

    def test_out_of_memory(self):
        self.expect_error(*self.train_args(self.path("oom1")), env={"TESSERA_FAULT": "oom-alloc:1"},
                          contains=("cannot allocate", "VK_ERROR_OUT_OF_DEVICE_MEMORY"))
        out = self.path("oom2")
        self.expect_error(*self.train_args(out, "--checkpoint-every", 1), env={"TESSERA_FAULT": "oom-submit:3"},
                          contains=("out of device memory submitting program 'train_step'", "at step 2 of 3",
                                    "the checkpoint of step 1"))
        self.expect_error(*self.train_args(self.path("oom3")), env={"TESSERA_FAULT": "oom-submit:x"},
                          contains=("TESSERA_FAULT=oom-submit:x",))

    def test_robust_access_trains_the_same(self):
        a, b = self.path("plain"), self.path("robust")
        tessera(*self.train_args(a, "--metrics", a + ".jsonl"))
        r = tessera(*self.train_args(b, "--metrics", b + ".jsonl", "--robust-access"))
        self.assertIn("robustBufferAccess", r.stderr)
        la = [json.loads(l)["loss"] for l in open(a + ".jsonl")]
        lb = [json.loads(l)["loss"] for l in open(b + ".jsonl")]
        self.assertEqual(la, lb)


if __name__ == "__main__":
    common.main()
