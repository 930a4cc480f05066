#!/usr/bin/python3
"""Small ONNX graphs (onnx.helper) for the importer's lit tests.

    gen_models.py CASE OUT.onnx [--batch B --seq T]

Writes OUT.onnx; cases with a numpy reference also write OUT.onnx.npz
(`ids` [B, T], `logits` [B, T, V]) for tessera_eval.py. Error cases write a
model that the importer must reject. `gen_models.py --list` lists the cases.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

I64 = np.int64
F32 = np.float32


class G:
    """Graph under construction: nodes, initializers, numpy weights."""

    def __init__(self, seed=0):
        self.nodes, self.inits, self.w = [], [], {}
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def weight(self, name, shape, scale=0.5):
        a = (self.rng.standard_normal(shape) * scale).astype(F32)
        self.w[name] = a
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def init(self, name, value, dtype):
        a = np.array(value, dtype=dtype)
        self.w[name] = a
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def const(self, value, dtype):
        self.n += 1
        out = f"c{self.n}"
        self.nodes.append(helper.make_node("Constant", [], [out], name=f"const{self.n}",
                                           value=numpy_helper.from_array(np.array(value, dtype=dtype))))
        return out

    def op(self, op_type, inputs, n_out=1, name=None, **attrs):
        self.n += 1
        outs = [f"v{self.n}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name or f"{op_type.lower()}{self.n}",
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, out, vocab, opset=17, inputs=None, ir_version=8, functions=None):
        self.nodes.append(helper.make_node("Identity", [out], ["logits"], name="logits_identity"))
        if inputs is None:
            inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
        graph = helper.make_graph(
            self.nodes, "test", inputs,
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
            initializer=self.inits)
        kw = {"functions": functions} if functions else {}
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)
        m.ir_version = ir_version
        return m


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def linear_T(g, x, name):
    return g.op("MatMul", [x, g.op("Transpose", [name], perm=[1, 0])])


# --- cases with a numpy reference: return (model, reference(ids) -> logits) -------------

def case_linear():
    g = G()
    V, H = 16, 8
    emb = g.weight("model.embed_tokens.weight", (V, H))
    wq = g.weight("model.layers.0.self_attn.q_proj.weight", (H, H))
    wl = g.weight("lm_head.weight", (V, H))
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    q = linear_T(g, h, wq)
    out = linear_T(g, q, wl)
    return g.model(out, V), lambda ids: g.w[emb][ids] @ g.w[wq].T @ g.w[wl].T


def case_shapes():
    """Positions, a cos table and a causal mask, all from Shape(input_ids)."""
    g = G(1)
    V, H = 16, 6
    emb = g.weight("model.embed_tokens.weight", (V, H))
    wl = g.weight("lm_head.weight", (V, H))
    inv = g.init("model.rotary_emb.inv_freq", [[1.0 / (100.0 ** (k / H)) for k in range(H)]], F32)
    shape = g.op("Shape", ["input_ids"])
    T = g.op("Gather", [shape, g.const(1, I64)], axis=0)
    pos = g.op("Range", [g.const(0, I64), T, g.const(1, I64)])
    pos = g.op("Unsqueeze", [g.op("Cast", [pos], to=TensorProto.FLOAT), g.const([1], I64)])
    cos = g.op("Cos", [g.op("MatMul", [pos, inv])])  # [T, H]
    h = g.op("Mul", [g.op("Gather", [emb, "input_ids"], axis=0), cos])
    T1 = g.op("Unsqueeze", [T, g.const([0], I64)])
    ones = g.op("ConstantOfShape", [g.op("Concat", [T1, T1], axis=0)],
                value=numpy_helper.from_array(np.array([1.0], F32)))
    tri = g.op("Trilu", [ones], upper=0)
    mask = g.op("Where", [g.op("Equal", [tri, g.const(0.0, F32)]), g.const(-1e9, F32), g.const(0.0, F32)])
    scores = g.op("Add", [g.op("MatMul", [h, g.op("Transpose", [h], perm=[0, 2, 1])]), mask])
    ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), h])
    out = linear_T(g, ctx, wl)

    def ref(ids):
        T = ids.shape[1]
        c = np.cos(np.arange(T, dtype=F32)[:, None] @ g.w[inv])
        x = g.w[emb][ids] * c
        m = np.where(np.tril(np.ones((T, T))) == 0, -1e9, 0.0).astype(F32)
        p = softmax(x @ x.transpose(0, 2, 1) + m)
        return (p @ x) @ g.w[wl].T
    return g.model(out, V), ref


def case_rmsnorm():
    g = G(2)
    V, H = 16, 8
    emb = g.weight("model.embed_tokens.weight", (V, H))
    nw = g.weight("model.norm.weight", (H,))
    wl = g.weight("lm_head.weight", (V, H))
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    var = g.op("ReduceMean", [g.op("Pow", [h, g.const(2.0, F32)])], axes=[-1], keepdims=1)
    r = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, g.const(1e-6, F32)])])])
    y = g.op("Mul", [g.op("Mul", [h, r]), nw])
    out = linear_T(g, y, wl)

    def ref(ids):
        x = g.w[emb][ids]
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * g.w[nw]
        return y @ g.w[wl].T
    return g.model(out, V), ref


def case_clip_round():
    """Clip (both bounds, min only, opset-11 inputs) and Round of computed values: BitNet's quantisers."""
    g = G(5)
    V, H = 16, 8
    emb = g.weight("model.embed_tokens.weight", (V, H), scale=3.0)
    wl = g.weight("lm_head.weight", (V, H))
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    r = g.op("Round", [g.op("Mul", [h, g.const(2.0, F32)])])  # x.5 ties: to even
    c = g.op("Clip", [r, g.const(-3.0, F32), g.const(2.0, F32)])
    m = g.op("Clip", [h, g.const(0.5, F32)])  # min only
    y = g.op("Add", [c, m])
    out = linear_T(g, y, wl)

    def ref(ids):
        x = g.w[emb][ids]
        return (np.clip(np.round(x * 2), -3, 2) + np.maximum(x, 0.5)) @ g.w[wl].T
    return g.model(out, V), ref


