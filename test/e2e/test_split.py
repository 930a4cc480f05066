#!/usr/bin/python3
"""e2e: weights beyond the device's buffer limit are split into row tiles (docs/memory.md).

* a tied vocabulary of 151,936 x 256 (148 MiB of f32, over lavapipe's 128 MiB
  maxStorageBufferRange) compiles for the default 128 MiB profile into tiles
  within the limit that name their initializer rows; it evaluates and trains
  on lavapipe, the eval loss equals the float64 torch reference to 1e-4 and
  the per-step losses of 2 AdamW steps equal the reference's to 1e-4;
* on a model small enough to run unsplit, a profile with a 700,000-byte limit
  splits the embedding and the LM head into 3 uneven tiles; its per-step
  losses equal the unsplit plan's (fp32), and its eval loss and gradients
  equal the unsplit plan's in f16 and bf16 too (as close as the unsplit plan is to
  fp32); every kernel of the split plans passes spirv-val;
* --memory-budget picks micro-batches, recompute and, last, weights streamed
  from host memory; --stream-weights plans train bit-identically to plans
  that keep the weights on the device, under a heap only they fit.
Ids are drawn over the whole vocabulary, so every tile is read.
"""
import json
import os
import re

import numpy as np

import common
from common import TempDirTest, parse_eval, reference, rel_norm_err, safetensors_io, tessera

RANK, ALPHA = 4, 8.0
LIMIT = 128 << 20


manifest = common.plan_manifest


def write_ids(path, vocab, seq, lines, seed, masked=True):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(lines):
            ids = rng.integers(0, vocab, size=seq).tolist()
            line = {"input_ids": ids}
            if i == 1 and masked:  # a prompt-masked line
                line["labels"] = [-100] * 3 + ids[3:]
            f.write(json.dumps(line) + "\n")
    return path


