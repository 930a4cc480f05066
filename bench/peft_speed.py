#!/usr/bin/python3
"""PyTorch + PEFT LoRA training speed and memory on the GPU machine, the peer every Tessera figure is measured
against in the same device call (docs/benchmarks.md).

  peft_speed.py --model qwen06b|llama1b --batch 8 --seq 512 --mode eager-bf16|compile-bf16|eager-fp32 \
      [--steps 30] [--warmup 5] [--json out.json] [--save DIR]

The model is the random one of test/fixtures/hf/export_hf.py (same seed, so the same weights as the exported
graph's), LoRA r=16 alpha=16 on all linear layers, AdamW lr 1e-4, labels = inputs, random token data.
tokens/s counts batch*seq per optimizer step over the timed steps (after warm-up and, for torch.compile, after
compilation); peak memory is torch.cuda.max_memory_allocated over the timed steps.
With --save DIR it writes DIR/init (the initial adapter, PEFT format), DIR/data.jsonl (the batches in order) and
DIR/run.json (per-step losses), so that Tessera can train from the same adapter on the same data.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "hf"))
import export_hf  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen06b", choices=["qwen06b", "llama1b"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--mode", default="compile-bf16", choices=["eager-bf16", "compile-bf16", "eager-fp32"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--json")
    ap.add_argument("--save")
    ap.add_argument("--wait-for", help="after the warm-up, wait until this file exists before the timed steps (so a "
                    "torch.compile warm-up can overlap other work in the same device call, the timed steps not)")
    a = ap.parse_args()
    import peft
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = torch.float32 if a.mode == "eager-fp32" else torch.bfloat16
    model = export_hf.make_big(a.model).to("cuda", dtype)
    cfg = peft.LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=ALL_LINEAR, bias="none")
    torch.manual_seed(42)
    pm = peft.get_peft_model(model, cfg)
    if a.save:
        pm.save_pretrained(os.path.join(a.save, "init"))
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    vocab = pm.config.vocab_size
    g = torch.Generator().manual_seed(1234)
    total = a.warmup + a.steps
    batches = [torch.randint(0, vocab, (a.batch, a.seq), generator=g) for _ in range(total)]
    if a.save:
        with open(os.path.join(a.save, "data.jsonl"), "w") as f:
            for b in batches:
                for row in b.tolist():
                    f.write(json.dumps({"input_ids": row}) + "\n")

    def step(x):
        loss = pm(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    fn = torch.compile(step) if a.mode == "compile-bf16" else step
    pm.train()
    losses = []
    t_compile = time.perf_counter()
    for i in range(a.warmup):
        losses.append(float(fn(batches[i].to("cuda"))))
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t_compile
    if a.wait_for:
        t_wait = time.perf_counter()
        while not os.path.exists(a.wait_for) and time.perf_counter() - t_wait < 900:
            time.sleep(0.2)
        torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(a.warmup, total):
        losses.append(float(fn(batches[i].to("cuda"))))
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    res = dict(model=a.model, mode=a.mode, batch=a.batch, seq=a.seq, steps=a.steps,
               tokens_per_s=a.batch * a.seq * a.steps / dt, ms_per_step=1000 * dt / a.steps,
               peak_gib=torch.cuda.max_memory_allocated() / 2**30, warmup_s=warm_s, losses=losses,
               torch=torch.__version__, peft=peft.__version__, device=torch.cuda.get_device_name())
    print(f"PEFT {a.model} {a.mode} {a.batch}x{a.seq}: {res['tokens_per_s']:,.0f} tokens/s, "
          f"{res['ms_per_step']:.1f} ms/step, peak {res['peak_gib']:.2f} GiB (warm-up {warm_s:.0f} s)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.save:
        with open(os.path.join(a.save, "run.json"), "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
