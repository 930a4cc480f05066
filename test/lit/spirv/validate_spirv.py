#!/usr/bin/env python3
"""spirv-val every <dir>/*.spv for Vulkan and check its GLCompute entry point
is named like the file. Prints one line per module (sorted) and exits 1 if any
module is invalid or there are none."""
import os
import subprocess
import sys

def main():
    directory, env = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "vulkan1.1")
    names = sorted(f for f in os.listdir(directory) if f.endswith(".spv"))
    if not names:
        print("no .spv files in " + directory)
        return 1
    bad = 0
    for f in names:
        path = os.path.join(directory, f)
        stem = f[:-4]
        val = subprocess.run(["spirv-val", "--target-env", env, path], capture_output=True, text=True)
        dis = subprocess.run(["spirv-dis", path], capture_output=True, text=True)
        entry = [l for l in dis.stdout.splitlines() if "OpEntryPoint GLCompute" in l]
        if val.returncode != 0:
            print("INVALID " + stem + ": " + (val.stdout + val.stderr).strip().replace("\n", " | "))
            bad += 1
        elif len(entry) != 1 or ('"%s"' % stem) not in entry[0]:
            print("BAD ENTRY POINT " + stem + ": " + " | ".join(entry))
            bad += 1
        else:
            print("valid " + stem)
    print("%d modules, %d invalid" % (len(names), bad))
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