def case_clip_bad_bound():
    g = G(5)
    emb = g.weight("model.embed_tokens.weight", (16, 8))
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    bound = g.weight("bounds", (2,))
    return g.model(g.op("Clip", [h, bound], name="bad_clip"), 8), None


def case_ops():
    """Gemm, LayerNormalization, Split, Slice, Gather, Tile, Where, Softmax(axis 1), ..."""
    g = G(3)
    V, H = 12, 8
    emb = g.weight("model.embed_tokens.weight", (V, H))
    w1 = g.weight("fc1.weight", (H, 10))
    b1 = g.weight("fc1.bias", (10,))
    w2 = g.weight("fc2.weight", (10, 10))
    ls = g.weight("ln.weight", (10,))
    lb = g.weight("ln.bias", (10,))
    perm = [3, 1, 2, 0, 11, 5, 7, 6, 8, 10, 9, 4]
    cond = [True, False] * 5
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    f = g.op("Flatten", [h], axis=2)  # [B*T, H]
    x = g.op("Gemm", [f, w1, b1], alpha=0.5, beta=2.0)
    x = g.op("Relu", [g.op("Gemm", [x, w2], transB=1)])
    s1, s2 = g.op("Split", [x, g.const([4, 6], I64)], n_out=2, axis=1)
    x = g.op("Concat", [g.op("Tanh", [s1]), g.op("Exp", [g.op("Neg", [g.op("Abs", [s2])])])], axis=1)
    shape = g.op("Concat", [g.op("Shape", ["input_ids"]), g.const([-1], I64)], axis=0)
    x = g.op("Reshape", [x, shape])  # [B, T, 10]
    x = g.op("LayerNormalization", [x, ls, lb], axis=-1, epsilon=1e-5)
    x = g.op("Softmax", [x], axis=1)
    x = g.op("Where", [g.const(cond, np.bool_), x, g.op("Sub", [g.const(0.0, F32), x])])
    a = g.op("Slice", [x, g.const([-8], I64), g.const([1000], I64), g.const([2], I64), g.const([1], I64)])
    b = g.op("Slice", [x, g.const([0], I64), g.const([10], I64), g.const([-1], I64), g.const([2], I64)])
    b = g.op("ReduceSum", [b, g.const([2], I64)], keepdims=1)
    m = g.op("Min", [g.op("Max", [a, b]), g.op("Div", [a, g.const(2.0, F32)])])  # [B, T, 8]
    even = g.op("Gather", [m, g.const([0, 2, 4, 6], I64)], axis=2)
    one = g.op("Tile", [g.op("Unsqueeze", [g.op("Gather", [m, g.const(1, I64)], axis=2), g.const([2], I64)]),
                        g.const([1, 1, 4], I64)])
    c = g.op("Concat", [even, one, g.op("Mul", [even, one])], axis=2)  # [B, T, 12]
    c = g.op("Squeeze", [g.op("Unsqueeze", [c, g.const([0], I64)]), g.const([0], I64)])
    c = g.op("Gather", [c, g.const(perm, I64)], axis=-1)
    out = g.op("Mul", [g.op("Sigmoid", [c]), g.const(3.0, F32)])

    def ref(ids):
        B, T = ids.shape
        f = g.w[emb][ids].reshape(B * T, H)
        x = 0.5 * (f @ g.w[w1]) + 2.0 * g.w[b1]
        x = np.maximum(x @ g.w[w2].T, 0)
        x = np.concatenate([np.tanh(x[:, :4]), np.exp(-np.abs(x[:, 4:]))], axis=1).reshape(B, T, 10)
        mu = x.mean(-1, keepdims=True)
        x = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g.w[ls] + g.w[lb]
        x = softmax(x, axis=1)
        x = np.where(np.array(cond), x, -x)
        a = x[:, :, 2:]
        b = x[:, :, 0:10:2].sum(-1, keepdims=True)
        m = np.minimum(np.maximum(a, b), a / 2)
        even = m[:, :, [0, 2, 4, 6]]
        one = np.tile(m[:, :, 1:2], (1, 1, 4))
        c = np.concatenate([even, one, even * one], axis=2)[:, :, perm]
        return 3.0 / (1 + np.exp(-c))
    return g.model(out, V), ref


