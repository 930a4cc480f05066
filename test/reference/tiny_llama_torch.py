#!/usr/bin/python3
"""Independent PyTorch (float64) reference of the decoders Tessera trains, with LoRA.

It reads the parameter tensors from the ONNX file (onnx.numpy_helper, external
data too) but never executes the ONNX graph: the architecture is written out
here from config.json (Hugging Face keys, found beside the model unless
--config is given; the HF fixtures keep theirs in reference.json):

- llama (the bundled model): RMSNorm, RoPE (rotate_half), GQA attention with a
  causal mask, SwiGLU MLP, lm_head (tied or not);
- qwen3: + RMSNorm of each query and key head before RoPE (q_norm, k_norm);
- gemma3: embeddings scaled by sqrt(hidden), (1 + w) RMSNorms also after the
  attention and around the MLP, q/k norms, queries scaled by
  query_pre_attn_scalar^-1/2, sliding-window layers with their own RoPE theta,
  GELU(tanh) gated MLP, tied embeddings.

Weights are found by their Hugging Face names, or, in exports whose linear
weights are anonymous (the dynamo exports of test/fixtures/hf: `val_N`, `[in,
out]`), by walking the graph for the order in which they are used (weights()).

--precision f16|bf16 computes what a plan of that precision computes
(compiler/precision/AssignPrecision.cpp is the policy): frozen weights rounded
to the half type, and every activation the plan stores in the half type
rounded where it is stored (f32 arithmetic in between is done in float64);
the residual stream, norm statistics, attention scores before the softmax,
the attention probabilities (fused attention never stores them;
--decomposed-attention: a --no-fused-attention plan, which stores them in
the half type), logits, the loss and LoRA factors stay unrounded. f16 stores saturate at
+-65504 as the kernels' do. The backward pass differentiates the rounded
forward pass (a rounding passes its gradient through unchanged).

LoRA (PEFT layout): y = x W^T + scale * (x A^T) B^T, A [r, in], B [out, r],
adapter dir = adapter_model.safetensors (base_model.model.model.<module>.lora_A.weight)
+ adapter_config.json.

Loss: Hugging Face causal LM (logits[:, :-1] vs labels[:, 1:], ignore_index
-100, mean over the counted tokens). Batching is the runtime's: a batch is B
consecutive JSONL lines, each truncated to T or padded with id 0 / label -100;
training cycles through the lines in file order; evaluation is the
token-weighted mean over every line once.

Subcommands (all print JSON on stdout):
  loss            --model M --data D --batch B --seq T [--adapter DIR] [--scale S] [--first-batch] [--float32]
                  [--precision fp32|f16|bf16] [--saturation]   (--saturation: where f16 stores saturate)
  grads           --model M --data D --batch B --seq T --adapter DIR [--scale S] --out F.safetensors
  random-adapter  --model M --rank R --targets q_proj,v_proj|all-linear --out DIR [--seed S] [--alpha A]
  train           --model M --data D --batch B --seq T --adapter DIR [--scale S] --steps N --lr X [--out DIR]
                  [--precision fp32|f16|bf16]
  generate        --model M --prompt-ids 1,2,3 --max-new-tokens N [--adapter DIR]   greedy, a full forward per token;
                  also the margin between the two best logits at each step (how safe a comparison of argmaxes is)
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

IGNORE_INDEX = -100
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEFT_PREFIX = "base_model.model.model."


# ----------------------------------------------------------------------------- model


def load_config(model_path, config_path=None):
    here = os.path.dirname(os.path.abspath(model_path))
    path = config_path or os.path.join(here, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            cfg = json.load(f)
        if config_path is None and "config" in cfg and "hidden_size" not in cfg:
            cfg = cfg["config"]
    elif os.path.exists(os.path.join(here, "reference.json")):  # test/fixtures/hf/*: the transformers config
        with open(os.path.join(here, "reference.json")) as f:
            cfg = json.load(f)["config"]
    else:
        raise SystemExit(f"error: no config.json beside {model_path}; pass --config")
    cfg.setdefault("model_type", "llama")
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("tie_word_embeddings", cfg["model_type"] == "gemma3_text")
    n = cfg["num_hidden_layers"]
    cfg.setdefault("layer_types", ["full_attention"] * n)
    # RoPE theta per layer: transformers 5 keeps it in rope_parameters (per
    # layer type for Gemma 3), older configs in rope_theta / rope_local_base_freq.
    rp = cfg.get("rope_parameters") or {}
    thetas = []
    for t in cfg["layer_types"]:
        p = rp.get(t, rp) if isinstance(rp.get(t), dict) else rp
        default = cfg.get("rope_local_base_freq", 10000.0) if t == "sliding_attention" else cfg.get("rope_theta", 10000.0)
        thetas.append(float(p.get("rope_theta", default)))
    cfg["_rope_thetas"] = thetas
    return cfg


def load_onnx_weights(model_path):
    """All initializers of the ONNX file (external data resolved) as numpy arrays, by name."""
    model = onnx.load(model_path, load_external_data=True)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def norm_names(cfg, i):
    """The RMSNorm weights of decoder layer i, in the order the layer uses them."""
    p = f"model.layers.{i}."
    names = [p + "input_layernorm.weight"]
    if cfg["model_type"] in ("qwen3", "gemma3_text"):
        names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
    names.append(p + "post_attention_layernorm.weight")
    if cfg["model_type"] == "gemma3_text":
        names += [p + "pre_feedforward_layernorm.weight", p + "post_feedforward_layernorm.weight"]
    return names


LINEAR_ORDER = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def weights(model_path, cfg):
    """{Hugging Face parameter name: array} of the decoder. Norm weights are the
    multipliers the graph applies: w, or for Gemma 3 (1 + w).

    Exports that keep the names (the bundled model) are read by name. The
    dynamo exports of test/fixtures/hf name their linear weights `val_N`
    (pre-transposed, [in, out]) and fold Gemma's 1 + w into `add_N`: there the
    weights are taken in the order the graph uses them, which is the order of
    the forward pass: the Gather's table is the embedding; per layer, the 7
    MatMuls with a 2-D initializer are q, k, v, o, gate, up, down (then the
    untied lm_head); the Muls by a 1-D initializer are the norms of
    norm_names(), then the final norm.
    """
    raw = load_onnx_weights(model_path)
    L = cfg["num_hidden_layers"]
    need = ["model.embed_tokens.weight", "model.norm.weight"]
    for i in range(L):
        need += norm_names(cfg, i) + [f"model.layers.{i}.{m}.weight" for m in LINEAR_ORDER]
    if not cfg["tie_word_embeddings"]:
        need.append("lm_head.weight")
    for prefix in ("", "m."):
        if all(prefix + n in raw for n in need):
            out = {n: raw[prefix + n] for n in need}
            if cfg["model_type"] == "gemma3_text":
                for n in need:
                    if "norm" in n:
                        out[n] = 1.0 + out[n]
            return out
    graph = onnx.load(model_path, load_external_data=False).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    table, linears, norms = None, [], []
    for node in graph.node:
        if node.op_type == "Gather" and table is None and len(shapes.get(node.input[0], [])) == 2:
            table = node.input[0]
        elif node.op_type == "MatMul" and len(shapes.get(node.input[1], [])) == 2:
            linears.append(node.input[1])
        elif node.op_type == "Mul":
            norms += [x for x in node.input if len(shapes.get(x, [])) == 1 and shapes[x][0] > 1]
    per_layer = len(norm_names(cfg, 0))
    want_linears = 7 * L + (0 if cfg["tie_word_embeddings"] else 1)
    if table is None or len(linears) != want_linears or len(norms) != per_layer * L + 1:
        raise SystemExit(f"error: {model_path}: cannot find the weights by their use "
                         f"({len(linears)} linear weights for {want_linears}, {len(norms)} norms for "
                         f"{per_layer * L + 1})")
    out = {"model.embed_tokens.weight": raw[table], "model.norm.weight": raw[norms[-1]]}
    for i in range(L):
        for k, n in enumerate(norm_names(cfg, i)):
            out[n] = raw[norms[per_layer * i + k]]
        for k, m in enumerate(LINEAR_ORDER):
            out[f"model.layers.{i}.{m}.weight"] = raw[linears[7 * i + k]].T
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = raw[linears[-1]].T
    return out


def module_shapes(cfg):
    """Structural linear names (layers.N.self_attn.q_proj ...) -> (out, in)."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    dims = {"q_proj": (nh * hd, H), "k_proj": (nkv * hd, H), "v_proj": (nkv * hd, H), "o_proj": (H, nh * hd),
            "gate_proj": (I, H), "up_proj": (I, H), "down_proj": (H, I)}
    out = {}
    for i in range(cfg["num_hidden_layers"]):
        for m, shp in dims.items():
            part = "self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            out[f"layers.{i}.{part}.{m}"] = shp
    return out


