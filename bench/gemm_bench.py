#!/usr/bin/python3
"""The training GEMMs of a decoder, as a kernel benchmark (docs/benchmarks.md, "Matmuls").

  gemm_bench.py mlir  --shape qwen06b --dtype bf16 --out gemm.mlir
      one @loss whose matmuls are every distinct training GEMM of the shape at
      batch 8 x 512 (forward, activation gradients, attention, LM-head chunks);
      compile it with tessera-opt (select configs, lower, SPIR-V) and
      tessera-translate --mlir-to-plan, time it with tessera-kbench --program eval.
  gemm_bench.py torch --shape qwen06b --dtype bf16 --json out.json
      the same products with torch.matmul on the GPU (CUDA events, median of 50).
  gemm_bench.py table --kbench kbench.txt --torch out.json
      our time / torch's per shape.
"""
import argparse
import json
import sys

SHAPES = {
    # tokens, hidden, intermediate, heads, kv heads, head dim, seq, vocab, LM-head chunk rows
    "qwen06b": dict(T=4096, H=1024, I=3072, nh=16, nkv=8, hd=128, S=512, V=151936, chunk=1024),
    "llama1b": dict(T=4096, H=2048, I=8192, nh=32, nkv=8, hd=64, S=512, V=128256, chunk=1024),
}


def gemms(s, chunk=None):
    """(name, batch, M, N, K, transpose_lhs, transpose_rhs); `chunk`: the LM-head rows (a plan's
    --loss-chunk-tokens), the shape's default when None."""
    chunk = chunk or s["chunk"]
    T, H, I, nh, nkv, hd, S = s["T"], s["H"], s["I"], s["nh"], s["nkv"], s["hd"], s["S"]
    q, kv = nh * hd, nkv * hd
    bh = T // S * nh
    out = [
        ("fwd q_proj", 1, T, q, H, False, True),
        ("fwd k/v_proj", 1, T, kv, H, False, True),
        ("fwd o_proj", 1, T, H, q, False, True),
        ("fwd gate/up_proj", 1, T, I, H, False, True),
        ("fwd down_proj", 1, T, H, I, False, True),
        ("dX q_proj", 1, T, H, q, False, False),
        ("dX k/v_proj", 1, T, H, kv, False, False),
        ("dX o_proj", 1, T, q, H, False, False),
        ("dX gate/up_proj", 1, T, H, I, False, False),
        ("dX down_proj", 1, T, I, H, False, False),
        ("attn scores QK^T", bh, S, S, hd, False, True),
        ("attn PV", bh, S, hd, S, False, False),
        ("attn dP = dO V^T", bh, S, S, hd, False, True),
        ("attn dV = P^T dO", bh, S, hd, S, True, False),
        ("attn dQ = dS K", bh, S, hd, S, False, False),
        ("lm_head chunk", 1, chunk, s["V"], H, False, True),
        ("dX lm_head chunk", 1, chunk, H, s["V"], False, False),
    ]
    return out


def shape_of(batch, rows, cols):
    return ([batch] if batch > 1 else []) + [rows, cols]


def ttype(shape, dtype):
    return "tensor<" + "x".join(str(d) for d in shape) + "x" + dtype + ">"