def case_opset18():
    """Opset 18 forms: Reduce* axes as an input, Split num_outputs; dynamic Trilu."""
    g = G(4)
    V = 8
    emb = g.weight("model.embed_tokens.weight", (V, V))
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    d = g.op("Sub", [h, g.op("ReduceMean", [h, g.const([-1], I64)], keepdims=1)])
    a, b = g.op("Split", [d], n_out=2, axis=2, num_outputs=2)
    c = g.op("Concat", [b, a], axis=2)
    sc = g.op("MatMul", [c, g.op("Transpose", [c], perm=[0, 2, 1])])
    tr = g.op("Trilu", [sc], upper=0)
    mx = g.op("ReduceMax", [tr, g.const([2], I64)], keepdims=1)
    out = g.op("Add", [c, mx])

    def ref(ids):
        h = g.w[emb][ids]
        d = h - h.mean(-1, keepdims=True)
        c = np.concatenate([d[:, :, 4:], d[:, :, :4]], axis=2)
        tr = np.tril(c @ c.transpose(0, 2, 1))
        return c + tr.max(2, keepdims=True)
    return g.model(out, V, opset=18), ref


def case_function():
    """A model-local function (as torch.onnx dynamo exports use), with an attribute reference."""
    g = G(5)
    V = 8
    emb = g.weight("model.embed_tokens.weight", (V, V))
    sm = helper.make_node("Softmax", ["sq"], ["y"], name="sm")
    ref_attr = helper.make_attribute("axis", 0)
    ref_attr.ref_attr_name = "ax"
    ref_attr.ClearField("i")
    sm.attribute.append(ref_attr)
    fn = helper.make_function("local", "SquareSoftmax", ["x"], ["y"],
                              [helper.make_node("Mul", ["x", "x"], ["sq"], name="mul"), sm],
                              [helper.make_opsetid("", 17)], ["ax"])
    h = g.op("Gather", [emb, "input_ids"], axis=0)
    g.n += 1
    out = f"fn{g.n}"
    g.nodes.append(helper.make_node("SquareSoftmax", [h], [out], name="call", domain="local", ax=-1))
    model = g.model(out, V, functions=[fn])
    model.opset_import.append(helper.make_opsetid("local", 1))
    return model, lambda ids: softmax(g.w[emb][ids] ** 2, -1)


