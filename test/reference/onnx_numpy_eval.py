"""A tiny numpy interpreter for the ONNX ops the bundled model uses.

Used only to self-check that scripts/make_tiny_model.py's graph computes the
same function as the independent torch reference (tiny_llama_torch.py), so a
mismatch between Tessera and the reference can be blamed on Tessera.
Each op follows the ONNX operator specification (opset 17).
"""
import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) % x.ndim
        n = x.shape[a]
        s, e = int(s), int(e)
        s = max(0, min(n, s + n if s < 0 else s))
        e = max(0, min(n, e + n if e < 0 else e))
        sl[a] = slice(s, e, int(st))
    return x[tuple(sl)]


def _softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def run(model, feeds, compute_dtype=None):
    """Evaluates the graph; returns {output name: array}. compute_dtype=np.float64 upcasts floats."""
    env = {}

    def f(a):
        a = np.asarray(a)
        if compute_dtype is not None and a.dtype.kind == "f":
            return a.astype(compute_dtype)
        return a

    for t in model.graph.initializer:
        env[t.name] = f(numpy_helper.to_array(t))
    for k, v in feeds.items():
        env[k] = np.asarray(v)
    for node in model.graph.node:
        x = [env[i] if i else None for i in node.input]
        at = _attrs(node)
        op = node.op_type
        if op == "Constant":
            y = f(numpy_helper.to_array(at["value"]))
        elif op == "ConstantOfShape":
            v = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
            y = f(np.full(tuple(int(d) for d in x[0]), v.reshape(-1)[0], dtype=v.dtype))
        elif op == "Identity":
            y = x[0]
        elif op == "Shape":
            y = np.array(x[0].shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(x[0], x[1].astype(np.int64), axis=at.get("axis", 0))
        elif op == "Unsqueeze":
            y = x[0]
            axes = sorted(int(a) % (x[0].ndim + len(x[1])) for a in x[1])
            for a in axes:
                y = np.expand_dims(y, a)
        elif op == "Range":
            y = np.arange(x[0], x[1], x[2]).astype(x[0].dtype)
        elif op == "Cast":
            to = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[at["to"]]
            y = f(x[0].astype(to))
        elif op == "MatMul":
            y = np.matmul(x[0], x[1])
        elif op == "Transpose":
            y = np.transpose(x[0], at.get("perm"))
        elif op == "Concat":
            y = np.concatenate(x, axis=at["axis"])
        elif op in ("Cos", "Sin", "Sqrt", "Neg", "Exp", "Log", "Tanh", "Reciprocal"):
            fn = {"Cos": np.cos, "Sin": np.sin, "Sqrt": np.sqrt, "Neg": np.negative, "Exp": np.exp,
                  "Log": np.log, "Tanh": np.tanh, "Reciprocal": np.reciprocal}[op]
            y = fn(x[0])
        elif op == "Sigmoid":
            y = 1.0 / (1.0 + np.exp(-x[0]))
        elif op in ("Add", "Sub", "Mul", "Div", "Pow"):
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}[op]
            y = fn(x[0], x[1])
            if y.dtype != x[0].dtype:
                y = y.astype(x[0].dtype)
        elif op == "Less":
            y = np.less(x[0], x[1])
        elif op == "LessOrEqual":
            y = np.less_equal(x[0], x[1])
        elif op == "Where":
            y = np.where(x[0], x[1], x[2])
        elif op == "Reshape":
            shape = [int(d) for d in x[1]]
            shape = [x[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
            y = x[0].reshape(shape)
        elif op == "Expand":
            y = x[0] * np.ones(tuple(int(d) for d in x[1]), dtype=x[0].dtype)
        elif op == "Slice":
            y = _slice(x[0], x[1], x[2], x[3] if len(x) > 3 else None, x[4] if len(x) > 4 else None)
        elif op == "ReduceMean":
            y = np.mean(x[0], axis=tuple(at["axes"]), keepdims=bool(at.get("keepdims", 1)))
        elif op == "Softmax":
            y = _softmax(x[0], at.get("axis", -1))
        elif op == "Trilu":
            k = int(x[1]) if len(x) > 1 and x[1] is not None else 0
            y = np.triu(x[0], k) if at.get("upper", 1) else np.tril(x[0], k)
        else:
            raise NotImplementedError(f"{node.name}: op {op}")
        env[node.output[0]] = np.asarray(y)
    return {o.name: env[o.name] for o in model.graph.output}