def profile_with_limit(path, limit, heap=None):
    with open(os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")) as f:
        p = json.load(f)
    p["name"] = "lavapipe-limit"
    p["device"]["max_buffer_bytes"] = limit
    if heap is not None:
        p["device"]["memory_heap_bytes"] = heap
    with open(path, "w") as f:
        json.dump(p, f)
    return path


def losses(metrics):
    with open(metrics) as f:
        return [json.loads(l)["loss"] for l in f if l.strip()]


def check_copy_schedule(plan, prog, steps):
    """The ordering a transfer queue needs, checked from the plan alone: copy batches (transfer queue) and
    compute segments (compute queue) ordered by timeline semaphores, a wait on value v meaning the v-th
    step of the other kind is done (with everything before it on its queue)."""
    name, disp = prog["name"], prog["dispatches"]
    def root(i):
        while "alias_of" in plan["buffers"][i]:
            i = plan["buffers"][i]["alias_of"]
        return i
    segments = [s for s in steps if not s["transfer"]]
    batches = [s for s in steps if s["transfer"]]
    # Every dispatch once: the copies in batches, the rest in segments, each queue in program order.
    seg_of, batch_of = {}, {}
    for k, s in enumerate(segments, 1):
        seg_of.update({i: k for i in s["dispatches"]})
    for j, s in enumerate(batches, 1):
        batch_of.update({i: j for i in s["dispatches"]})
    assert sorted(list(seg_of) + list(batch_of)) == list(range(len(disp))), f"{name}: a dispatch missing or twice"
    assert all(bool(disp[i].get("copy")) for i in batch_of) and not any(disp[i].get("copy") for i in seg_of), name
    for kind in (segments, batches):
        order = [i for s in kind for i in s["dispatches"]]
        assert order == sorted(order), f"{name}: a queue out of program order"
    # What each step has waited for, directly or through its queue's order.
    done_batches, done_segments, t, w = [], [], 0, 0
    for s in segments:
        t = max(t, s["wait"])
        done_batches.append(t)
    for s in batches:
        w = max(w, s["wait"])
        done_segments.append(w)
    # One queue runs the steps in their order: each waits only for a step before it.
    seen = {False: 0, True: 0}
    for s in steps:
        assert s["wait"] <= seen[not s["transfer"]], f"{name}: a step waits for one after it"
        seen[s["transfer"]] += 1
    assert done_batches[-1] == len(batches), f"{name}: the last segment does not wait for every copy"
    for c, j in batch_of.items():
        r = root(disp[c]["bindings"][1])
        nxt = next((i for i in sorted(batch_of) if i > c and root(disp[i]["bindings"][1]) == r), len(disp))
        for x, k in seg_of.items():
            if r not in {root(b) for b in disp[x]["bindings"]}:
                continue
            if x < c:   # the slot's earlier tenant is done before the copy overwrites it
                assert k <= done_segments[j - 1], f"{name}: copy {c} may overwrite what dispatch {x} uses"
            elif x < nxt:  # the copy is done before its readers
                assert done_batches[k - 1] >= j, f"{name}: dispatch {x} may read copy {c} before it lands"


class SplitLargeTensors(TempDirTest):
    VOCAB = 151936

    def big_model(self):
        """The tied 151,936 x 256 model (148 MiB of embedding), made once for the class."""
        path = self.path("v152k/tiny-llama.onnx")
        if not os.path.exists(path):
            common.make_model(path, "--vocab", self.VOCAB, "--hidden", 256, "--layers", 1, "--tie", "--seed", 3)
        return path

    def compile_plan(self, name, model, batch, seq, *extra):
        path = self.path(name)
        tessera("compile", model, "-o", path, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                "--lora-alpha", ALPHA, "--lora-targets", "all-linear", *extra)
        return path

    def train(self, plan, model, data, adapter, steps, tag, *extra, env=None):
        metrics = self.path(f"metrics-{tag}.jsonl")
        tessera("train", plan, "--weights", model, "--data", data, "--steps", steps, "--lr", 1e-2,
                "--init-adapter", adapter, "--metrics", metrics, "--out", self.path(f"out-{tag}"), *extra, env=env)
        return losses(metrics)

    def tiles(self, plan, name):
        return sorted((b["row_offset"], b["shape"][0], b["bytes"]) for b in manifest(plan)["buffers"]
                      if b["kind"] == "weight" and b["name"] == name and "row_offset" in b)

    def test_vocabulary_over_the_device_limit(self):
        batch, seq, vocab = 1, 16, self.VOCAB
        model = self.big_model()
        data = write_ids(self.path("v152k.jsonl"), vocab, seq, 3, seed=7)
        plan = self.compile_plan("v152k.tplan", model, batch, seq)
        m = manifest(plan)
        tiles = self.tiles(plan, "model.embed_tokens.weight")
        self.assertEqual([(o, n) for o, n, _ in tiles], [(0, 75968), (75968, 75968)])
        self.assertEqual(sum(n for _, n, _ in tiles), vocab)
        big = [(b["name"], b["bytes"]) for b in m["buffers"] if b["bytes"] > LIMIT]
        self.assertEqual(big, [], "buffers over the 128 MiB limit")
        self.assertLessEqual(m["memory"]["largest_buffer_bytes"], LIMIT)

        got = parse_eval(tessera("eval", plan, "--weights", model, "--data", data))[0]
        want = reference("loss", "--model", model, "--data", data, "--batch", batch, "--seq", seq)[-1]["loss"]
        self.assertAlmostEqual(got, want, delta=1e-4 * abs(want))

        ad = self.path("adapter-v152k")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 5, "--b-std", 0.05, "--out", ad)
        steps = 2
        got = self.train(plan, model, data, ad, steps, "v152k")
        want = [r["loss"] for r in reference("train", "--model", model, "--data", data, "--batch", batch,
                                             "--seq", seq, "--adapter", ad, "--scale", ALPHA / RANK,
                                             "--steps", steps, "--lr", 1e-2)]
        self.assertEqual(len(got), steps)
        for s, (g, w) in enumerate(zip(got, want), 1):
            self.assertAlmostEqual(g, w, delta=1e-4 * abs(w), msg=f"step {s}: {g} vs reference {w}")
        self.assertNotEqual(got[0], got[1], "the adapter did not train")

    def test_split_equals_unsplit(self):
        batch, seq, vocab = 2, 16, 4096
        model = common.make_model(self.path("v4k/tiny-llama.onnx"), "--vocab", vocab, "--seed", 2)
        data = write_ids(self.path("v4k.jsonl"), vocab, seq, 5, seed=11)
        small = profile_with_limit(self.path("limit.json"), 700000)
        large = profile_with_limit(self.path("nolimit.json"), 1 << 30)
        ad = self.path("adapter-v4k")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 5, "--b-std", 0.05, "--out", ad)
        grads = {}
        for precision in ("fp32", "f16", "bf16"):
            spirv_dir = self.path(f"spirv-{precision}")
            split = self.compile_plan(f"split-{precision}.tplan", model, batch, seq, "--profile", small,
                                      "--precision", precision, "--emit-spirv", spirv_dir)
            bad = []
            for k in sorted(os.listdir(spirv_dir)):
                r = common.run([common.ARGS.spirv_val, "--target-env", "vulkan1.1", os.path.join(spirv_dir, k)],
                               timeout=60)
                if r.rc != 0:
                    bad.append(f"{k}: {r.stderr.strip()[:300]}")
            self.assertFalse(bad, f"kernels of the {precision} split plan fail spirv-val:\n" + "\n".join(bad[:10]))
            whole = self.compile_plan(f"whole-{precision}.tplan", model, batch, seq, "--profile", large,
                                      "--precision", precision)
            # 4096 rows of 128 elements: 512-byte f32 rows, 1367 per 700,000 bytes: 3 tiles (1366, 1366, 1364);
            # 256-byte half rows, 2734 per tile: 2 tiles of 2048.
            want_tiles = [1366, 1366, 1364] if precision == "fp32" else [2048, 2048]
            for name in ("model.embed_tokens.weight", "lm_head.weight"):
                tiles = self.tiles(split, name)
                self.assertEqual(sorted(n for _, n, _ in tiles), sorted(want_tiles), f"{precision} {name}")
                self.assertTrue(all(b <= 700000 for _, _, b in tiles), tiles)
                self.assertEqual(self.tiles(whole, name), [], f"{precision}: the whole plan split {name}")
            ls = parse_eval(tessera("eval", split, "--weights", model, "--data", data))[0]
            lw = parse_eval(tessera("eval", whole, "--weights", model, "--data", data))[0]
            self.assertAlmostEqual(ls, lw, delta=1e-6 * abs(lw), msg=precision)
            if precision == "fp32":
                gs = self.train(split, model, data, ad, 4, "split")
                gw = self.train(whole, model, data, ad, 4, "whole")
                for s, (a, b) in enumerate(zip(gs, gw), 1):
                    self.assertAlmostEqual(a, b, delta=1e-5 * abs(b), msg=f"step {s}: split {a} vs whole {b}")
                self.assertGreater(abs(gs[0] - gs[-1]), 1e-3, "the loss did not move")
            for tag, plan in (("split", split), ("whole", whole)):
                dump = self.path(f"grads-{precision}-{tag}.safetensors")
                tessera("train", plan, "--weights", model, "--data", data, "--steps", 1, "--lr", 1e-3,
                        "--init-adapter", ad, "--dump-grads", dump, "--out", self.path(f"g-{precision}-{tag}"))
                t, _ = safetensors_io.load(dump)
                grads[precision, tag] = {k: v for k, v in t.items() if k.endswith(".grad")}
        # fp32: the same gradients up to summation order. f16 / bf16: the split plan is as close
        # to the unsplit one as the unsplit one is to fp32 (each tile's partial product is
        # stored in the plan's precision before the sum).
        for precision in ("fp32", "f16", "bf16"):
            got, want = grads[precision, "split"], grads[precision, "whole"]
            self.assertEqual(sorted(got), sorted(want))
            for k in want:
                err = rel_norm_err(got[k], want[k])
                tol = 1e-5 if precision == "fp32" else max(1e-3, 2 * rel_norm_err(want[k], grads["fp32", "whole"][k]))
                self.assertLess(err, tol, f"{precision} {k}: split vs whole {err:.2e}")

    def test_refusals(self):
        # A plan made for a device with larger buffers: the runtime names the limit, the device's
        # value, the buffer's size and the limit the plan was compiled for.
        model = self.big_model()
        data = write_ids(self.path("r.jsonl"), self.VOCAB, 16, 2, seed=1)
        plan = self.compile_plan("unsplit.tplan", model, 1, 16, "--profile",
                                 profile_with_limit(self.path("1g.json"), 1 << 30))
        self.assertEqual(self.tiles(plan, "model.embed_tokens.weight"), [])
        r = tessera("eval", plan, "--weights", model, "--data", data, check=False)
        self.assertNotEqual(r.rc, 0)
        for want in ("buffer 'model.embed_tokens.weight'", "is 148.4 MiB", "maxStorageBufferRange (128.0 MiB",
                     "compiled for buffers up to 1024.0 MiB", "device.max_buffer_bytes <= 134217728"):
            self.assertIn(want, r.stderr, r.describe())
        # A device-local heap smaller than the plan (simulated: lavapipe's heap is the host's memory).
        small = self.compile_plan("small.tplan", self.model, 1, 16)
        data = common.make_data(self.path("d.jsonl"), 16, max_lines=2)
        r = tessera("eval", small, "--weights", self.model, "--data", data, check=False,
                    env={"TESSERA_FAULT": "small-heap:1048576"})
        self.assertNotEqual(r.rc, 0)
        for want in ("more than this device's device-local heap (1.0 MiB", "--memory-budget"):
            self.assertIn(want, r.stderr, r.describe())
        # An activation over the target's limit cannot be split: compile refuses it by name.
        r = tessera("compile", self.model, "-o", self.path("huge.tplan"), "--batch", 64, "--seq", 512,
                    "--profile", profile_with_limit(self.path("8m.json"), 8 << 20), check=False)
        self.assertNotEqual(r.rc, 0)
        self.assertRegex(r.stderr, r"error: activation '[^']+' \(shared slot '[^']+'\) is [0-9.]+ MiB, larger than "
                                   r"the target's buffer limit \(8.0 MiB, device.max_buffer_bytes of profile '[^']+'\) "
                                   r"and cannot be split: compile with a smaller --batch or --seq")
        self.assertFalse(os.path.exists(self.path("huge.tplan")))
        # With a memory budget the compiler looks for micro-batches whose buffers fit instead.
        r = tessera("compile", self.model, "-o", self.path("fits.tplan"), "--batch", 64, "--seq", 512,
                    "--profile", self.path("8m.json"), "--memory-budget", "1GiB")
        self.assertRegex(r.stdout, r"memory budget 1024.0 MiB: .*micro-batches of \d+ x \d+ per step")
        m = manifest(self.path("fits.tplan"))
        self.assertGreater(m["target"]["grad_accum"], 1)
        self.assertEqual(m["batch"] * m["target"]["grad_accum"], 64)
        self.assertLessEqual(max(b["bytes"] for b in m["buffers"]), 8 << 20)


    def test_memory_budget(self):
        batch, seq = 4, 64
        model = self.model
        # Whole unmasked lines: every micro-batch counts as many tokens, so the mean of the
        # micro-batches' losses is the batch's.
        data = write_ids(self.path("b.jsonl"), 256, seq, 8, seed=3, masked=False)
        budget_re = re.compile(r"^memory budget ([0-9.]+) MiB: (.*) -> peak ([0-9.]+) MiB$", re.M)
        free = self.path("free.tplan")
        tessera("compile", model, "-o", free, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                "--lora-alpha", ALPHA)
        free_peak = manifest(free)["memory"]["total_bytes"]
        # An impossible budget is refused with the smallest that works ...
        r = tessera("compile", model, "-o", self.path("x.tplan"), "--batch", batch, "--seq", seq,
                    "--lora-rank", RANK, "--lora-alpha", ALPHA, "--memory-budget", "1MiB", check=False)
        self.assertNotEqual(r.rc, 0)
        m = re.search(r"error: --memory-budget 1.0 MiB: no plan fits; the smallest \((.*)\) needs [0-9.]+ MiB "
                      r"of device memory: give --memory-budget (\d+)MiB or more", r.stderr)
        self.assertTrue(m, r.describe())
        self.assertIn("micro-batches of 1 x 4 per step", m.group(1))
        self.assertFalse(os.path.exists(self.path("x.tplan")))
        # ... and that budget gives the strongest choice: recompute, micro-batches of 1 with 4 accumulated.
        tight = self.path("tight.tplan")
        r = tessera("compile", model, "-o", tight, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                    "--lora-alpha", ALPHA, "--memory-budget", m.group(2) + "MiB")
        b = budget_re.search(r.stdout)
        self.assertTrue(b, r.describe())
        self.assertIn("recompute", b.group(2))
        self.assertIn("micro-batches of 1 x 4 per step (gradient accumulation)", b.group(2))
        # The last resort too: the frozen weights in host memory, out of the device's peak.
        self.assertIn("frozen weights streamed from host memory", b.group(2))
        man = manifest(tight)
        self.assertTrue(any(x.get("host") for x in man["buffers"]))
        self.assertEqual(man["memory"]["weights_bytes"], 0)
        self.assertEqual(man["target"]["grad_accum"], 4)
        self.assertEqual(man["target"]["memory_budget"], int(m.group(2)) << 20)
        self.assertLessEqual(man["memory"]["total_bytes"], int(m.group(2)) << 20)
        self.assertLess(man["memory"]["total_bytes"], free_peak)
        # A budget between: a cheaper choice (no micro-batches).
        mid = self.path("mid.tplan")
        r = tessera("compile", model, "-o", mid, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                    "--lora-alpha", ALPHA, "--memory-budget", str(free_peak - 1))
        b = budget_re.search(r.stdout)
        self.assertTrue(b, r.describe())
        self.assertNotIn("micro-batches", b.group(2))
        self.assertEqual(manifest(mid)["target"]["grad_accum"], 1)
        # The tight plan trains like the unconstrained one: `train` applies the 4 micro-batches itself.
        ad = self.path("adapter-b")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 5, "--b-std", 0.05, "--out", ad)
        got = self.train(tight, model, data, ad, 3, "tight")
        want = self.train(free, model, data, ad, 3, "free")
        with open(self.path("metrics-tight.jsonl")) as f:
            self.assertEqual([json.loads(l)["micro_batches"] for l in f if l.strip()], [4, 4, 4])
        for s, (g, w) in enumerate(zip(got, want), 1):
            self.assertAlmostEqual(g, w, delta=1e-5 * abs(w), msg=f"step {s}: budget {g} vs unconstrained {w}")
        self.assertGreater(abs(want[0] - want[-1]), 1e-3, "the loss did not move")
        # Sizes: units named on error.
        for bad, why in (("12x", "unknown unit 'x'"), ("1.5.5GiB", "not a size"), ("0", "must be at least 1 byte"),
                         ("GiB", "not a size")):
            r = tessera("compile", model, "-o", self.path("y.tplan"), "--memory-budget", bad, check=False)
            self.assertNotEqual(r.rc, 0)
            self.assertIn(f"error: --memory-budget '{bad}': {why}; give bytes or a number with B, KB, MB, GB, TB "
                          "(powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)", r.stderr)
        r = tessera("compile", model, "-o", self.path("z.tplan"), "--memory-budget", "1.5GiB")
        self.assertIn("memory budget 1536.0 MiB: as compiled (it fits)", r.stdout)
        # The default budget: the profile's device-local heap less 10%.
        heap = profile_with_limit(self.path("heap.json"), LIMIT, heap=int(m.group(2)) * 10 << 20)
        r = tessera("compile", model, "-o", self.path("h.tplan"), "--batch", batch, "--seq", seq,
                    "--lora-rank", RANK, "--lora-alpha", ALPHA, "--profile", heap)
        b = budget_re.search(r.stdout)
        self.assertTrue(b, r.describe())
        self.assertAlmostEqual(float(b.group(1)), int(m.group(2)) * 9, delta=0.1)
        # A phone-class heap (12 GiB) and a 4 GiB buffer range read as 64-bit sizes.
        phone = profile_with_limit(self.path("phone.json"), (4 << 30) - 1, heap=12 << 30)
        r = tessera("compile", model, "-o", self.path("p.tplan"), "--profile", phone)
        self.assertIn("memory budget 11059.2 MiB: as compiled (it fits)", r.stdout)
        self.assertEqual(manifest(self.path("p.tplan"))["target"]["max_buffer_bytes"], (4 << 30) - 1)

    def test_streamed_weights(self):
        """--stream-weights: every frozen weight in host memory, copied into activations around its uses; the
        losses are bit-identical to the plan that keeps them on the device, the device peak drops by about
        the weights, and `train` runs it under a device heap the unstreamed plan does not fit."""
        batch, seq = 2, 32
        model = self.model
        data = write_ids(self.path("s.jsonl"), 256, seq, 4, seed=4, masked=False)
        dev = self.compile_plan("dev.tplan", model, batch, seq)
        r = tessera("compile", model, "-o", self.path("host.tplan"), "--batch", batch, "--seq", seq,
                    "--lora-rank", RANK, "--lora-alpha", ALPHA, "--lora-targets", "all-linear", "--stream-weights")
        host = self.path("host.tplan")
        m = re.search(r"streamed weights +([0-9.]+) MiB +\(in host memory, not counted above: (\d+) tensors, "
                      r"(\d+) copies", r.stdout)
        self.assertTrue(m, r.describe())
        a, b = manifest(dev), manifest(host)
        weights = [x for x in a["buffers"] if x["kind"] == "weight" and "alias_of" not in x]
        self.assertEqual(int(m.group(2)), len(weights))
        self.assertEqual(b["memory"]["host_weights_bytes"], a["memory"]["weights_bytes"])
        self.assertEqual(b["memory"]["weights_bytes"], 0)
        self.assertTrue(all(x.get("host") for x in b["buffers"] if x["kind"] == "weight" and "alias_of" not in x))
        self.assertLess(b["memory"]["total_bytes"], a["memory"]["total_bytes"] - a["memory"]["weights_bytes"] // 2)
        # Every non-copy dispatch reads copies only: a host weight is bound by copies (2 bindings) alone, and
        # those are marked as copies (the runtime records them as transfers).
        for prog in b["programs"]:
            for d in prog["dispatches"]:
                hosts = [i for i in d["bindings"] if b["buffers"][i].get("host")]
                if hosts:
                    self.assertEqual((len(d["bindings"]), d["bindings"][0]), (2, hosts[0]), prog["name"])
                self.assertEqual(bool(d.get("copy")), bool(hosts), prog["name"])
        # Each copy is made --stream-prefetch (32) dispatches ahead of its first reader (or at the start).
        step = next(p["dispatches"] for p in b["programs"] if p["name"] == "train_step")
        copies = [i for i, d in enumerate(step) if d.get("copy")]
        for i in copies:
            dst = step[i]["bindings"][1]
            first = next(j for j in range(i + 1, len(step)) if dst in step[j]["bindings"])
            ahead = sum(1 for j in range(i + 1, first) if not step[j].get("copy"))
            self.assertTrue(ahead == 32 or (ahead < 32 and not any(not d.get("copy") for d in step[:i])),
                            f"copy {i}: {ahead} dispatches ahead of its reader")
        ad = self.path("adapter-s")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 6, "--b-std", 0.05, "--out", ad)
        want = self.train(dev, model, data, ad, 3, "dev")
        # A device heap between the two plans' needs: only the streamed plan starts.
        heap = str((b["memory"]["total_bytes"] + a["memory"]["total_bytes"]) // 2)
        got = self.train(host, model, data, ad, 3, "host", env={"TESSERA_FAULT": "small-heap:" + heap})
        self.assertEqual(got, want)
        # The copies as the plan's copy kernels instead of transfers: the same losses.
        self.assertEqual(self.train(host, model, data, ad, 3, "kernels", env={"TESSERA_STREAM_COPIES": "dispatch"}),
                         want)
        # The schedule a transfer queue gets (copy batches and compute segments ordered by timeline
        # semaphores), submitted to lavapipe's one queue in its order: the same losses.
        self.assertEqual(self.train(host, model, data, ad, 3, "segments", env={"TESSERA_TRANSFER_QUEUE": "compute"}),
                         want)
        sched = self.path("schedule.json")
        r = tessera("train", host, "--weights", model, "--data", data, "--steps", 1, "--out", self.path("o3"),
                    env={"TESSERA_TRANSFER_QUEUE": "compute", "TESSERA_SCHEDULE": sched})
        with open(sched) as f:
            schedules = json.load(f)
        for prog in b["programs"]:
            if any(d.get("copy") for d in prog["dispatches"]):
                check_copy_schedule(b, prog, schedules[prog["name"]])
        m = re.search(r"streamed weights: (\d+) copies a step as transfers in (\d+) batches between (\d+) compute "
                      r"segments \(one queue\)", r.stderr)
        self.assertTrue(m, r.describe())
        self.assertEqual(int(m.group(1)), len(copies))
        self.assertTrue(1 < int(m.group(2)) <= len(copies) and int(m.group(3)) > int(m.group(2)) // 2, m.group(0))
        r = tessera("train", host, "--weights", model, "--data", data, "--steps", 1, "--out", self.path("o1"))
        self.assertIn(f"streamed weights: {len(copies)} copies a step as transfers", r.stderr)
        r = tessera("train", host, "--weights", model, "--data", data, "--steps", 1, "--out", self.path("o2"),
                    env={"TESSERA_STREAM_COPIES": "dispatch"})
        self.assertNotIn("as transfers", r.stderr)
        self.assertGreater(abs(want[0] - want[-1]), 1e-3, "the loss did not move")
        r = tessera("train", dev, "--weights", model, "--data", data, "--steps", 1, "--out", self.path("o"),
                    env={"TESSERA_FAULT": "small-heap:" + heap}, check=False)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("more than this device's device-local heap", r.stderr)
        e = [parse_eval(tessera("eval", p, "--weights", model, "--data", data)) for p in (dev, host)]
        self.assertEqual(e[0], e[1])

    def test_memory_budget_streams_only_what_it_must(self):
        """A budget just under the unstreamed plan's peak streams only part of the weights (a quarter of their
        bytes), not all of them: every streamed byte costs bus time each step. Same losses as unstreamed."""
        batch, seq = 1, 64
        model = self.model
        data = write_ids(self.path("q.jsonl"), 256, seq, 4, seed=7, masked=False)
        dev = self.compile_plan("q-dev.tplan", model, batch, seq, "--recompute")
        full = self.compile_plan("q-full.tplan", model, batch, seq, "--recompute", "--stream-weights")
        a, f = manifest(dev), manifest(full)
        self.assertLess(f["memory"]["total_bytes"], a["memory"]["total_bytes"])
        part = self.path("q-part.tplan")
        r = tessera("compile", model, "-o", part, "--batch", batch, "--seq", seq, "--lora-rank", RANK,
                    "--lora-alpha", ALPHA, "--lora-targets", "all-linear", "--recompute",
                    "--memory-budget", str(a["memory"]["total_bytes"] - 1))
        m = re.search(r"^memory budget [0-9.]+ MiB: part of the frozen weights \(up to (\d+) % of their bytes\) "
                      r"streamed from host memory -> peak", r.stdout, re.M)
        self.assertTrue(m, r.describe())
        self.assertLess(int(m.group(1)), 100)
        b = manifest(part)
        self.assertLess(b["memory"]["total_bytes"], a["memory"]["total_bytes"])
        weights = {x["name"]: x["bytes"] for x in a["buffers"] if x["kind"] == "weight" and "alias_of" not in x}
        host = {x["name"] for x in b["buffers"] if x["kind"] == "weight" and x.get("host")}
        self.assertTrue(host and len(host) < len(weights), host)
        self.assertLessEqual(sum(weights[n] for n in host), sum(weights.values()) * int(m.group(1)) // 100)
        self.assertGreater(b["memory"]["weights_bytes"], 0)
        ad = self.path("adapter-q")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 8, "--b-std", 0.05, "--out", ad)
        want = self.train(dev, model, data, ad, 3, "q-dev")
        self.assertEqual(self.train(part, model, data, ad, 3, "q-part"), want)
        self.assertGreater(abs(want[0] - want[-1]), 1e-3, "the loss did not move")

    def test_memory_budget_streams_before_micro_batches_where_there_is_a_copy_queue(self):
        """A profile whose device has a transfer-only queue (device.copy_queue) makes --memory-budget try a share
        of streamed weights right after each choice: between the recomputed plan's peak and the one with
        every weight streamed, it streams instead of halving the micro-batch, as the same profile without
        the queue does. The streamed plan trains with the recomputed plan's losses, bit for bit."""
        batch, seq = 4, 64
        model = self.model
        rc = manifest(self.compile_plan("c-rc.tplan", model, batch, seq, "--recompute", "--profile", "lavapipe"))
        rcs = manifest(self.compile_plan("c-rcs.tplan", model, batch, seq, "--recompute", "--stream-weights",
                                         "--profile", "lavapipe"))
        half = manifest(self.compile_plan("c-half.tplan", model, batch // 2, seq, "--recompute", "--profile",
                                          "lavapipe"))
        budget = max(rcs["memory"]["total_bytes"], half["memory"]["total_bytes"]) + 1024
        self.assertLess(budget, rc["memory"]["total_bytes"], "the case needs a budget under the recomputed peak")
        with open(os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")) as f:
            prof = json.load(f)
        prof["name"] = "lavapipe-with-copy-queue"
        prof["device"]["copy_queue"] = True
        with_queue = self.path("copy-queue.json")
        with open(with_queue, "w") as f:
            json.dump(prof, f)
        choice = {}
        for name, profile in (("without", "lavapipe"), ("with", with_queue)):
            r = tessera("compile", model, "-o", self.path(f"c-{name}.tplan"), "--batch", batch, "--seq", seq,
                        "--lora-rank", RANK, "--lora-alpha", ALPHA, "--lora-targets", "all-linear", "--recompute",
                        "--profile", profile, "--memory-budget", str(budget))
            m = re.search(r"^memory budget [0-9.]+ MiB: (.*) -> peak", r.stdout, re.M)
            self.assertTrue(m, r.describe())
            choice[name] = m.group(1)
        self.assertIn("micro-batches of 2 x 2", choice["without"])
        self.assertNotIn("streamed", choice["without"])
        self.assertIn("streamed from host memory", choice["with"])
        self.assertNotIn("micro-batches", choice["with"])
        self.assertLessEqual(manifest(self.path("c-with.tplan"))["memory"]["total_bytes"], budget)
        data = write_ids(self.path("c.jsonl"), 256, seq, 4, seed=9, masked=False)
        ad = self.path("adapter-c")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 10, "--b-std", 0.05, "--out", ad)
        want = self.train(self.path("c-rc.tplan"), model, data, ad, 2, "c-rc")
        self.assertEqual(self.train(self.path("c-with.tplan"), model, data, ad, 2, "c-with"), want)

    def test_streamed_quantised_weights(self):
        """--stream-weights with a q8_0 base: the quantised weights stream too (their blocks copied as 32-bit
        words into activations), with per-step losses bit-identical to the q8_0 plan that keeps them on the
        device."""
        batch, seq = 2, 32
        model = self.model
        data = write_ids(self.path("q.jsonl"), 256, seq, 4, seed=8, masked=False)
        dev = self.compile_plan("qdev.tplan", model, batch, seq, "--base-dtype", "q8_0")
        host = self.compile_plan("qhost.tplan", model, batch, seq, "--base-dtype", "q8_0", "--stream-weights")
        a, b = manifest(dev), manifest(host)
        quant = [x["name"] for x in a["buffers"] if x["kind"] == "weight" and x["dtype"] == "q8_0"]
        self.assertTrue(quant, "the base must be quantised")
        hosted = {x["name"] for x in b["buffers"] if x["kind"] == "weight" and x.get("host")}
        self.assertTrue(set(quant) <= hosted, f"quantised weights left on the device: {set(quant) - hosted}")
        self.assertEqual(b["memory"]["weights_bytes"], 0)
        ad = self.path("adapter-q")
        reference("random-adapter", "--model", model, "--rank", RANK, "--alpha", ALPHA,
                  "--targets", "all-linear", "--seed", 9, "--b-std", 0.05, "--out", ad)
        want = self.train(dev, model, data, ad, 3, "qdev")
        got = self.train(host, model, data, ad, 3, "qhost")
        self.assertEqual(got, want)
        self.assertGreater(abs(want[0] - want[-1]), 1e-3, "the loss did not move")


if __name__ == "__main__":
    common.main()
