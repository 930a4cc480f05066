#!/usr/bin/python3
"""Writes Tessera's bundled tiny Llama-architecture decoder as an ONNX file.

The graph is built node by node with onnx.helper (opset 17, IR version 8) the
way `torch.onnx.export` of a Hugging Face LlamaForCausalLM with dynamic axes
expresses it: positions, RoPE cos/sin and the causal mask are computed in the
graph from Shape(input_ids), linears are MatMul(x, Transpose(W)) with W stored
[out, in] under the Hugging Face parameter names, RMSNorm is
Pow/ReduceMean/Add/Sqrt/Div/Mul, SiLU is Sigmoid*x, repeat_kv is
Unsqueeze/Expand/Reshape.

    make_tiny_model.py --out build/default/tiny-llama.onnx [--external-data] [--seed 0] [--vocab 256]

--out may be a directory (the model is then DIR/tiny-llama.onnx). A Hugging
Face style config.json is written beside the model (test/reference reads it).
The weights are seeded numpy normals, so the output is byte-for-byte
deterministic for a given seed.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "intermediate_size": 352,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
    "max_position_embeddings": 2048,
    "torch_dtype": "float32",
}


def make_weights(cfg, seed):
    """All parameters, in a fixed order, as float32 numpy arrays ([out, in] for linears)."""
    rng = np.random.default_rng(seed)
    std = cfg["initializer_range"]
    H, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def normal(shape):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def norm_w():
        # 1 + noise, so that a norm weight that is ignored or misplaced shows up in the loss.
        return rng.normal(1.0, 0.1, size=(H,)).astype(np.float32)

    w = {"model.embed_tokens.weight": normal((V, H))}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm_w()
        w[p + "self_attn.q_proj.weight"] = normal((nh * hd, H))
        w[p + "self_attn.k_proj.weight"] = normal((nkv * hd, H))
        w[p + "self_attn.v_proj.weight"] = normal((nkv * hd, H))
        w[p + "self_attn.o_proj.weight"] = normal((H, nh * hd))
        w[p + "post_attention_layernorm.weight"] = norm_w()
        w[p + "mlp.gate_proj.weight"] = normal((I, H))
        w[p + "mlp.up_proj.weight"] = normal((I, H))
        w[p + "mlp.down_proj.weight"] = normal((H, I))
    w["model.norm.weight"] = norm_w()
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = normal((V, H))
    return w


class GraphBuilder:
    """Appends nodes with unique, export-like names (/model/layers.0/self_attn/MatMul ...)."""

    def __init__(self):
        self.nodes = []
        self.counts = {}

    def op(self, op_type, inputs, scope="", n_out=1, **attrs):
        base = f"{scope}/{op_type}"
        k = self.counts.get(base, 0)
        self.counts[base] = k + 1
        name = base if k == 0 else f"{base}_{k}"
        outs = [f"{name}_output_{j}" for j in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, scope="", dtype=None):
        arr = np.array(value, dtype=dtype)
        out = self.op("Constant", [], scope, value=numpy_helper.from_array(arr))
        return out


def build_model(cfg, weights):
    V = cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    g = GraphBuilder()
    i64 = np.int64

    # Embedding.
    h = g.op("Gather", ["model.embed_tokens.weight", "input_ids"], "/model/embed_tokens", axis=0)

    # Dynamic batch / sequence sizes.
    shape = g.op("Shape", ["input_ids"], "/model")
    bsz = g.op("Gather", [shape, g.const(0, "/model", i64)], "/model", axis=0)
    seqlen = g.op("Gather", [shape, g.const(1, "/model", i64)], "/model", axis=0)
    bsz_1d = g.op("Unsqueeze", [bsz, g.const([0], "/model", i64)], "/model")
    seq_1d = g.op("Unsqueeze", [seqlen, g.const([0], "/model", i64)], "/model")

    # position_ids = arange(seq)[None]
    positions = g.op("Range", [g.const(0, "/model", i64), seqlen, g.const(1, "/model", i64)], "/model")
    position_ids = g.op("Unsqueeze", [positions, g.const([0], "/model", i64)], "/model")

    # Rotary embedding: freqs = (inv_freq[None, :, None] @ position_ids[:, None, :].float()).transpose(1, 2)
    sc = "/model/rotary_emb"
    inv_freq_e = g.op("Unsqueeze", ["model.rotary_emb.inv_freq", g.const([0, 2], sc, i64)], sc)
    pos_e = g.op("Unsqueeze", [position_ids, g.const([1], sc, i64)], sc)
    pos_f = g.op("Cast", [pos_e], sc, to=TensorProto.FLOAT)
    freqs = g.op("MatMul", [inv_freq_e, pos_f], sc)
    freqs = g.op("Transpose", [freqs], sc, perm=[0, 2, 1])
    emb = g.op("Concat", [freqs, freqs], sc, axis=-1)
    cos = g.op("Cos", [emb], sc)
    sin = g.op("Sin", [emb], sc)
    cos = g.op("Unsqueeze", [cos, g.const([1], sc, i64)], sc)  # [1, 1, seq, head_dim]
    sin = g.op("Unsqueeze", [sin, g.const([1], sc, i64)], sc)

    # Causal mask, as transformers' _make_causal_mask: full(min); masked_fill(cond < (cond + 1).view(n, 1), 0).
    sc = "/model/causal_mask"
    fmin = float(np.finfo(np.float32).min)
    square = g.op("Concat", [seq_1d, seq_1d], sc, axis=0)
    full = g.op("ConstantOfShape", [square], sc,
                value=numpy_helper.from_array(np.array([fmin], dtype=np.float32)))
    cond = g.op("Range", [g.const(0, sc, i64), seqlen, g.const(1, sc, i64)], sc)
    cond1 = g.op("Add", [cond, g.const(1, sc, i64)], sc)
    col_shape = g.op("Concat", [seq_1d, g.const([1], sc, i64)], sc, axis=0)
    cond1 = g.op("Reshape", [cond1, col_shape], sc)
    allowed = g.op("Less", [cond, cond1], sc)  # [seq, seq]: key j < query i + 1
    mask = g.op("Where", [allowed, g.const(0.0, sc, np.float32), full], sc)
    mask = g.op("Unsqueeze", [mask, g.const([0, 1], sc, i64)], sc)
    mask_shape = g.op("Concat", [bsz_1d, g.const([1], sc, i64), seq_1d, seq_1d], sc, axis=0)
    mask = g.op("Expand", [mask, mask_shape], sc)  # [batch, 1, seq, seq]

    def rms_norm(x, weight, sc):
        sq = g.op("Pow", [x, g.const(2.0, sc, np.float32)], sc)
        var = g.op("ReduceMean", [sq], sc, axes=[-1], keepdims=1)
        var = g.op("Add", [var, g.const(eps, sc, np.float32)], sc)
        std = g.op("Sqrt", [var], sc)
        inv = g.op("Div", [g.const(1.0, sc, np.float32), std], sc)
        x = g.op("Mul", [x, inv], sc)
        return g.op("Mul", [weight, x], sc)

    def linear(x, weight, sc):
        wt = g.op("Transpose", [weight], sc, perm=[1, 0])
        return g.op("MatMul", [x, wt], sc)

    def rotate_half(x, sc):
        half = hd // 2
        x1 = g.op("Slice", [x, g.const([0], sc, i64), g.const([half], sc, i64),
                            g.const([3], sc, i64), g.const([1], sc, i64)], sc)
        x2 = g.op("Slice", [x, g.const([half], sc, i64), g.const([np.iinfo(np.int64).max], sc, i64),
                            g.const([3], sc, i64), g.const([1], sc, i64)], sc)
        nx2 = g.op("Neg", [x2], sc)
        return g.op("Concat", [nx2, x1], sc, axis=-1)

    def apply_rope(x, sc):
        a = g.op("Mul", [x, cos], sc)
        b = g.op("Mul", [rotate_half(x, sc), sin], sc)
        return g.op("Add", [a, b], sc)

    def heads(x, n, sc):
        shp = g.op("Concat", [bsz_1d, seq_1d, g.const([n, hd], sc, i64)], sc, axis=0)
        x = g.op("Reshape", [x, shp], sc)
        return g.op("Transpose", [x], sc, perm=[0, 2, 1, 3])  # [batch, n, seq, head_dim]

    def repeat_kv(x, sc):
        rep = nh // nkv
        if rep == 1:
            return x
        x = g.op("Unsqueeze", [x, g.const([2], sc, i64)], sc)
        eshape = g.op("Concat", [bsz_1d, g.const([nkv, rep], sc, i64), seq_1d, g.const([hd], sc, i64)],
                      sc, axis=0)
        x = g.op("Expand", [x, eshape], sc)
        rshape = g.op("Concat", [bsz_1d, g.const([nh], sc, i64), seq_1d, g.const([hd], sc, i64)],
                      sc, axis=0)
        return g.op("Reshape", [x, rshape], sc)

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        ls = f"/model/layers.{i}"
        residual = h
        x = rms_norm(h, p + "input_layernorm.weight", ls + "/input_layernorm")

        sc = ls + "/self_attn"
        q = heads(linear(x, p + "self_attn.q_proj.weight", sc + "/q_proj"), nh, sc)
        k = heads(linear(x, p + "self_attn.k_proj.weight", sc + "/k_proj"), nkv, sc)
        v = heads(linear(x, p + "self_attn.v_proj.weight", sc + "/v_proj"), nkv, sc)
        q = apply_rope(q, sc)
        k = apply_rope(k, sc)
        k = repeat_kv(k, sc)
        v = repeat_kv(v, sc)
        kt = g.op("Transpose", [k], sc, perm=[0, 1, 3, 2])
        scores = g.op("MatMul", [q, kt], sc)
        scores = g.op("Div", [scores, g.const(math.sqrt(hd), sc, np.float32)], sc)
        scores = g.op("Add", [scores, mask], sc)
        probs = g.op("Softmax", [scores], sc, axis=-1)
        attn = g.op("MatMul", [probs, v], sc)
        attn = g.op("Transpose", [attn], sc, perm=[0, 2, 1, 3])
        oshape = g.op("Concat", [bsz_1d, seq_1d, g.const([nh * hd], sc, i64)], sc, axis=0)
        attn = g.op("Reshape", [attn, oshape], sc)
        attn = linear(attn, p + "self_attn.o_proj.weight", sc + "/o_proj")
        h = g.op("Add", [residual, attn], ls)

        residual = h
        x = rms_norm(h, p + "post_attention_layernorm.weight", ls + "/post_attention_layernorm")
        sc = ls + "/mlp"
        gate = linear(x, p + "mlp.gate_proj.weight", sc + "/gate_proj")
        gate = g.op("Mul", [gate, g.op("Sigmoid", [gate], sc + "/act_fn")], sc + "/act_fn")
        up = linear(x, p + "mlp.up_proj.weight", sc + "/up_proj")
        m = g.op("Mul", [gate, up], sc)
        m = linear(m, p + "mlp.down_proj.weight", sc + "/down_proj")
        h = g.op("Add", [residual, m], ls)

    x = rms_norm(h, "model.norm.weight", "/model/norm")
    head = "model.embed_tokens.weight" if cfg["tie_word_embeddings"] else "lm_head.weight"
    logits_pre = linear(x, head, "/lm_head")
    g.nodes.append(helper.make_node("Identity", [logits_pre], ["logits"], name="/Identity_logits"))

    rope_dim = hd
    inv_freq = (1.0 / (cfg["rope_theta"] ** (np.arange(0, rope_dim, 2, dtype=np.int64).astype(np.float32)
                                             / rope_dim))).astype(np.float32)
    inits = [numpy_helper.from_array(a, name) for name, a in weights.items()]
    inits.append(numpy_helper.from_array(inv_freq, "model.rotary_emb.inv_freq"))

    graph = helper.make_graph(
        g.nodes, "tiny_llama",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", V])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tessera-make_tiny_model", producer_version="1")
    model.ir_version = 8
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output .onnx file or directory")
    ap.add_argument("--external-data", action="store_true", help="store the weights in <name>.onnx.data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=CONFIG["vocab_size"],
                    help="vocabulary size (a larger one exercises the chunked cross-entropy)")
    ap.add_argument("--hidden", type=int, default=CONFIG["hidden_size"],
                    help="hidden size (4 heads of hidden/4; with --vocab, a table beyond a device's buffer limit; "
                         "256 gives TQ2_0 blocks a whole row)")
    ap.add_argument("--intermediate", type=int, default=None,
                    help="MLP width (default: the tiny model's, scaled with --hidden)")
    ap.add_argument("--layers", type=int, default=CONFIG["num_hidden_layers"])
    ap.add_argument("--tie", action="store_true", help="tie lm_head to the embedding (tie_word_embeddings)")
    args = ap.parse_args(argv)
    if args.hidden < CONFIG["num_attention_heads"] * 2 or args.hidden % (2 * CONFIG["num_attention_heads"]):
        ap.error(f"--hidden must be a multiple of {2 * CONFIG['num_attention_heads']}")
    if args.vocab < 2:
        ap.error("--vocab must be >= 2")
    if args.hidden < 8 or args.hidden % 8 or args.layers < 1:
        ap.error("--hidden must be a multiple of 8 and --layers >= 1")

    out = args.out
    if not out.endswith(".onnx"):
        out = os.path.join(out, "tiny-llama.onnx")
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)

    cfg = dict(CONFIG, vocab_size=args.vocab, num_hidden_layers=args.layers, tie_word_embeddings=args.tie)
    if args.hidden != CONFIG["hidden_size"]:
        cfg.update(hidden_size=args.hidden, head_dim=args.hidden // CONFIG["num_attention_heads"],
                   intermediate_size=CONFIG["intermediate_size"] * args.hidden // CONFIG["hidden_size"])
    if args.intermediate is not None:
        cfg.update(intermediate_size=args.intermediate)
    model = build_model(cfg, make_weights(cfg, args.seed))
    onnx.checker.check_model(model)

    data_name = os.path.basename(out) + ".data"
    data_path = os.path.join(out_dir, data_name)
    if args.external_data:
        if os.path.exists(data_path):
            os.remove(data_path)  # save_model appends to an existing data file
        onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=0)
    else:
        onnx.save_model(model, out)
    onnx.checker.check_model(out)

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}" + (f" (+ {data_name})" if args.external_data else "") + " and config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
