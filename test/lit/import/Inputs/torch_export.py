#!/usr/bin/python3
"""Exports a small Llama-style torch.nn.Module written the way Hugging Face
writes it (nn.Linear, RMSNorm with pow/mean/rsqrt, rotary cos/sin from an
inv_freq buffer, causal mask from torch.full/triu, repeat_kv via
expand/reshape, SiLU) with torch.onnx.export (TorchScript exporter, dynamic
batch/seq axes), and writes reference logits from torch itself.

    torch_export.py OUT.onnx --opset N [--batch B --seq T] [--fold]

Writes OUT.onnx and OUT.onnx.npz (`ids`, `logits`) for tessera_eval.py.
--fold exports with do_constant_folding=True (weights are then pre-transposed
into anonymous initializers); the default keeps the parameter names.
"""
import argparse
import math
import sys

import numpy as np
import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, h, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(h))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class Rotary(nn.Module):
    def __init__(self, dim, base=10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, seq_len):
        t = torch.arange(seq_len, device=x.device, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None, :, :], emb.sin()[None, None, :, :]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, h, nh, nkv):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, h // nh
        self.q_proj = nn.Linear(h, nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(nh * self.hd, h, bias=False)
        self.rotary_emb = Rotary(self.hd)

    def forward(self, x, mask):
        bsz, q_len, _ = x.size()
        q = self.q_proj(x).view(bsz, q_len, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(bsz, q_len, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(bsz, q_len, self.nkv, self.hd).transpose(1, 2)
        cos, sin = self.rotary_emb(v, seq_len=q_len)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k[:, :, None, :, :].expand(bsz, self.nkv, rep, q_len, self.hd).reshape(bsz, self.nh, q_len, self.hd)
        v = v[:, :, None, :, :].expand(bsz, self.nkv, rep, q_len, self.hd).reshape(bsz, self.nh, q_len, self.hd)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd) + mask
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, v).transpose(1, 2).reshape(bsz, q_len, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, h, nh, nkv, i):
        super().__init__()
        self.self_attn = Attention(h, nh, nkv)
        self.mlp = MLP(h, i)
        self.input_layernorm = RMSNorm(h)
        self.post_attention_layernorm = RMSNorm(h)

    def forward(self, x, mask):
        x = x + self.self_attn(self.input_layernorm(x), mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, v=64, h=32, nh=4, nkv=2, i=48, layers=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(v, h)
        self.layers = nn.ModuleList([Layer(h, nh, nkv, i) for _ in range(layers)])
        self.norm = RMSNorm(h)


class ForCausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Model()
        self.lm_head = nn.Linear(32, 64, bias=False)

    def forward(self, input_ids):
        bsz, seq = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        mask = torch.full((seq, seq), torch.finfo(torch.float32).min)
        mask = torch.triu(mask, diagonal=1)[None, None, :, :].expand(bsz, 1, seq, seq)
        for layer in self.model.layers:
            x = layer(x, mask)
        return self.lm_head(self.model.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--fold", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = ForCausalLM().eval()
    example = torch.randint(0, 64, (1, 5))
    torch.onnx.export(m, (example,), a.out, input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
                      opset_version=a.opset, do_constant_folding=a.fold)
    ids = torch.from_numpy(np.random.default_rng(7).integers(0, 64, size=(a.batch, a.seq)))
    with torch.no_grad():
        logits = m(ids).numpy()
    np.savez(a.out + ".npz", ids=ids.numpy(), logits=logits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
