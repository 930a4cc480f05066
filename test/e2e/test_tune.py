#!/usr/bin/python3
"""e2e: the on-device tuner on lavapipe (docs/autotune.md).

`tessera compile --tuning-plan` writes the bundled model's tuning plan;
`tessera-rt tune` measures it with a small budget and writes a profile keyed
by this device; `tessera compile --profile` with that profile puts the chosen
configs into the plan, and the plan trains to the same losses as the default
one. A planted wrong candidate (one that computes a single tile: fast and
wrong) is rejected and never chosen; a candidate that hangs, loses the
device or kills the tuning process is marked failed and tuning goes on; an
interrupted run resumes from its journal. Bad input: a tuning plan of
another compiler version, a truncated one, a training plan instead, a
profile of another device, a malformed profile, and profile entries for
shapes the compiler does not emit (ignored with a note). Every kernel of the
tuning plan passes spirv-val.

    test_tune.py --tessera build/bin/tessera [--keep]
"""
import json
import os
import signal
import subprocess
import tempfile
import time

import common
import ttune
from common import TempDirTest, tessera

BATCH, SEQ = 2, 32
SHAPE = ["--batch", BATCH, "--seq", SEQ, "--lora-rank", 4, "--lora-targets", "all-linear"]


def tessera_rt(*args, env=None, check=True, timeout=common.TIMEOUT):
    rt = os.path.join(os.path.dirname(common.ARGS.tessera), "tessera-rt")
    r = common.run([rt, *args], env=env, timeout=timeout)
    if check and r.rc != 0:
        raise AssertionError("tessera-rt failed:\n" + r.describe())
    return r


def journal(path):
    out = []
    with open(path) as f:
        for line in f:
            out.append(json.loads(line))
    return out


def kernel_configs(plan):
    _, _, m, _ = ttune.read(plan)
    return [k["config"] for k in m["kernels"]]


def config_text(c):
    """The plan's config string of an exact entry's config (the IR attribute as printed)."""
    if "matmul" in c:
        m = c["matmul"]
        return (f'#tessera.matmul_config<variant = "exact", kind = {m["kind"]}, tile = '
                f'[{m["tile"][0]}, {m["tile"][1]}, {m["tile"][2]}], thread = [{m["thread"][0]}, {m["thread"][1]}]')
    if "reduction" in c:
        r = c["reduction"]
        return f'#tessera.reduction_config<strategy = {r["strategy"]}, workgroup_size = {r["workgroup_size"]}>'
    return f'#tessera.elementwise_config<workgroup_size = {c["elementwise"]["workgroup_size"]}>'