def case_constant_weight():
    """A weight stored in a Constant node: a param named by the node's output (the runtime indexes those too)."""
    g = G(6)
    V, H = 8, 8
    emb = g.weight("model.embed_tokens.weight", (V, H))
    w = (g.rng.standard_normal((V, H)) * 0.5).astype(F32)
    g.nodes.append(helper.make_node("Constant", [], ["lm_head_const"], name="lm_head",
                                    value=numpy_helper.from_array(w)))
    out = g.op("MatMul", [g.op("Gather", [emb, "input_ids"], axis=0), g.op("Transpose", ["lm_head_const"])])
    return g.model(out, V), lambda ids: g.w[emb][ids] @ w.T


def case_fixed_dims():
    """An export with a fixed [1, 8] input."""
    g = G()
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 8])]
    m = g.model(base(g), 8, inputs=inputs)
    return m, (lambda ids: g.w["model.embed_tokens.weight"][ids])


def case_gathernd_nan_guard():
    """GatherND (batch_dims 0 and 1) folded on constants, and SDPA's NaN guard
    Where(IsNaN(p), 0, p) after a mask whose first row is fully -inf."""
    g = G(5)
    V, H = 8, 8
    emb = g.weight("model.embed_tokens.weight", (V, H))
    wl = g.weight("lm_head.weight", (V, H))
    table = g.init("table", g.rng.integers(-3, 4, (2, 3, H)), I64)  # integer, like torch's mask subgraph
    gnd0 = g.op("GatherND", [table, g.init("idx0", [[0, 1], [1, 2]], I64)])
    gnd1 = g.op("GatherND", [table, g.init("idx1", [[2], [0]], I64)], batch_dims=1)
    bias = g.op("Cast", [g.op("ReduceSum", [g.op("Add", [gnd0, gnd1]), g.const([0], I64)], keepdims=0)],
                to=TensorProto.FLOAT)
    x = g.op("Add", [g.op("Gather", [emb, "input_ids"], axis=0), bias])
    shape = g.op("Shape", ["input_ids"])
    T1 = g.op("Slice", [shape, g.const([1], I64), g.const([2], I64)])
    ones = g.op("ConstantOfShape", [g.op("Concat", [T1, T1], axis=0)],
                value=numpy_helper.from_array(np.array([1.0], F32)))
    tri = g.op("Trilu", [ones, g.const(-1, I64)], upper=0)
    mask = g.op("Where", [g.op("Equal", [tri, g.const(0.0, F32)]), g.const(-np.inf, F32), g.const(0.0, F32)])
    p = g.op("Softmax", [g.op("Add", [g.op("MatMul", [x, g.op("Transpose", [x], perm=[0, 2, 1])]), mask])])
    p = g.op("Where", [g.op("IsNaN", [p]), g.const(0.0, F32), p])
    out = linear_T(g, g.op("MatMul", [p, x]), wl)

    def ref(ids):
        t = g.w[table]
        xx = g.w[emb][ids] + (t[[0, 1], [1, 2]] + t[[0, 1], [2, 0]]).sum(0)
        T = ids.shape[1]
        m = np.where(np.tril(np.ones((T, T)), -1) == 0, -np.inf, 0.0)
        with np.errstate(invalid="ignore"):
            pr = softmax(xx @ xx.transpose(0, 2, 1) + m)
        pr = np.where(np.isnan(pr), 0.0, pr)
        return (pr @ xx) @ g.w[wl].T
    return g.model(out, V), ref


