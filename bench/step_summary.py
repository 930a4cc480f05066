#!/usr/bin/env python3
"""One line for a tessera-rt train run's --metrics file: tokens/s from the median wall time of the steady steps
(after 3), the median GPU time, first and last loss, and the run's time since T0 (bench/*_h200.sh).
Usage: step_summary.py NAME TOKENS_PER_STEP METRICS.jsonl T0"""
import json
import sys
import time

name, tokens, path, t0 = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
m = [json.loads(l) for l in open(path)]
steady = m[3:] if len(m) > 5 else m
ms = sorted(s["gpu_ms"] for s in steady)[len(steady) // 2]
wall = sorted(s["wall_ms"] for s in steady)[len(steady) // 2]
print(f"Tessera {name}: {tokens / (wall / 1000):,.0f} tokens/s (median wall {wall:.1f} ms/step, GPU {ms:.1f} ms), "
      f"losses {m[0]['loss']:.4f} -> {m[-1]['loss']:.4f}, run {time.time() - t0:.0f} s")
