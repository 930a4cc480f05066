#!/usr/bin/python3
"""Evaluates the @forward that tessera-translate printed, with numpy, and
compares it to reference logits: a numerical check of the ONNX importer.

    tessera_eval.py IR.mlir MODEL.onnx REF.npz [--tol 1e-4]

REF.npz holds `ids` (int, [B, T]) and `logits` ([B, T, V]) computed from the
ONNX graph by an independent implementation (the generator's numpy code or
test/reference/onnx_numpy_eval.py). Frozen params are read from MODEL.onnx by
name, as the runtime does. Prints the max abs difference; exit 1 on mismatch.
Only the pretty-printed tensor-level tessera ops are understood.
"""
import argparse
import json
import re
import sys

import numpy as np
import onnx
from onnx import numpy_helper

TENSOR = re.compile(r"tensor<([^<>]*)>")


def parse_type(s):
    parts = s.split("x")
    dt = {"f32": np.float32, "i32": np.int32, "i1": np.bool_}[parts[-1]]
    return tuple(int(p) for p in parts[:-1]), dt


def result_type(line):
    return parse_type(TENSOR.findall(line)[-1])


def i64_array(line, name):
    m = re.search(name + r" = array<i64(?:: ([-0-9, ]*))?>", line)
    if not m:
        return None
    return [int(v) for v in m.group(1).split(",")] if m.group(1) else []


def parse_dense(text, shape, dt):
    text = text.strip()
    if text.startswith('"0x'):
        raw = bytes.fromhex(text[3:-1])
        n = int(np.prod(shape)) if shape else 1
        if dt == np.bool_:
            if len(raw) == n:
                return np.frombuffer(raw, np.uint8).astype(np.bool_).reshape(shape)
            bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:n]
            return bits.astype(np.bool_).reshape(shape)
        return np.frombuffer(raw, dt).reshape(shape).copy()
    # Non-finite floats print as their bit pattern (0xFF800000 = -inf).
    text = re.sub(r"0x([0-9A-Fa-f]{8})\b",
                  lambda m: json.dumps(float(np.frombuffer(bytes.fromhex(m.group(1))[::-1], np.float32)[0])), text)
    val = json.loads(text.replace("true", "1").replace("false", "0"))
    arr = np.array(val, dtype=np.float64)
    return np.broadcast_to(arr, shape).astype(dt).copy()


def unary(fn, x):
    return {
        "neg": lambda: -x, "exp": lambda: np.exp(x), "log": lambda: np.log(x),
        "sqrt": lambda: np.sqrt(x), "rsqrt": lambda: 1 / np.sqrt(x), "reciprocal": lambda: 1 / x,
        "sigmoid": lambda: 1 / (1 + np.exp(-x)), "tanh": lambda: np.tanh(x),
        "silu": lambda: x / (1 + np.exp(-x)),
        "gelu_tanh": lambda: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3))),
        "cos": lambda: np.cos(x), "sin": lambda: np.sin(x), "relu": lambda: np.maximum(x, 0),
        "abs": lambda: np.abs(x), "round": lambda: np.round(x),  # half to even
    }[fn]()


def binary(fn, a, b):
    return {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
            "pow": np.power, "max": np.maximum, "min": np.minimum}[fn](a, b)


def evaluate(ir_text, weights, ids):
    env = {}
    for raw in ir_text.splitlines():
        line = raw.strip()
        if line.startswith("func.func"):
            arg = re.search(r"\((%\w+):", line).group(1)
            env[arg] = ids.astype(np.int32)
            continue
        if line.startswith("return"):
            return env[re.search(r"return (%\w+)", line).group(1)]
        m = re.match(r"(%[\w#]+) = tessera\.(\w+)\s+(.*)$", line)
        if not m:
            continue
        res, op, rest = m.groups()
        shape, dt = result_type(line)
        ops = [env[o] for o in re.findall(r"%[\w#]+", rest.split(" : ")[0])]
        words = rest.split()
        if op == "param":
            name = re.search(r'"(.*)"', rest).group(1)
            y = weights[name].astype(np.float32).reshape(shape)
        elif op == "constant":
            body = rest[rest.index("dense<") + 6: rest.rindex("> : tensor<")]
            y = parse_dense(body, shape, dt)
        elif op == "unary":
            y = unary(words[0], ops[0])
        elif op == "binary":
            y = binary(words[0], ops[0], ops[1])
        elif op == "select":
            y = np.where(ops[0], ops[1], ops[2])
        elif op == "cast":
            y = ops[0].astype(dt)
        elif op == "matmul":
            a, b = ops
            if "transpose_lhs = true" in rest:
                a = np.swapaxes(a, -1, -2)
            if "transpose_rhs = true" in rest:
                b = np.swapaxes(b, -1, -2)
            y = np.matmul(a, b)
        elif op == "reduce":
            axes = tuple(i64_array(rest, "axes"))
            keep = "keepdims = true" in rest
            y = {"sum": np.sum, "mean": np.mean, "max": np.max}[words[0]](ops[0], axis=axes, keepdims=keep)
        elif op == "softmax":
            x = ops[0]
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            y = e / e.sum(axis=-1, keepdims=True)
        elif op == "transpose":
            perm = [int(v) for v in re.search(r"\[([-0-9, ]*)\]", rest).group(1).split(",")]
            y = np.transpose(ops[0], perm)
        elif op == "reshape":
            y = ops[0].reshape(shape)
        elif op == "broadcast":
            y = np.broadcast_to(ops[0], shape).copy()
        elif op == "slice":
            st, li, sd = i64_array(rest, "starts"), i64_array(rest, "limits"), i64_array(rest, "strides")
            y = ops[0][tuple(slice(a, b, c) for a, b, c in zip(st, li, sd))]
        elif op == "concat":
            axis = int(re.search(r"axis = (-?\d+)", rest).group(1))
            y = np.concatenate(ops, axis=axis)
        elif op == "gather":
            m2 = re.search(r"axis = (\d+)", rest)
            y = np.take(ops[0], ops[1], axis=int(m2.group(1)) if m2 else 0)
        else:
            raise NotImplementedError(f"tessera.{op}")
        y = np.asarray(y)
        if tuple(y.shape) != shape:
            raise AssertionError(f"{res} = tessera.{op}: numpy shape {y.shape}, IR type {shape}")
        env[res] = y.astype(dt)
    raise AssertionError("no return")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ir")
    ap.add_argument("model")
    ap.add_argument("ref")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    model = onnx.load(a.model)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            weights.setdefault(n.output[0], numpy_helper.to_array(n.attribute[0].t))
    ref = np.load(a.ref)
    with open(a.ir) as f:
        got = evaluate(f.read(), weights, ref["ids"])
    want = ref["logits"]
    if got.shape != want.shape:
        print(f"MISMATCH: shape {got.shape} vs reference {want.shape}")
        return 1
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    scale = max(1.0, float(np.max(np.abs(want))))
    ok = diff <= a.tol * scale
    print(f"{'OK' if ok else 'MISMATCH'}: max abs diff {diff:.3g} (tolerance {a.tol * scale:.3g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