F16_MAX = 65504.0


class _Store(torch.autograd.Function):
    """A value written into a half buffer: forward rounds; backward rounds the
    gradient too when the plan's backward stores it in the half type."""

    @staticmethod
    def forward(ctx, x, prec, grad_half):
        ctx.prec, ctx.grad_half = prec, grad_half
        return prec._round(x)

    @staticmethod
    def backward(ctx, g):
        return (ctx.prec._round(g) if ctx.grad_half else g), None, None


class _GradStore(torch.autograd.Function):
    """Identity forward; the gradient is stored in the half type (bf16 backward)."""

    @staticmethod
    def forward(ctx, x, prec):
        ctx.prec = prec
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return ctx.prec._round(g), None


class _FactorProduct(torch.autograd.Function):
    """x @ w^T for a LoRA factor w under --lora-products half: the forward
    reads w rounded to the half type (w_fwd); the input's gradient reads
    w_bwd (rounded where the plan's backward product has a half gradient,
    else the f32 factor); w's gradient is the f32 product g^T x."""

    @staticmethod
    def forward(ctx, x, w, w_fwd, w_bwd):
        ctx.save_for_backward(x, w_bwd)
        return x @ w_fwd.T

    @staticmethod
    def backward(ctx, g):
        x, w_bwd = ctx.saved_tensors
        gw = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        return g @ w_bwd, gw, None, None