class Tune(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ttune = os.path.join(cls.dir, "tiny.ttune")
        r = tessera("compile", cls.model, "--tuning-plan", cls.ttune, *SHAPE, "--tune-candidates", 12,
                    "--profile", "lavapipe")
        assert "kernel problems" in r.stdout, r.describe()
        cls.profile = os.path.join(cls.dir, "tuned.json")
        cls.tune = tessera_rt("tune", cls.ttune, "--out", cls.profile, "--budget", "20s")
        _, _, cls.manifest, cls.blobs = ttune.read(cls.ttune)
        cls.matmuls = [i for i, p in enumerate(cls.manifest["problems"]) if p["shape"]["op"] == "matmul"]

    def test_profile_is_keyed_by_this_device(self):
        out = self.tune.stdout
        self.assertIn("wrote " + self.profile, out)
        self.assertIn("estimated speed-up", out)
        with open(self.profile) as f:
            p = json.load(f)
        devices = tessera("devices").stdout
        match = p["device"]["match"]
        self.assertIn(f'vendor 0x{match["vendor_id"]:x}, device 0x{match["device_id"]:x}, '
                      f'driver version {match["driver_version"]}', devices)
        self.assertIn(match["name"], devices)
        # The limits are this device's, not the base profile's (which names none
        # beyond the buffer range): heap and allocation size as devices prints them.
        mib = lambda v: f"{v // (1 << 20)} MiB"
        self.assertIn(f'largest device-local heap {mib(p["device"]["memory_heap_bytes"])}, '
                      f'maxMemoryAllocationSize {mib(p["device"]["max_allocation_bytes"])}', devices)
        self.assertIn(f'maxStorageBufferRange: {p["device"]["max_buffer_bytes"]} bytes', devices)
        self.assertGreater(len(p["exact"]), 0, out)
        self.assertEqual(p["tuning"]["tool"], "tessera tune")
        self.assertGreater(p["tuning"]["measured"], 0)
        # Every entry was measured no slower than the rules' config.
        for e in p["exact"]:
            self.assertLessEqual(e["us"], e["rule_us"] * 1.0001, e)

    def test_chosen_configs_are_in_the_plan(self):
        plan = self.path("tuned.tplan")
        r = tessera("compile", self.model, "-o", plan, *SHAPE, "--profile", self.profile)
        self.assertNotIn("match no kernel", r.stderr, r.describe())  # every entry is this model's
        configs = "\n".join(kernel_configs(plan))
        with open(self.profile) as f:
            exact = json.load(f)["exact"]
        for e in exact:
            self.assertIn(config_text(e["config"]), configs, e["key"])

    def test_tuned_plan_trains_like_the_default(self):
        data = common.make_data(self.path("data.jsonl"), SEQ)
        plans = {"default": self.path("default.tplan"), "tuned": self.path("tuned2.tplan")}
        tessera("compile", self.model, "-o", plans["default"], *SHAPE)
        tessera("compile", self.model, "-o", plans["tuned"], *SHAPE, "--profile", self.profile)
        losses = {}
        for name, plan in plans.items():
            metrics = self.path(f"m-{name}.jsonl")
            tessera("train", plan, "--weights", self.model, "--data", data, "--steps", 4, "--out",
                    self.path("ad-" + name), "--metrics", metrics)
            with open(metrics) as f:
                losses[name] = [json.loads(l)["loss"] for l in f]
        for a, b in zip(losses["default"], losses["tuned"]):
            self.assertAlmostEqual(a, b, delta=1e-4 * max(1.0, abs(a)), msg=losses)

    def test_kernels_pass_spirv_val(self):
        checked = 0
        with tempfile.TemporaryDirectory() as d:
            for p in self.manifest["problems"]:
                _, _, pm, pblobs = ttune.read(self.blobs[p["plan_blob"]])
                for i, k in enumerate(pm["kernels"]):
                    if p["shape"]["op"] == "matmul" and i % 3:
                        continue  # a third of the matmul candidates, every other kernel
                    spv = os.path.join(d, f"k{checked}.spv")
                    with open(spv, "wb") as f:
                        f.write(pblobs[k["spirv_blob"]])
                    r = common.run([common.ARGS.spirv_val, "--target-env", "vulkan1.1", spv])
                    self.assertEqual(r.rc, 0, f'{p["key"]}: {k["name"]} ({k["config"]}):\n{r.describe()}')
                    checked += 1
        self.assertGreater(checked, 50)

    def plant(self, problem, candidate, out):
        """A copy of the tuning plan with only `problem`, whose candidate's
        dispatches run one workgroup each: fast, and wrong."""
        ttune.subset(self.ttune, out, [problem])
        magic, version, m, blobs = ttune.read(out)
        p = m["problems"][0]
        pmagic, pversion, pm, pblobs = ttune.read(blobs[p["plan_blob"]])
        name = p["candidates"][candidate]["program"]
        prog = next(g for g in pm["programs"] if g["name"] == name)
        for d in prog["dispatches"]:
            d["groups"] = [1, 1, 1]
        blobs[p["plan_blob"]] = ttune.write(pmagic, pversion, pm, pblobs)
        with open(out, "wb") as f:
            f.write(ttune.write(magic, version, m, blobs))
        return p

    def test_wrong_candidate_is_rejected(self):
        # The largest matmul problem, its first candidate after the rules' (always measured).
        big = max(self.matmuls, key=lambda i: self.manifest["problems"][i]["count"] *
                  self.manifest["problems"][i]["shape"]["m"] * self.manifest["problems"][i]["shape"]["n"])
        planted = self.path("planted.ttune")
        p = self.plant(big, 1, planted)
        prof = self.path("planted.json")
        r = tessera_rt("tune", planted, "--out", prof, "--budget", "8s")
        self.assertIn("rejected: matmul " + p["summary"], r.stderr, r.describe())
        self.assertIn("output differs from the reference kernel's", r.stderr)
        self.assertRegex(r.stdout, r"[1-9]\d* rejected")
        results = [j for j in journal(prof + ".journal") if j["type"] == "result" and j["c"] == 1]
        self.assertEqual(results[0]["status"], "wrong", results)
        with open(prof) as f:
            chosen = [e["config"] for e in json.load(f).get("exact", []) if e["key"] == p["key"]]
        self.assertNotIn(p["candidates"][1]["config"], chosen)

    def test_cold_caches(self):
        # Forced on lavapipe (auto leaves a CPU device warm): every timed
        # repetition after a scrub fill, at most 16 repetitions a run, the
        # scrub in the profile's provenance; a bad size names the flag.
        sub = ttune.subset(self.ttune, self.path("cold.ttune"), self.matmuls[:2])
        prof = self.path("cold.json")
        r = tessera_rt("tune", sub, "--out", prof, "--budget", "25s", "--cold-cache", "8MiB")  # 2 problems: done early
        self.assertIn("cold caches (8 MiB scrub per repetition)", r.stdout, r.describe())
        ok = [j for j in journal(prof + ".journal") if j["type"] == "result" and j["status"] == "ok"]
        self.assertGreater(len(ok), 1, r.describe())
        for j in ok:
            self.assertLessEqual(j.get("reps", 1), 16, j)
            self.assertGreater(j["us"], 0, j)
        with open(prof) as f:
            self.assertEqual(json.load(f)["tuning"]["cold_cache_bytes"], 8 << 20)
        # Its journal does not resume a warm run: the times would not compare.
        again = tessera_rt("tune", sub, "--out", prof, "--budget", "3s", "--cold-cache", "off")
        self.assertIn("was measured with another --cold-cache setting: starting over", again.stderr, again.describe())
        self.assertIn("warm caches", again.stdout)
        warm = tessera_rt("tune", sub, "--list", "--cold-cache", "lots", check=False)
        self.assertNotEqual(warm.rc, 0)
        self.assertIn("--cold-cache lots: expected auto, off or a size such as 64MiB", warm.stderr)

    def test_hung_lost_and_dead_candidates_fail_and_tuning_goes_on(self):
        keep = self.matmuls[:4]
        sub = ttune.subset(self.ttune, self.path("faults.ttune"), keep)
        prof = self.path("faults.json")
        # The rules' config (candidate 0) of problems 0, 1 and 2 of the subset.
        r = tessera_rt("tune", sub, "--out", prof, "--budget", "12s", "--timeout", "3s",
                       env={"TESSERA_TUNE_FAULT": "hang:0:0,lost:1:0,crash:2:0"}, timeout=120)
        self.assertIn("timed out after 3 s", r.stderr, r.describe())
        self.assertIn("VK_ERROR_DEVICE_LOST", r.stderr)
        self.assertIn("the tuning process died (signal 6)", r.stderr)
        failed = {j["p"] for j in journal(prof + ".journal") if j["type"] == "result" and j["status"] == "failed"}
        self.assertEqual(failed, {0, 1, 2})
        ok = [j for j in journal(prof + ".journal") if j["type"] == "result" and j["status"] == "ok" and j["p"] == 3]
        self.assertGreater(len(ok), 1)  # the problem after them was tuned
        self.assertIn("3 failed", r.stdout)

    def test_interrupted_tuning_resumes(self):
        sub = ttune.subset(self.ttune, self.path("resume.ttune"), self.matmuls[:6])
        prof = self.path("resume.json")
        rt = os.path.join(os.path.dirname(common.ARGS.tessera), "tessera-rt")
        proc = subprocess.Popen([rt, "tune", sub, "--out", prof, "--budget", "60s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:  # until a few results are in
            time.sleep(0.5)
            if os.path.exists(prof + ".journal") and \
                    sum(1 for j in journal(prof + ".journal") if j["type"] == "result") >= 6:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn("run the same command again to resume", err)
        self.assertFalse(os.path.exists(prof))
        kept = sum(1 for j in journal(prof + ".journal") if j["type"] == "result")
        r = tessera_rt("tune", sub, "--out", prof, "--budget", "6s")
        self.assertIn(f"resuming from {prof}.journal: {kept} measurements kept", r.stderr, r.describe())
        keys = [(j["p"], j["c"], j["round"]) for j in journal(prof + ".journal") if j["type"] == "result"]
        self.assertEqual(len(keys), len(set(keys)), "a kept measurement was measured again")
        self.assertTrue(os.path.exists(prof))

    def test_a_winner_needs_a_margin_over_the_rules(self):
        # The class run's journal, edited: on one problem the rules' config takes 100 us in both rounds, one
        # other candidate `by` us, every other 200. A resumed run has nothing left to measure there and writes
        # the profile from the journal: the other config wins only when it is more than 3 % faster.
        lines = journal(self.profile + ".journal")
        p = next(i for i in self.matmuls
                 if any(j["type"] == "result" and j["p"] == i and j["status"] == "ok" and
                        j["c"] != self.manifest["problems"][i]["rule"] for j in lines))
        prob = self.manifest["problems"][p]
        rule = prob["rule"]
        other = next(c for c in range(len(prob["candidates"])) if c != rule)
        for by, winner in [(98.5, rule), (90.0, other)]:
            out = self.path(f"margin-{by}.json")
            kept = [j for j in lines if not (j.get("p") == p and j["type"] in ("result", "start"))]
            for c in range(len(prob["candidates"])):
                us = 100.0 if c == rule else by if c == other else 200.0
                for rnd in (0, 1):
                    kept.append({"type": "result", "p": p, "c": c, "round": rnd, "status": "ok", "us": us,
                                 "samples": [us] * 5})
            with open(out + ".journal", "w") as f:
                f.write("".join(json.dumps(j) + "\n" for j in kept))
            tessera_rt("tune", self.ttune, "--out", out, "--budget", "1s")
            with open(out) as f:
                entry = next(e for e in json.load(f)["exact"] if e["key"] == prob["key"])
            self.assertEqual(entry["config"], prob["candidates"][winner]["config"], (by, entry))
            self.assertEqual(entry["us"], 100.0 if winner == rule else by)

    def test_rules_change_only_from_a_fully_measured_family(self):
        # The class run's journal, edited: every reduce-family problem's rules config takes 100 us and one
        # workgroup-strategy candidate of another size 50 us. With one problem left unmeasured the reduce rule
        # stays the base profile's (that problem would get an untimed size); with all measured it becomes the
        # winners' size. The gradient-norm workgroup is no tuned problem: it stays the base profile's.
        with open(os.path.join(common.ROOT, "autotune/profiles/lavapipe.json")) as f:
            base = json.load(f)
        base_wg = base["reduce"]["workgroup_size"]
        probs = [i for i, p in enumerate(self.manifest["problems"]) if p["shape"]["family"] == "reduce"]
        choice = {}
        for i in probs:
            cands = self.manifest["problems"][i]["candidates"]
            other = [c for c, x in enumerate(cands)
                     if x["config"].get("reduction", {}).get("strategy") == "workgroup"
                     and x["config"]["reduction"]["workgroup_size"] != base_wg]
            if other:
                choice[i] = other[0]
        sizes = {self.manifest["problems"][i]["candidates"][c]["config"]["reduction"]["workgroup_size"]
                 for i, c in choice.items()}
        if len(choice) < 2:
            self.skipTest("the bundled model has fewer than two reduce problems with another workgroup size")
        wg = next(iter(sizes))
        choice = {i: c for i, c in choice.items()
                  if self.manifest["problems"][i]["candidates"][c]["config"]["reduction"]["workgroup_size"] == wg}
        probs = [i for i in probs if i in choice] + [i for i in probs if i not in choice]
        lines = [j for j in journal(self.profile + ".journal") if not (j.get("p") in probs and
                                                                        j["type"] in ("result", "start"))]
        for missing, want in [(probs[-1], base_wg), (None, wg)]:
            if missing is None and len(choice) < len(probs):
                self.fail("a reduce problem has no candidate of the winners' workgroup size: no complete vote to test")
            out = self.path(f"rules-{want}.json")
            kept = list(lines)
            for i in probs:
                if i == missing:
                    continue
                prob = self.manifest["problems"][i]
                for c in range(len(prob["candidates"])):
                    us = 100.0 if c == prob["rule"] else 50.0 if c == choice.get(i) else 200.0
                    for rnd in (0, 1):
                        kept.append({"type": "result", "p": i, "c": c, "round": rnd, "status": "ok", "us": us,
                                     "samples": [us] * 5})
            with open(out + ".journal", "w") as f:
                f.write("".join(json.dumps(j) + "\n" for j in kept))
            # A budget that cannot measure the missing problem: the profile is written from the journal.
            r = tessera_rt("tune", self.ttune, "--out", out, "--budget", "0.001s")
            with open(out) as f:
                p = json.load(f)
            self.assertEqual(p["reduce"]["workgroup_size"], want, r.stdout)
            self.assertEqual(p["grad_norm"]["workgroup_size"], base_wg, r.stdout)
            if missing is not None:
                self.assertRegex(r.stdout, r"rules kept from profile 'lavapipe' where not every problem was "
                                           rf"measured:.* reduce \({len(probs) - 1} of {len(probs)} problems measured\)")
            # The plan's gradient-norm kernels (grad_sumsq) keep the base workgroup either way.
            plan = self.compile(self.path(f"rules-{want}.tplan"), *SHAPE, "--profile", out)
            _, _, m, _ = ttune.read(plan)
            sums = [k for k in m["kernels"] if k["name"].startswith("grad_sumsq")]
            self.assertTrue(sums)
            self.assertTrue(all(k["local_size"][0] == base_wg for k in sums), sums)

    def test_bad_inputs(self):
        magic, version, m, blobs = ttune.read(self.ttune)
        other = dict(m, compiler_version="v0.0-other")
        bad = self.path("other-version.ttune")
        with open(bad, "wb") as f:
            f.write(ttune.write(magic, version, other, blobs))
        r = tessera_rt("tune", bad, "--out", self.path("x.json"), check=False)
        self.assertEqual(r.rc, 1)
        self.assertIn(f"{bad}: written by tessera v0.0-other, this is tessera", r.stderr)
        self.assertIn("write the tuning plan again", r.stderr)

        cut = self.path("cut.ttune")
        with open(self.ttune, "rb") as f, open(cut, "wb") as g:
            g.write(f.read()[:100000])
        r = tessera_rt("tune", cut, "--out", self.path("x.json"), check=False)
        self.assertIn(f"error: {cut}: checksum mismatch", r.stderr)

        plan = self.compile(self.path("plain.tplan"), *SHAPE)
        r = tessera_rt("tune", plan, "--out", self.path("x.json"), check=False)
        self.assertIn("this is a training plan, not a tuning plan", r.stderr)

        # A profile of another device at --out is not overwritten.
        with open(self.profile) as f:
            p = json.load(f)
        p["device"]["match"]["vendor_id"] = 0x10de
        p["device"]["match"]["name"] = "NVIDIA H200"
        theirs = self.path("h200.json")
        with open(theirs, "w") as f:
            json.dump(p, f)
        r = tessera_rt("tune", self.ttune, "--out", theirs, "--budget", "5s", check=False)
        self.assertEqual(r.rc, 1, r.describe())
        self.assertIn(f"{theirs}: a profile of 'NVIDIA H200' (vendor 0x10de device 0x0, type CPU), not of device",
                      r.stderr)

        # A malformed profile: one error naming the file and the field.
        p["exact"][0]["config"] = {"matmul": {"kind": "tiled", "tile": [64, 64, 16], "thread": [3, 4]}}
        bad_prof = self.path("bad.json")
        with open(bad_prof, "w") as f:
            json.dump(p, f)
        r = tessera("compile", self.model, "-o", self.path("b.tplan"), *SHAPE, "--profile", bad_prof, check=False)
        self.assertIn(f"{bad_prof}: exact[0].config: thread_m (3) must divide tile_m (64)", r.stderr, r.describe())

        # Entries for shapes this compiler does not emit: ignored with a note.
        with open(self.profile) as f:
            p = json.load(f)
        matmul_entry = next(e for e in p["exact"] if "matmul" in e["config"])
        p["exact"].append(dict(matmul_entry, key="matmul {transpose_lhs = false} (tensor<3x5xf32>) -> tensor<3x3xf32>"))
        stale = self.path("stale.json")
        with open(stale, "w") as f:
            json.dump(p, f)
        r = tessera("compile", self.model, "-o", self.path("s.tplan"), *SHAPE, "--profile", stale)
        self.assertIn(f"note: device profile 'lavapipe' ({stale}): 1 of {len(p['exact'])} exact-shape entries "
                      "match no kernel here", r.stderr)


if __name__ == "__main__":
    common.main()