def static_export(perturb=None):
    """A static export at [1, 8] (torch.onnx without dynamic shapes): Reshape / Expand
    targets, RoPE cos/sin tables (theta 100) and a sliding-window mask (window 3) baked
    in as initializers, anonymous [in, out] weights, SDPA's IsNaN guard."""
    g = G(3)
    V, H, T0, W = 16, 8, 8, 3
    emb = g.weight("model.embed_tokens.weight", (V, H))
    wq, wk, wv, wo = (g.weight(n, s) for n, s in (("val_q", (H, 8)), ("val_k", (H, 4)), ("val_v", (H, 4)),
                                                  ("val_o", (8, V))))
    inv = np.array([1.0, 0.1, 1.0, 0.1], F32)

    def tables(T):
        ang = (np.arange(T, dtype=F32)[:, None] * inv[None, :]).astype(F32)
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        mask = np.where((j <= i) & (i - j < W), 0.0, -3.4028235e38).astype(F32)
        return np.cos(ang)[None, None], np.sin(ang)[None, None], mask[None, None]

    cos0, sin0, mask0 = tables(T0)
    if perturb == "rope":
        cos0 = cos0.copy()
        cos0[0, 0, 5, 1] += 0.01
    cos = g.init("rope_cos", cos0, F32)
    sin = g.init("rope_sin", sin0, F32)
    mask = g.init("mask_sw", mask0, F32)
    x = g.op("Gather", [emb, "input_ids"], axis=0)
    if perturb == "bias":
        x = g.op("Add", [x, g.init("pos_bias", g.rng.standard_normal((1, T0, H)), F32)])

    def heads(w, nh, name):
        t = g.op("Reshape", [g.op("MatMul", [x, w]), g.init(name, [1, T0, nh, 4], I64)])
        return g.op("Transpose", [t], perm=[0, 2, 1, 3])

    def rope(t):
        lo = g.op("Slice", [t, g.init("s0_" + t, [0], I64), g.init("s2_" + t, [2], I64), g.init("ax_" + t, [3], I64)])
        hi = g.op("Slice", [t, "s2_" + t, g.init("s4_" + t, [4], I64), "ax_" + t])
        rot = g.op("Concat", [g.op("Neg", [hi]), lo], axis=-1)
        return g.op("Add", [g.op("Mul", [t, cos]), g.op("Mul", [rot, sin])])

    def repeat_kv(t, name):
        e = g.op("Expand", [g.op("Unsqueeze", [t, g.init(name + "_ax", [2], I64)]),
                            g.init(name + "_expand", [1, 1, 2, T0, 4], I64)])
        return g.op("Reshape", [e, g.init(name + "_shape", [1, 2, T0, 4], I64)])

    q = rope(heads(wq, 2, "shape_q"))
    k = repeat_kv(rope(heads(wk, 1, "shape_k")), "k")
    v = repeat_kv(heads(wv, 1, "shape_v"), "v")
    scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                                        g.init("scale", 0.5, F32)]), mask])
    p = g.op("Softmax", [scores], axis=-1)
    p = g.op("Where", [g.op("IsNaN", [p]), g.init("zero", 0.0, F32), p])
    ctx = g.op("Transpose", [g.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    out = g.op("MatMul", [g.op("Reshape", [ctx, g.init("shape_o", [1, T0, 8], I64)]), wo])
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, T0])]

    def ref(ids):
        B, T = ids.shape
        c, s_, m = tables(T)
        h = g.w[emb][ids]

        def hd(w, nh):
            return (h @ g.w[w]).reshape(B, T, nh, 4).transpose(0, 2, 1, 3)

        def rp(t):
            return t * c + np.concatenate([-t[..., 2:], t[..., :2]], -1) * s_

        qq, kk, vv = rp(hd(wq, 2)), np.repeat(rp(hd(wk, 1)), 2, 1), np.repeat(hd(wv, 1), 2, 1)
        pr = softmax(qq @ kk.transpose(0, 1, 3, 2) * 0.5 + m)
        return (pr @ vv).transpose(0, 2, 1, 3).reshape(B, T, 8) @ g.w[wo]
    return g.model(out, V, inputs=inputs), ref