class Precision:
    """Where a plan of precision fp32 / f16 / bf16 stores values in the half type.

    store(x, site): the value a kernel writes into a half buffer: the float64
    value rounded to f32 (the kernel computes in f32), then to the half type,
    round to nearest even; f16 saturates at +-65504. Counts saturated elements
    per site when asked to.

    The backward: f16 plans keep every gradient in f32, so the gradient passes
    unchanged. bf16 plans store the gradients of half-stored values in bf16
    (matmul and elementwise results of bf16 operands): store(..., grad_half)
    rounds the incoming gradient where the plan does, and grad(x) rounds the
    gradient of a value that is f32 in the forward but whose gradient is not
    (the logits: cross_entropy_grad; a norm's normalised value times a bf16
    weight).
    """

    def __init__(self, name="fp32", lora_products="f32"):
        if name not in ("fp32", "f16", "bf16"):
            raise SystemExit(f"error: unknown precision {name} (fp32, f16, bf16)")
        self.name = name
        # --lora-products half: the LoRA factors enter their products rounded
        # to the half type (tessera-assign-precision lora-products=half).
        self.lora_half = lora_products == "half"
        self.half = {"f16": torch.float16, "bf16": torch.bfloat16}.get(name)
        self.saturated = None  # {site: [saturated elements, stored elements, largest |value|]} when counting

    def _round(self, x):
        y = x.detach().to(torch.float32)
        if self.half is torch.float16:
            y = y.clamp(-F16_MAX, F16_MAX)
        return y.to(self.half).to(x.dtype)

    def store(self, x, site="activation", grad_half=True):
        if self.half is None:
            return x
        if self.saturated is not None and self.half is torch.float16:
            a = x.detach().abs()
            rec = self.saturated.setdefault(site, [0, 0, 0.0])
            rec[0] += int((a > F16_MAX).sum())
            rec[1] += a.numel()
            rec[2] = max(rec[2], float(a.max()) if a.numel() else 0.0)
        return _Store.apply(x, self, grad_half and self.half is torch.bfloat16)

    def grad(self, x):
        return _GradStore.apply(x, self) if self.half is torch.bfloat16 else x

    def weight(self, w, site="weight"):
        return self.store(w.detach(), site, False) if self.half is not None else w

    def factor_product(self, x, w, grad_half):
        """x @ w^T for a LoRA factor w. With lora_half the plan casts w to the
        half type for every product of it with a half value: the forward's,
        and the backward's input-gradient product where that gradient is
        half (bf16, grad_half); f16's backward is f32 and keeps w."""
        if self.half is None or not self.lora_half:
            return x @ w.T
        r = self._round(w)
        bwd = r if (grad_half and self.half is torch.bfloat16) else w.detach()
        return _FactorProduct.apply(x, w, r, bwd)


