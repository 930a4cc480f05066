#!/usr/bin/python3
"""The cost of --robust-access (robustBufferAccess2) on the first Vulkan device.

The bundled tiny model at 4 x 64, all-linear r8; ROUNDS alternating pairs of
runs of STEPS and of 5 steps, with and without the flag. Reported per step:
the GPU ms of the trainer's summary (wall time of the device; noisy on a
shared CPU) and, for lavapipe, the CPU seconds the process used per step
((CPU of STEPS steps - CPU of 5 steps) / (STEPS - 5): the driver's work,
less sensitive to other load on the machine).

    python3 bench/robust_access.py [--steps 30] [--rounds 3] [--tessera build/bin/tessera]
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"([0-9.]+) GPU ms/step", r.stderr)
    return cpu, float(m.group(1)) if m else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tessera", default=os.path.join(ROOT, "build", "bin", "tessera"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-robust"))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    model, data, plan = (os.path.join(a.dir, n) for n in ("tiny.onnx", "data.jsonl", "p.tplan"))
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_tiny_model.py"), "--out", model], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_data.py"), "--out", data, "--seq", "64"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([a.tessera, "compile", model, "-o", plan, "--batch", "4", "--seq", "64", "--lora-rank", "8",
                    "--lora-targets", "all-linear"], check=True, stdout=subprocess.DEVNULL)
    results = {False: ([], []), True: ([], [])}
    for _ in range(a.rounds):
        for robust in (False, True):
            flag = ["--robust-access"] if robust else []
            base = [a.tessera, "train", plan, "--weights", model, "--data", data, "--out",
                    os.path.join(a.dir, "out"), "--checkpoint-every", "0", *flag]
            cpu_long, gpu = run(base + ["--steps", str(a.steps)])
            cpu_short, _ = run(base + ["--steps", "5"])
            results[robust][0].append(gpu)
            results[robust][1].append((cpu_long - cpu_short) / (a.steps - 5))
    dev = subprocess.run([a.tessera, "devices"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    print(dev)
    for robust in (False, True):
        gpu, cpu = results[robust]
        print(f"{'--robust-access' if robust else 'plain':16s} GPU ms/step {statistics.median(gpu):8.1f} "
              f"(runs {', '.join(f'{x:.0f}' for x in gpu)});  CPU s/step {statistics.median(cpu):.3f} "
              f"(runs {', '.join(f'{x:.3f}' for x in cpu)})")
    g0, g1 = statistics.median(results[False][0]), statistics.median(results[True][0])
    c0, c1 = statistics.median(results[False][1]), statistics.median(results[True][1])
    print(f"cost: {100 * (g1 / g0 - 1):+.1f} % GPU time, {100 * (c1 / c0 - 1):+.1f} % CPU time per step")


if __name__ == "__main__":
    main()