def case_static_export():
    return static_export()


# --- error cases ---------------------------------------------------------------------------

def base(g, V=8):
    emb = g.weight("model.embed_tokens.weight", (V, V))
    return g.op("Gather", [emb, "input_ids"], axis=0)


def case_unsupported():
    g = G()
    return g.model(g.op("Hardmax", [base(g)], name="my_hardmax"), 8), None


def case_erf():
    g = G()
    return g.model(g.op("Erf", [base(g)], name="/mlp/act/Erf"), 8), None


def case_negstep():
    g = G()
    h = base(g)
    out = g.op("Slice", [h, g.const([-1], I64), g.const([-1000], I64), g.const([2], I64), g.const([-1], I64)],
               name="reverse")
    return g.model(out, 8), None


def case_static_bad_rope():
    m, _ = static_export("rope")
    return m, None


def case_static_unknown_table():
    m, _ = static_export("bias")
    return m, None


def case_unsupported_many():
    g = G()
    h = base(g)
    for k in range(6):
        h = g.op("Hardmax" if k % 2 == 0 else "Det", [h], name=f"bad{k}")
    return g.model(h, 8), None


def case_float_input():
    g = G()
    emb = g.weight("model.embed_tokens.weight", (8, 8))
    out = g.op("MatMul", ["pixel_values", emb])
    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", "seq", 8])]
    return g.model(out, 8, inputs=inputs), None


def case_extra_input():
    g = G()
    out = g.op("Mul", [base(g), g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([2], I64)])],
                                                to=TensorProto.FLOAT)])
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])]
    return g.model(out, 8, inputs=inputs), None


def case_opset11():
    g = G()
    return g.model(base(g), 8, opset=11), None


def case_opset19():
    g = G()
    return g.model(base(g), 8, opset=19), None


def external(model, name, location, offset, length):
    for t in model.graph.initializer:
        if t.name == name:
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
                e = t.external_data.add()
                e.key, e.value = k, v
    return model


def case_ext_ok():
    m, ref = case_linear()
    return m, ref  # main() moves lm_head.weight to OUT.onnx.data


def case_ext_missing():
    m, _ = case_linear()
    return external(m, "lm_head.weight", "missing_weights.bin", 0, 16 * 8 * 4), None


def case_ext_range():
    m, _ = case_linear()
    return m, None  # main() writes a data file that is too short


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list or not a.case:
        print("\n".join(sorted(CASES)))
        return 0
    model, ref = CASES[a.case]()
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if a.case in ("ext_ok", "ext_range"):
        # lm_head.weight [16, 8] f32 in a separate file, after 64 bytes of padding.
        data = "%s.data" % os.path.basename(a.out)
        w = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "lm_head.weight")
        blob = b"\0" * 64 + w.astype("<f4").tobytes()
        if a.case == "ext_range":
            blob = blob[:-4]
        with open(os.path.join(out_dir, data), "wb") as f:
            f.write(blob)
        external(model, "lm_head.weight", data, 64, w.size * 4)
    with open(a.out, "wb") as f:
        f.write(model.SerializeToString())
    if ref is not None:
        V = model.graph.output[0].type.tensor_type.shape.dim[2].dim_value
        ids = np.random.default_rng(7).integers(0, V, size=(a.batch, a.seq), dtype=np.int64)
        np.savez(a.out + ".npz", ids=ids, logits=ref(ids).astype(F32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