class TinyLlama:
    """The decoder as plain tensor code; parameters are frozen tensors of `dtype`."""

    def __init__(self, weights, cfg, dtype=torch.float64, precision="fp32", fused_attention=True):
        self.cfg = cfg
        # tessera compile's default (tessera-fuse-attention): the probabilities
        # are never stored, so never rounded; q and k are read only by the
        # fused kernels (narrowed). False emulates --no-fused-attention.
        self.fused_attention = fused_attention
        self.dtype = dtype
        self.p = precision if isinstance(precision, Precision) else Precision(precision)
        self.arch = cfg["model_type"]
        self.gemma = self.arch == "gemma3_text"
        self.qk_norm = self.arch in ("qwen3", "gemma3_text")
        self.w = {}
        need = ["model.embed_tokens.weight", "model.norm.weight"]
        if not cfg["tie_word_embeddings"]:
            need.append("lm_head.weight")
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            need += norm_names(cfg, i)
            need += [p + f"self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
            need += [p + f"mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")]
        for n in need:
            if n not in weights:
                raise SystemExit(f"error: the model has no initializer {n}")
            w = torch.tensor(np.asarray(weights[n], dtype=np.float64), dtype=dtype)
            self.w[n] = self.p.weight(w, n)  # the plan keeps frozen weights in the half type
        if cfg["tie_word_embeddings"]:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        hd = cfg["head_dim"]
        self.inv_freq = [1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
                         for theta in cfg["_rope_thetas"]]
        self.embed_scale = float(np.float32(math.sqrt(cfg["hidden_size"]))) if self.gemma else 1.0
        self.attn_scale = cfg.get("query_pre_attn_scalar", hd) ** -0.5  # Gemma 3's

    def rms_norm(self, x, w):
        """RMSNorm with the multiplier w (Gemma's 1 + w is folded into w): statistics in f32."""
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg["rms_norm_eps"]))

    def narrowed_norm(self, x, w):
        """A norm whose output only matmuls read: narrowed to the half type.
        In the backward, (gradient x w) is a product of half values."""
        var = x.pow(2).mean(-1, keepdim=True)
        return self.p.store(w * self.p.grad(x * torch.rsqrt(var + self.cfg["rms_norm_eps"])), "norm")

    # LoRA dropout (PEFT's lora_dropout on the adapter's input) with Tessera's
    # counter-based mask, so that both draw the same masks: (rate, seed of the
    # current micro-batch) or None for no dropout (eval, rate 0).
    dropout = None

    def linear(self, x, module, lora, scale, grad_half=True):
        """x W^T (+ LoRA): a matmul result is stored in the half type, so are the
        LoRA path's products and the sum. x is already as stored. grad_half:
        whether the output's gradient is half too (bf16), i.e. whether its
        readers are half ops, not the f32 residual add or an f32 norm."""
        h = self.p.store
        w = self.w[f"model.{module}.weight"] if module != "lm_head" else self.w["lm_head.weight"]
        # The plan casts an f32 gradient to the half type before the frozen
        # weight's product (AssignPrecision: matmul operands are half).
        y = h(self.p.grad(x @ w.T), module, grad_half)
        if lora is not None and module in lora:
            a, b = lora[module]
            xd = x
            if self.dropout is not None:
                rate, seed = self.dropout
                keep = dropout_keep(seed, fnv1a32(module), x.shape, rate)
                xd = h(x * torch.tensor(keep, dtype=x.dtype) * float(np.float32(1.0 / (1.0 - rate))), module)
            t = h(h(self.p.factor_product(xd, a, True), module) * scale, module)
            y = h(y + h(self.p.factor_product(t, b, grad_half), module, grad_half), module, grad_half)
        return y

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def rope(self, x, cos, sin, stored_half):
        """x cos + rotate_half(x) sin, as Tessera's one rope kernel computes it:
        in f32, rounded once where it is stored. Its result feeds only the
        attention products, so it is stored in the half type whether x was a
        half projection or an f32 q/k norm (tessera-assign-precision)."""
        return self.p.store(x * cos + self.rotate_half(x) * sin)

    def forward(self, ids, lora=None, scale=1.0):
        cfg, h_ = self.cfg, self.p.store
        B, T = ids.shape
        nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        # The lookup is f32 (the residual stream starts here) of half-stored weights.
        h = self.w["model.embed_tokens.weight"][ids] * self.embed_scale
        pos = torch.arange(T, dtype=torch.float64)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for i in range(cfg["num_hidden_layers"]):
            p = f"layers.{i}."
            norm = lambda x, n: self.rms_norm(x, self.w[f"model.{p}{n}.weight"])  # noqa: E731
            narrowed = lambda x, n: self.narrowed_norm(x, self.w[f"model.{p}{n}.weight"])  # noqa: E731
            if self.p.half is None:
                freqs = torch.outer(pos, self.inv_freq[i])
            else:  # the plan's f32 RoPE tables: f32 inverse frequencies (the model's buffer) times positions
                freqs = torch.outer(pos, self.inv_freq[i].float().double()).float().double()
            emb = torch.cat([freqs, freqs], dim=-1)
            cos, sin = emb.cos(), emb.sin()  # [T, hd]
            if self.p.half is not None:
                cos, sin = cos.float(), sin.float()
            cos, sin = cos.to(self.dtype), sin.to(self.dtype)
            mask = causal
            if cfg["layer_types"][i] == "sliding_attention":
                idx = torch.arange(T)
                mask = causal & (idx[:, None] - idx[None, :] < cfg["sliding_window"])
            x = narrowed(h, "input_layernorm")
            # With q/k norms the projections' gradients come from f32 norm ops.
            gq = not self.qk_norm
            q = self.linear(x, p + "self_attn.q_proj", lora, scale, gq).view(B, T, nh, hd).transpose(1, 2)
            k = self.linear(x, p + "self_attn.k_proj", lora, scale, gq).view(B, T, nkv, hd).transpose(1, 2)
            v = self.linear(x, p + "self_attn.v_proj", lora, scale).view(B, T, nkv, hd).transpose(1, 2)
            if self.qk_norm:
                # Normalised heads are f32 (the f32 statistics promote) through
                # RoPE; the query is then read only by the scores matmul:
                # narrowed. The key too, unless a GQA broadcast reads it
                # (narrowing passes reshapes and transposes only).
                q = h_(self.rope(norm(q, "self_attn.q_norm"), cos, sin, False), "q")
                k = self.rope(norm(k, "self_attn.k_norm"), cos, sin, False)
                if nkv == nh or self.fused_attention:
                    k = h_(k, "k")
            else:
                q = self.rope(q, cos, sin, True)
                k = self.rope(k, cos, sin, True)
            k = k.repeat_interleave(nh // nkv, dim=1)  # head j uses kv head j // (nh / nkv)
            v = v.repeat_interleave(nh // nkv, dim=1)
            s = q @ k.transpose(-1, -2)  # scores, scale and mask stay f32
            s = s * self.attn_scale if self.gemma else s / math.sqrt(hd)
            s = s.masked_fill(~mask, float("-inf"))
            probs = torch.softmax(s, dim=-1)
            if not self.fused_attention:
                probs = h_(probs, "softmax")
            a = h_(probs @ v, "attention")
            a = a.transpose(1, 2).reshape(B, T, nh * hd)
            o = self.linear(a, p + "self_attn.o_proj", lora, scale, False)
            if self.gemma:
                o = norm(o, "post_attention_layernorm")  # added to the residual: f32
            h = h + o
            x = narrowed(h, "pre_feedforward_layernorm" if self.gemma else "post_attention_layernorm")
            g = self.linear(x, p + "mlp.gate_proj", lora, scale)
            u = self.linear(x, p + "mlp.up_proj", lora, scale)
            act = (torch.nn.functional.gelu(g, approximate="tanh") if self.gemma else torch.nn.functional.silu(g))
            d = self.linear(h_(h_(act, "activation") * u, "mlp"), p + "mlp.down_proj", lora, scale, False)
            if self.gemma:
                d = norm(d, "post_feedforward_layernorm")
            h = h + d
        x = self.narrowed_norm(h, self.w["model.norm.weight"])
        # The logits feed only the loss: f32; their gradient is bf16 in a bf16 plan.
        return self.p.grad(x @ self.w["lm_head.weight"].T)


_U32 = 0xFFFFFFFF


def fmix32(h):
    """MurmurHash3's 32-bit finaliser on uint64 arrays holding uint32 values."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _U32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _U32
    return h ^ (h >> 16)


def fnv1a32(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & _U32
    return h


def dropout_seed(seed, micro_batch):
    """The mask seed of micro-batch j (0-based over the run), as tessera train writes it."""
    h = np.array([((seed & _U32) * 0x9E3779B9 + micro_batch + 1) & _U32], dtype=np.uint64)
    return int(fmix32(h)[0]) & 0xFFFFFF


def dropout_keep(seed, site, shape, rate):
    """Keep mask of tessera.dropout: element i (row-major) is kept when
    fmix32(i * 0x9E3779B9 + fmix32(seed * 0x9E3779B9 ^ site)) >= floor(rate * 2^32)."""
    key = fmix32(np.array([((seed * 0x9E3779B9) & _U32) ^ site], dtype=np.uint64))[0]
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    h = fmix32((i * 0x9E3779B9 + key) & _U32)
    return (h >= np.uint64(math.floor(rate * 4294967296.0))).reshape(shape)


def causal_lm_loss_sum(logits, labels):
    """(sum of token losses, counted tokens) with Hugging Face's shift and ignore_index."""
    V = logits.shape[-1]
    lg = logits[:, :-1, :].reshape(-1, V)
    lb = labels[:, 1:].reshape(-1)
    n = int((lb != IGNORE_INDEX).sum())
    if n == 0:
        return logits.sum() * 0.0, 0
    return torch.nn.functional.cross_entropy(lg, lb, ignore_index=IGNORE_INDEX, reduction="sum"), n


# ----------------------------------------------------------------------------- data


def read_jsonl(path):
    """List of (input_ids, labels) per non-blank line, labels defaulting to input_ids."""
    lines = []
    with open(path) as f:
        for text in f:
            if not text.strip():
                continue
            d = json.loads(text)
            ids = [int(x) for x in d["input_ids"]]
            labels = d.get("labels")
            labels = ids if labels is None else [int(x) for x in labels]
            lines.append((ids, labels))
    if not lines:
        raise SystemExit(f"error: {path}: no examples")
    return lines


def make_batch(lines, indices, seq):
    """indices: line numbers or None (an all-ignored row). Returns (ids, labels) LongTensors [B, T]."""
    ids = torch.zeros(len(indices), seq, dtype=torch.long)
    labels = torch.full((len(indices), seq), IGNORE_INDEX, dtype=torch.long)
    for r, li in enumerate(indices):
        if li is None:
            continue
        x, y = lines[li]
        n = min(len(x), seq)
        ids[r, :n] = torch.tensor(x[:n])
        labels[r, :n] = torch.tensor(y[:n])
    return ids, labels


def train_batch(lines, step, batch, seq):
    """Batch of 0-based training step `step`: lines step*B .. step*B+B-1, cycling in file order."""
    return make_batch(lines, [(step * batch + r) % len(lines) for r in range(batch)], seq)


def eval_batches(lines, batch, seq):
    n = (len(lines) + batch - 1) // batch
    for i in range(n):
        idx = [i * batch + r for r in range(batch)]
        yield make_batch(lines, [j if j < len(lines) else None for j in idx], seq)


# ----------------------------------------------------------------------------- adapters


def peft_name(module, factor):
    return f"{PEFT_PREFIX}{module}.lora_{factor}.weight"


def read_adapter(adapter_dir):
    """Returns ({module: (A, B) numpy float64}, adapter_config dict)."""
    tensors, _ = safetensors_io.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    cfg = {}
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    mods = {}
    for name, a in tensors.items():
        if not name.startswith(PEFT_PREFIX) or not name.endswith(".weight"):
            raise SystemExit(f"error: {adapter_dir}: unexpected tensor {name}")
        core = name[len(PEFT_PREFIX):-len(".weight")]
        module, factor = core.rsplit(".", 1)
        if factor not in ("lora_A", "lora_B"):
            raise SystemExit(f"error: {adapter_dir}: unexpected tensor {name}")
        mods.setdefault(module, {})[factor] = a.astype(np.float64)
    out = {}
    for m, f in mods.items():
        if "lora_A" not in f or "lora_B" not in f:
            raise SystemExit(f"error: {adapter_dir}: {m} lacks lora_A or lora_B")
        out[m] = (f["lora_A"], f["lora_B"])
    return out, cfg


def adapter_scale(cfg):
    r, alpha = cfg.get("r"), cfg.get("lora_alpha")
    if r is None or alpha is None:
        raise SystemExit("error: adapter_config.json lacks r / lora_alpha; pass --scale")
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def write_adapter(adapter_dir, adapters, rank, alpha, targets, rslora=False):
    os.makedirs(adapter_dir, exist_ok=True)
    tensors = {}
    for m, (a, b) in adapters.items():
        tensors[peft_name(m, "A")] = np.asarray(a, dtype=np.float32)
        tensors[peft_name(m, "B")] = np.asarray(b, dtype=np.float32)
    safetensors_io.save(os.path.join(adapter_dir, "adapter_model.safetensors"), tensors, {"format": "pt"})
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
           "target_modules": targets, "lora_dropout": 0.0, "bias": "none", "use_rslora": rslora,
           "fan_in_fan_out": False, "inference_mode": True, "base_model_name_or_path": None}
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def expand_targets(targets):
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if names == ["all-linear"]:
        return list(ALL_LINEAR)
    for n in names:
        if n not in ALL_LINEAR:
            raise SystemExit(f"error: unknown LoRA target {n}")
    return names


def random_adapter(cfg, rank, targets, seed, b_std=0.02):
    """Nonzero A ~ U(-1/sqrt(in), 1/sqrt(in)) and B ~ N(0, b_std) for every targeted module."""
    rng = np.random.default_rng(seed)
    out = {}
    for m, (o, i) in module_shapes(cfg).items():
        if m.rsplit(".", 1)[1] in targets:
            a = rng.uniform(-1.0, 1.0, size=(rank, i)) / math.sqrt(i)
            b = rng.normal(0.0, b_std, size=(o, rank))
            out[m] = (a.astype(np.float32), b.astype(np.float32))
    return out


def lora_params(adapters, dtype=torch.float64, requires_grad=False):
    out = {}
    for m, (a, b) in adapters.items():
        ta = torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype).requires_grad_(requires_grad)
        tb = torch.tensor(np.asarray(b, dtype=np.float64), dtype=dtype).requires_grad_(requires_grad)
        out[m] = (ta, tb)
    return out


