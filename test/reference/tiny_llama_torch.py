#!/usr/bin/python3
"""Independent PyTorch (float64) reference of Tessera's Llama-architecture decoder with LoRA.

It reads the parameter tensors from the ONNX file by name (onnx.numpy_helper,
external data too) but never executes the ONNX graph: the architecture is
written out here from config.json (Hugging Face keys, found beside the model
unless --config is given): RMSNorm, RoPE (rotate_half), GQA attention with a
causal mask, SwiGLU MLP, untied lm_head.

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
  grads           --model M --data D --batch B --seq T --adapter DIR [--scale S] --out F.safetensors
  random-adapter  --model M --rank R --targets q_proj,v_proj|all-linear --out DIR [--seed S] [--alpha A]
  train           --model M --data D --batch B --seq T --adapter DIR [--scale S] --steps N --lr X [--out DIR]
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
    path = config_path or os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: no config.json beside {model_path}; pass --config")
    with open(path) as f:
        cfg = json.load(f)
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("tie_word_embeddings", False)
    return cfg


def load_onnx_weights(model_path):
    """All initializers of the ONNX file (external data resolved) as numpy arrays, by name."""
    model = onnx.load(model_path, load_external_data=True)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


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


class TinyLlama:
    """The decoder as plain tensor code; parameters are frozen tensors of `dtype`."""

    def __init__(self, weights, cfg, dtype=torch.float64):
        self.cfg = cfg
        self.dtype = dtype
        self.w = {}
        need = ["model.embed_tokens.weight", "model.norm.weight"]
        if not cfg["tie_word_embeddings"]:
            need.append("lm_head.weight")
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            need += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
            need += [p + f"self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
            need += [p + f"mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")]
        for n in need:
            if n not in weights:
                raise SystemExit(f"error: the model has no initializer {n}")
            self.w[n] = torch.tensor(np.asarray(weights[n], dtype=np.float64), dtype=dtype)
        if cfg["tie_word_embeddings"]:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        hd = cfg["head_dim"]
        self.inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    def rms_norm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg["rms_norm_eps"]))

    # LoRA dropout (PEFT's lora_dropout on the adapter's input) with Tessera's
    # counter-based mask, so that both draw the same masks: (rate, seed of the
    # current micro-batch) or None for no dropout (eval, rate 0).
    dropout = None

    def linear(self, x, module, lora, scale):
        w = self.w[f"model.{module}.weight"] if module != "lm_head" else self.w["lm_head.weight"]
        y = x @ w.T
        if lora is not None and module in lora:
            a, b = lora[module]
            xd = x
            if self.dropout is not None:
                rate, seed = self.dropout
                keep = dropout_keep(seed, fnv1a32(module), x.shape, rate)
                xd = x * torch.tensor(keep, dtype=x.dtype) * float(np.float32(1.0 / (1.0 - rate)))
            y = y + scale * ((xd @ a.T) @ b.T)
        return y

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def forward(self, ids, lora=None, scale=1.0):
        cfg = self.cfg
        B, T = ids.shape
        nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        h = self.w["model.embed_tokens.weight"][ids]
        pos = torch.arange(T, dtype=torch.float64)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)  # [T, hd]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        for i in range(cfg["num_hidden_layers"]):
            p = f"layers.{i}."
            x = self.rms_norm(h, self.w[f"model.{p}input_layernorm.weight"])
            q = self.linear(x, p + "self_attn.q_proj", lora, scale).view(B, T, nh, hd).transpose(1, 2)
            k = self.linear(x, p + "self_attn.k_proj", lora, scale).view(B, T, nkv, hd).transpose(1, 2)
            v = self.linear(x, p + "self_attn.v_proj", lora, scale).view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(nh // nkv, dim=1)  # head j uses kv head j // (nh / nkv)
            v = v.repeat_interleave(nh // nkv, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            s = s.masked_fill(~causal, float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
            a = a.transpose(1, 2).reshape(B, T, nh * hd)
            h = h + self.linear(a, p + "self_attn.o_proj", lora, scale)
            x = self.rms_norm(h, self.w[f"model.{p}post_attention_layernorm.weight"])
            g = self.linear(x, p + "mlp.gate_proj", lora, scale)
            u = self.linear(x, p + "mlp.up_proj", lora, scale)
            h = h + self.linear(torch.nn.functional.silu(g) * u, p + "mlp.down_proj", lora, scale)
        x = self.rms_norm(h, self.w["model.norm.weight"])
        return self.linear(x, "lm_head", None, scale)


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
    return TinyLlama(load_onnx_weights(args.model), cfg, dtype), cfg


def _adapter(args, dtype=torch.float64, requires_grad=False):
    if not getattr(args, "adapter", None):
        return None, 1.0
    adapters, acfg = read_adapter(args.adapter)
    scale = args.scale if args.scale is not None else adapter_scale(acfg)
    return lora_params(adapters, dtype, requires_grad), scale


def cmd_loss(args):
    dtype = torch.float32 if args.float32 else torch.float64
    model, _ = _load(args, dtype)
    lines = read_jsonl(args.data)
    lora, scale = _adapter(args, dtype)
    if args.first_batch:
        ids, labels = train_batch(lines, 0, args.batch, args.seq)
        with torch.no_grad():
            loss, n = batch_loss(model, ids, labels, lora, scale)
        loss = float(loss)
    else:
        loss, n = eval_loss(model, lines, args.batch, args.seq, lora, scale)
    print(json.dumps({"loss": loss, "tokens": n}))


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
