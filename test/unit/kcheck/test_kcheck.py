"""tessera-kcheck on cases KernelNumericsTest exported (ctest kcheck_simt).

The cases were written on this machine by the test itself (ctest
kcheck_export_simt: TESSERA_KCHECK_EXPORT=DIR lowering_tests); re-run here they
must pass, and each kind of corruption must make the one case it touches fail
with a line naming what differs: a reference value, an input, an integer
result, a dropped step (state carried between programs), bad case files.
The documented input generator is re-implemented here (numpy) and checked
against a case's float64 references.

  /usr/bin/python3 test/unit/kcheck/test_kcheck.py --kcheck build/bin/tessera-kcheck \\
      --cases build/kcheck/simt --spirv-val spirv-val
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ARGS = argparse.Namespace()


def kcheck(*args, timeout=300):
    p = subprocess.run([ARGS.kcheck, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def uniform(seed, n, lo, hi):
    """The generator of docs/kernel-checks.md: float(lo + (hi - lo) * u_i),
    u_i = (splitmix64(seed * 2^32 + i) >> 11) * 2^-53."""
    m = np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = (x ^ (x >> np.uint64(31))) & m
    u = (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (lo + (hi - lo) * u).astype(np.float32)


class KernelCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(ARGS.cases, "*", "case.json")))
        cls.tmp = tempfile.mkdtemp(prefix="kcheck-test-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def copy(self, name):
        """A private copy of case `name` (folder name) to corrupt."""
        dst = os.path.join(self.tmp, self.id().split(".")[-1], name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(os.path.join(ARGS.cases, name), dst)
        with open(os.path.join(dst, "case.json")) as f:
            return dst, json.load(f)

    def save(self, folder, case):
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(case, f)

    def check_named(self, case, name):
        for si, step in enumerate(case["steps"]):
            for c in step["checks"]:
                if c["name"] == name:
                    return si, c
        self.fail(f"no check of buffer {name} in {case['name']}")

    def assertFailsWith(self, folder, *needles):
        rc, out = kcheck(folder)
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL ", out)
        self.assertIn("kcheck: 0 passed, 1 failed", out)
        for n in needles:
            self.assertIn(n, out)
        return out

    # ------------------------------------------------------------ the real cases

    def test_exported_cases_pass(self):
        self.assertGreaterEqual(len(self.cases), 5, "the export wrote too few cases")
        rc, out = kcheck(ARGS.cases)
        self.assertEqual(rc, 0, out)
        passes = [l for l in out.splitlines() if l.startswith("PASS ")]
        self.assertEqual(len(passes), len(self.cases), out)
        self.assertIn(f"kcheck: {len(self.cases)} passed, 0 failed", out)
        # Several programs and steps, integer results, generated inputs are all exercised.
        names = " ".join(passes)
        self.assertIn("KernelNumerics.AdamWAccumulatedAndClipped (9 steps", names)
        self.assertIn("KernelNumerics.SelectAndCast", names)

    def test_generator_is_the_documented_one(self):
        # Reduce case 3 sums a generated 70 x 4100 input over axis 0: the
        # exported reference is that sum of the test's (C++) draws.
        folder = os.path.join(ARGS.cases, "KernelNumerics.Reduce")
        with open(os.path.join(folder, "case.json")) as f:
            case = json.load(f)
        gen = [i for i in case["steps"][0]["inputs"] if i["name"] == "x3"]
        self.assertEqual(len(gen), 1)
        self.assertIn("uniform", gen[0], "the 287,000-element input is not recorded as the generator")
        u = gen[0]["uniform"]
        x = uniform(u["seed"], u["count"], u["lo"], u["hi"]).astype(np.float64).reshape(70, 4100)
        _, check = self.check_named(case, "r3")
        ref = np.fromfile(os.path.join(folder, check["expected"]), dtype="<f8")
        np.testing.assert_allclose(ref, x.sum(axis=0), rtol=1e-12, atol=1e-12)

    def test_dump_spirv_modules_validate(self):
        out_dir = os.path.join(self.tmp, "spv")
        rc, out = kcheck(ARGS.cases, "--dump-spirv", out_dir)
        self.assertEqual(rc, 0, out)
        files = glob.glob(os.path.join(out_dir, "*", "*.spv"))
        self.assertGreater(len(files), 10, out)
        bad = []
        for f in files:
            p = subprocess.run([ARGS.spirv_val, "--target-env", "vulkan1.1", f], capture_output=True, text=True)
            if p.returncode:
                bad.append(f + ": " + p.stderr.strip())
        self.assertFalse(bad, "\n".join(bad[:5]))

    def test_require_config(self):
        rc, out = kcheck(os.path.join(ARGS.cases, "KernelNumerics.Softmax"), "--require-config", "coopmat")
        self.assertEqual(rc, 1, out)
        self.assertIn("no kernel of its plan has a config containing 'coopmat'", out)
        rc, out = kcheck(os.path.join(ARGS.cases, "KernelNumerics.Softmax"), "--require-config", "softmax")
        self.assertEqual(rc, 0, out)

    # ------------------------------------------------------------ corruptions fail

    def test_wrong_reference_fails(self):
        folder, case = self.copy("KernelNumerics.Softmax")
        _, check = self.check_named(case, "r2")
        path = os.path.join(folder, check["expected"])
        ref = np.fromfile(path, dtype="<f8")
        ref[7] = ref[7] * (1 + 1e-3) + 1e-6
        ref.tofile(path)
        self.assertFailsWith(folder, "(r2[7]): got ", "tolerance")

    def test_wrong_input_fails(self):
        folder, case = self.copy("KernelNumerics.Softmax")
        inp = [i for i in case["steps"][0]["inputs"] if i["name"] == "a"][0]
        path = os.path.join(folder, inp["file"])
        x = np.fromfile(path, dtype="<f4")
        x[3] += 5
        x.tofile(path)
        self.assertFailsWith(folder, "(r1[")

    def test_integer_result_is_exact(self):
        folder, case = self.copy("KernelNumerics.SelectAndCast")
        _, check = self.check_named(case, "r_f2i")
        self.assertEqual(check["rel"], 0)
        path = os.path.join(folder, check["expected"])
        ref = np.fromfile(path, dtype="<f8")
        ref[2] += 1
        ref.tofile(path)
        self.assertFailsWith(folder, "(r_f2i[2])")

    def test_state_carries_between_steps(self):
        # Without the first micro-batch, the accumulated gradient and every later step differ.
        folder, case = self.copy("KernelNumerics.AdamWAccumulatedAndClipped")
        first = case["steps"][0]
        case["steps"] = case["steps"][1:]
        own = {i["buffer"] for i in case["steps"][0]["inputs"]}
        case["steps"][0]["inputs"] = [i for i in first["inputs"] if i["buffer"] not in own] + case["steps"][0]["inputs"]
        self.save(folder, case)
        self.assertFailsWith(folder, "mismatch")

    # ------------------------------------------------------------ bad case files

    def test_bad_case_files(self):
        def variant(name, edit):
            folder, case = self.copy("KernelNumerics.Softmax")
            os.rename(folder, folder + "-" + name)
            folder = folder + "-" + name
            edit(folder, case)
            return folder

        def invalid_json(folder, case):
            with open(os.path.join(folder, "case.json"), "w") as f:
                f.write("{ not json")
        out = self.assertFailsWith(variant("json", invalid_json), "case.json: not valid JSON")

        def no_program(folder, case):
            del case["steps"][0]["program"]
            self.save(folder, case)
        self.assertFailsWith(variant("program", no_program), "case.json: steps[0].program: missing")

        def future_format(folder, case):
            case["format"] = 2
            self.save(folder, case)
        self.assertFailsWith(variant("format", future_format), "format: 2 is not 1 (re-export the cases")

        def other_plan(folder, case):
            case["steps"][0]["checks"][0]["name"] = "nonexistent"
            self.save(folder, case)
        self.assertFailsWith(variant("name", other_plan), "case and plan do not belong together")

        def short_reference(folder, case):
            path = os.path.join(folder, case["steps"][0]["checks"][0]["expected"])
            with open(path, "r+b") as f:
                f.truncate(16)
        self.assertFailsWith(variant("short", short_reference), "16 bytes, expected")

        def short_input(folder, case):
            path = os.path.join(folder, case["steps"][0]["inputs"][0]["file"])
            with open(path, "r+b") as f:
                f.truncate(12)
        self.assertFailsWith(variant("input", short_input), "12 bytes, but buffer")

        def escaping_file(folder, case):
            case["steps"][0]["checks"][0]["expected"] = "../../etc/passwd"
            self.save(folder, case)
        self.assertFailsWith(variant("escape", escaping_file), "is not a file name inside the case folder")

        def no_program_in_plan(folder, case):
            case["steps"][0]["program"] = "train_step"
            self.save(folder, case)
        self.assertFailsWith(variant("noprog", no_program_in_plan), "the plan has no program 'train_step'")

        rc, out = kcheck(os.path.join(self.tmp, "does-not-exist"))
        self.assertEqual(rc, 2, out)
        self.assertIn("not a folder", out)
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty, exist_ok=True)
        rc, out = kcheck(empty)
        self.assertEqual(rc, 2, out)
        self.assertIn("no case folders", out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--kcheck", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--spirv-val", default=shutil.which("spirv-val") or "spirv-val")
    ns, rest = ap.parse_known_args()
    ARGS.kcheck, ARGS.cases, ARGS.spirv_val = os.path.abspath(ns.kcheck), os.path.abspath(ns.cases), ns.spirv_val
    sys.argv = [sys.argv[0]] + rest
    unittest.main(verbosity=2)