# ----------------------------------------------------------------------------- operations


def eval_loss(model, lines, batch, seq, lora=None, scale=1.0):
    """Token-weighted mean loss over every line once (the runtime's eval)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in eval_batches(lines, batch, seq):
            s, n = causal_lm_loss_sum(model.forward(ids, lora, scale), labels)
            total += float(s)
            count += n
    return (total / count if count else float("nan")), count


def batch_loss(model, ids, labels, lora=None, scale=1.0):
    s, n = causal_lm_loss_sum(model.forward(ids, lora, scale), labels)
    return s / max(n, 1), n


def first_batch_grads(model, lines, batch, seq, lora, scale):
    ids, labels = train_batch(lines, 0, batch, seq)
    loss, n = batch_loss(model, ids, labels, lora, scale)
    params = [p for m in sorted(lora) for p in lora[m]]
    grads = torch.autograd.grad(loss, params)
    out = {}
    k = 0
    for m in sorted(lora):
        out[f"{m}.lora_A.grad"] = grads[k].detach().numpy()
        out[f"{m}.lora_B.grad"] = grads[k + 1].detach().numpy()
        k += 2
    return float(loss), n, out


def lr_at(step, lr, steps, schedule="constant", warmup=0):
    """transformers' schedules with warmup, 0-based optimizer step (docs/training.md)."""
    if step < warmup:
        return lr * step / max(1, warmup)
    decay = max(1, steps - warmup)
    if schedule == "constant":
        return lr
    if schedule == "linear":
        return lr * max(0.0, (steps - step) / decay)
    if schedule == "cosine":
        return lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / decay)))
    raise ValueError(schedule)


