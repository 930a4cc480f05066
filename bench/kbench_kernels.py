#!/usr/bin/env python3
"""Per-kernel totals of a tessera-kbench listing (run with a large --top): which kernels of a family the time goes
to, with their grid and buffer sizes, so that one family's kernels can be compared shape by shape.
usage: kbench_kernels.py KBENCH.txt [FAMILY-REGEX] [N]"""
import re
import sys
from collections import defaultdict

path = sys.argv[1]
family = re.compile(sys.argv[2] if len(sys.argv) > 2 else r".")
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
rows = defaultdict(lambda: [0, 0.0, ""])
line_re = re.compile(r"^(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+([\d.]+)\s+[\d.]+%\s*(.*)$")
for line in open(path):
    m = line_re.match(line)
    if not m or not family.match(re.sub(r"_\d+$", "", m.group(1))):
        continue
    name, count, groups, local, us, buffers = m.groups()
    key = (name, groups, local, buffers.strip())
    rows[key][0] += int(count)
    rows[key][1] += int(count) * float(us) / 1000.0
total = sum(v[1] for v in rows.values())
print(f"{len(rows)} kernel/shape pairs, {sum(v[0] for v in rows.values())} dispatches, {total:.3f} ms")
for (name, groups, local, buffers), (count, ms, _) in sorted(rows.items(), key=lambda kv: -kv[1][1])[:top]:
    print(f"{ms:8.3f} ms {count:5d} x {ms / count * 1000:7.1f} us  {name:22s} {groups:>12s} {local:>10s}  {buffers}")