def make_mlir(args):
    s = SHAPES[args.shape]
    lines = ["module {", "  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {"]
    acc = None
    for i, (name, b, M, N, K, tl, tr) in enumerate(gemms(s, args.chunk)):
        a = shape_of(b, K, M) if tl else shape_of(b, M, K)
        w = shape_of(b, N, K) if tr else shape_of(b, K, N)
        c = shape_of(b, M, N)
        lines.append(f'    %a{i} = tessera.param frozen "a{i}" : {ttype(a, args.dtype)}')
        lines.append(f'    %b{i} = tessera.param frozen "b{i}" : {ttype(w, args.dtype)}')
        attrs = []
        if tl:
            attrs.append("transpose_lhs = true")
        if tr:
            attrs.append("transpose_rhs = true")
        attr = (" {" + ", ".join(attrs) + "}") if attrs else ""
        lines.append(f'    %c{i} = tessera.matmul %a{i}, %b{i}{attr} : '
                     f'({ttype(a, args.dtype)}, {ttype(w, args.dtype)}) -> {ttype(c, args.dtype)} loc("gemm{i}")')
        axes = ", ".join(str(d) for d in range(len(c)))
        lines.append(f"    %s{i} = tessera.reduce sum %c{i} {{axes = array<i64: {axes}>}} : "
                     f"{ttype(c, args.dtype)} -> tensor<f32>")
        if acc is None:
            acc = f"%s{i}"
        else:
            lines.append(f"    %t{i} = tessera.binary add {acc}, %s{i} : (tensor<f32>, tensor<f32>) -> tensor<f32>")
            acc = f"%t{i}"
    lines += [f"    return {acc} : tensor<f32>", "  }", "}"]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def run_torch(args):
    import torch
    s = SHAPES[args.shape]
    dt = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    torch.backends.cuda.matmul.allow_tf32 = False
    res = []
    for name, b, M, N, K, tl, tr in gemms(s, args.chunk):
        a = torch.randn(*shape_of(b, K, M) if tl else shape_of(b, M, K), device="cuda", dtype=dt)
        w = torch.randn(*shape_of(b, N, K) if tr else shape_of(b, K, N), device="cuda", dtype=dt)
        f = lambda: torch.matmul(a.transpose(-1, -2) if tl else a, w.transpose(-1, -2) if tr else w)
        for _ in range(5):
            f()
        times = []
        for _ in range(50):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            f()
            e1.record()
            torch.cuda.synchronize()
            times.append(e0.elapsed_time(e1) * 1000.0)
        times.sort()
        us = times[len(times) // 2]
        flops = 2.0 * b * M * N * K
        res.append(dict(name=name, batch=b, M=M, N=N, K=K, us=us, tflops=flops / us / 1e6))
        print(f"{name:22s} {b:4d}x{M}x{N}x{K}: {us:9.1f} us {flops / us / 1e6:7.1f} TFLOP/s", flush=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)


def read_kbench(path):
    # tessera-kbench --names: "<result buffer> <us/dispatch> <config>" per dispatch; a split-K
    # product has two (partials, sum), both named after the gemm.
    ours = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("gemm"):
            i = int(parts[0][4:].split(".")[0])
            ours[i] = ours.get(i, 0.0) + float(parts[1])
    return ours


def table(args):
    """One kbench file: its times per GEMM. Several: the best per GEMM and which plan gave it."""
    ref = json.load(open(args.torch))
    runs = {path.split("kbench-")[-1].rsplit(".", 1)[0]: read_kbench(path) for path in args.kbench}
    print(f"{'GEMM':22s} {'shape':>22s} {'torch us':>9s} {'ours us':>9s} {'torch/ours':>10s} {'TFLOP/s':>8s}  best of")
    total_t = total_o = 0.0
    for i, r in enumerate(ref):
        shape = f"{r['batch']}x{r['M']}x{r['N']}x{r['K']}"
        cands = [(o[i], name) for name, o in runs.items() if i in o]
        if not cands:
            print(f"{r['name']:22s} {shape:>22s} {r['us']:9.1f} {'-':>9s}")
            continue
        us, name = min(cands)
        total_t += r["us"]
        total_o += us
        tf = 2.0 * r["batch"] * r["M"] * r["N"] * r["K"] / us / 1e6
        print(f"{r['name']:22s} {shape:>22s} {r['us']:9.1f} {us:9.1f} {r['us'] / us:10.2f} {tf:8.1f}  {name}")
    if total_o:
        print(f"{'all':22s} {'':>22s} {total_t:9.1f} {total_o:9.1f} {total_t / total_o:10.2f}")
    if args.matrix and len(runs) > 1:  # every plan's time per GEMM, to choose per-shape variants
        names = sorted(runs)
        print(f"\n{'us per GEMM':22s} " + " ".join(f"{n[-18:]:>18s}" for n in names))
        for i, r in enumerate(ref):
            print(f"{r['name']:22s} " + " ".join(f"{runs[n].get(i, float('nan')):18.1f}" for n in names))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mlir")
    m.add_argument("--shape", default="qwen06b", choices=SHAPES)
    m.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    m.add_argument("--out", required=True)
    m.add_argument("--chunk", type=int, help="LM-head rows (a plan's --loss-chunk-tokens)")
    t = sub.add_parser("torch")
    t.add_argument("--shape", default="qwen06b", choices=SHAPES)
    t.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    t.add_argument("--json", required=True)
    t.add_argument("--chunk", type=int, help="LM-head rows (a plan's --loss-chunk-tokens)")
    tb = sub.add_parser("table")
    tb.add_argument("--kbench", required=True, nargs="+")
    tb.add_argument("--torch", required=True)
    tb.add_argument("--matrix", action="store_true", help="also every plan's time per GEMM")
    a = p.parse_args()
    {"mlir": make_mlir, "torch": run_torch, "table": table}[a.cmd](a)


if __name__ == "__main__":
    main()