def train(model, lines, batch, seq, lora, scale, steps, lr, weight_decay=0.0, log=None, schedule="constant",
          warmup=0, max_grad_norm=0.0, grad_accum=1, betas=(0.9, 0.999), eps=1e-8, lora_dropout=0.0,
          dropout_run_seed=0):
    """torch.optim.AdamW over `steps` optimizer steps of `grad_accum` micro-batches each.

    Micro-batch j (0-based over the run) is lines j*B .. j*B+B-1, cycling. The
    gradient is sum(grad(loss_k)) / K and the logged loss the mean of the
    micro-batch losses, as a Hugging Face loop without num_items_in_batch. A
    micro-batch without counted tokens contributes neither loss nor gradient,
    and a step of such micro-batches only is skipped (no update), as tessera.
    """
    params = [p for m in sorted(lora) for p in lora[m]]
    opt = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    losses = []
    for step in range(steps):
        step_lr = lr_at(step, lr, steps, schedule, warmup)
        for group in opt.param_groups:
            group["lr"] = step_lr
        opt.zero_grad(set_to_none=False)
        total, counted = 0.0, 0
        for k in range(grad_accum):
            ids, labels = train_batch(lines, step * grad_accum + k, batch, seq)
            if lora_dropout > 0:
                model.dropout = (lora_dropout, dropout_seed(dropout_run_seed, step * grad_accum + k))
            loss, n = batch_loss(model, ids, labels, lora, scale)
            model.dropout = None
            if n == 0:
                continue
            (loss / grad_accum).backward()
            total += float(loss)
            counted += 1
        entry = {"step": step + 1, "lr": step_lr}
        if counted:
            if max_grad_norm > 0:
                entry["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
            opt.step()
            entry["loss"] = total / counted
        else:
            entry["loss"] = None
        losses.append(entry["loss"])
        if log:
            log(entry)
    return losses


# ----------------------------------------------------------------------------- CLI


def _load(args, dtype=torch.float64):
    cfg = load_config(args.model, getattr(args, "config", None))
    return TinyLlama(weights(args.model, cfg), cfg, dtype, getattr(args, "precision", "fp32"),
                     not getattr(args, "decomposed_attention", False)), cfg


def _adapter(args, dtype=torch.float64, requires_grad=False):
    if not getattr(args, "adapter", None):
        return None, 1.0
    adapters, acfg = read_adapter(args.adapter)
    scale = args.scale if args.scale is not None else adapter_scale(acfg)
    return lora_params(adapters, dtype, requires_grad), scale


def cmd_loss(args):
    dtype = torch.float32 if args.float32 else torch.float64
    model, _ = _load(args, dtype)
    if args.saturation:
        model.p.saturated = {}
    lines = read_jsonl(args.data)
    lora, scale = _adapter(args, dtype)
    if args.first_batch:
        ids, labels = train_batch(lines, 0, args.batch, args.seq)
        with torch.no_grad():
            loss, n = batch_loss(model, ids, labels, lora, scale)
        loss = float(loss)
    else:
        loss, n = eval_loss(model, lines, args.batch, args.seq, lora, scale)
    out = {"loss": loss, "tokens": n}
    if args.saturation:  # {site: [elements beyond +-65504, elements stored, largest |value|]}
        out["saturated"] = model.p.saturated
    print(json.dumps(out))


def cmd_grads(args):
    model, _ = _load(args)
    lines = read_jsonl(args.data)
    lora, scale = _adapter(args, requires_grad=True)
    loss, n, grads = first_batch_grads(model, lines, args.batch, args.seq, lora, scale)
    safetensors_io.save(args.out, {k: v.astype(np.float32) for k, v in grads.items()},
                        {"loss": repr(loss), "tokens": str(n), "scale": repr(scale)})
    print(json.dumps({"loss": loss, "tokens": n, "tensors": len(grads)}))


def cmd_random_adapter(args):
    cfg = load_config(args.model, args.config)
    targets = expand_targets(args.targets)
    adapters = random_adapter(cfg, args.rank, targets, args.seed, args.b_std)
    alpha = args.alpha if args.alpha is not None else float(2 * args.rank)
    write_adapter(args.out, adapters, args.rank, alpha, targets)
    print(json.dumps({"out": args.out, "modules": len(adapters)}))


def cmd_train(args):
    dtype = torch.float32 if args.float32 else torch.float64
    model, _ = _load(args, dtype)
    lines = read_jsonl(args.data)
    lora, scale = _adapter(args, dtype, requires_grad=True)
    train(model, lines, args.batch, args.seq, lora, scale, args.steps, args.lr, args.weight_decay,
          log=lambda d: print(json.dumps(d), flush=True), schedule=args.lr_schedule, warmup=args.warmup_steps,
          max_grad_norm=args.max_grad_norm, grad_accum=args.grad_accum, betas=(args.beta1, args.beta2),
          eps=args.eps, lora_dropout=args.lora_dropout, dropout_run_seed=args.dropout_seed)
    if args.out:
        _, acfg = read_adapter(args.adapter)
        arrays = {m: (a.detach().numpy(), b.detach().numpy()) for m, (a, b) in lora.items()}
        write_adapter(args.out, arrays, acfg.get("r"), acfg.get("lora_alpha"), acfg.get("target_modules"),
                      bool(acfg.get("use_rslora")))


def cmd_generate(args):
    model, _ = _load(args)
    lora, scale = _adapter(args)
    ids = [int(x) for x in args.prompt_ids.split(",")]
    out, margins = [], []
    with torch.no_grad():
        for _ in range(args.max_new_tokens):
            logits = model.forward(torch.tensor([ids + out]), lora, scale)[0, -1]
            top = torch.topk(logits, 2)
            out.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
    print(json.dumps({"tokens": out, "margins": margins}))


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch float64 reference of Tessera's tiny Llama + LoRA")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, data=True):
        p.add_argument("--model", required=True)
        p.add_argument("--config", help="config.json (default: beside the model)")
        if data:
            p.add_argument("--data", required=True)
            p.add_argument("--batch", type=int, required=True)
            p.add_argument("--seq", type=int, required=True)

    p = sub.add_parser("loss", help="eval loss (token-weighted mean over every line once)")
    common(p)
    p.add_argument("--adapter")
    p.add_argument("--scale", type=float, help="LoRA scale (default: lora_alpha / r of the adapter)")
    p.add_argument("--first-batch", action="store_true", help="loss of the first training batch only")
    p.add_argument("--float32", action="store_true", help="compute in float32 instead of float64")
    p.add_argument("--precision", default="fp32", choices=["fp32", "f16", "bf16"],
                   help="emulate a plan of this storage precision")
    p.add_argument("--decomposed-attention", action="store_true",
                   help="emulate a plan compiled with --no-fused-attention (probabilities stored)")
    p.add_argument("--saturation", action="store_true",
                   help="also report, per kind of stored value, how many f16 stores saturate")
    p.set_defaults(fn=cmd_loss)

    p = sub.add_parser("grads", help="autograd gradients of the first batch's loss w.r.t. every LoRA factor")
    common(p)
    p.add_argument("--adapter", required=True)
    p.add_argument("--scale", type=float)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_grads)

    p = sub.add_parser("random-adapter", help="write a PEFT adapter with nonzero random A and B")
    common(p, data=False)
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--targets", required=True, help="q_proj,v_proj,... or all-linear")
    p.add_argument("--alpha", type=float, help="lora_alpha in adapter_config.json (default: 2 * rank)")
    p.add_argument("--b-std", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_random_adapter)

    p = sub.add_parser("train", help="AdamW reference training; one JSON line per step")
    common(p)
    p.add_argument("--adapter", required=True, help="initial adapter")
    p.add_argument("--scale", type=float)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "linear", "cosine"])
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-grad-norm", type=float, default=0.0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--float32", action="store_true", help="train in float32 (default float64)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "f16", "bf16"],
                   help="emulate a plan of this storage precision")
    p.add_argument("--decomposed-attention", action="store_true",
                   help="emulate a plan compiled with --no-fused-attention (probabilities stored)")
    p.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout with tessera's masks")
    p.add_argument("--dropout-seed", type=int, default=0, help="the run seed tessera train used (plan --seed)")
    p.add_argument("--out", help="write the trained adapter here")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("generate", help="greedy generation, one full forward per new token")
    common(p, data=False)
    p.add_argument("--adapter")
    p.add_argument("--scale", type=float)
    p.add_argument("--prompt-ids", required=True)
    p.add_argument("--max-new-tokens", type=int, required=True)
    p.set_defaults(fn=cmd_generate)

    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
