#!/usr/bin/python3
"""e2e (d): every kernel written by `tessera compile --emit-spirv DIR` is valid
SPIR-V for Vulkan 1.1 (spirv-val --target-env vulkan1.1), and there are kernels.
--emit-mlir writes a non-empty training graph too.
"""
import os
import struct

import common
from common import TempDirTest, run

SPIRV_MAGIC = 0x07230203


class SpirvValid(TempDirTest):
    def test_emit_spirv_validates(self):
        spv_dir = self.path("spv")
        mlir = self.path("train.mlir")
        self.compile(self.path("p.tplan"), "--batch", 2, "--seq", 16, "--lora-rank", 4, "--lora-targets",
                     "all-linear", "--lora-dropout", 0.1, "--emit-spirv", spv_dir, "--emit-mlir", mlir)
        files = sorted(f for f in os.listdir(spv_dir) if f.endswith(".spv"))
        self.assertGreater(len(files), 0, f"no .spv files in {spv_dir}")
        bad = []
        for f in files:
            p = os.path.join(spv_dir, f)
            with open(p, "rb") as fh:
                head = fh.read(4)
            self.assertEqual(len(head), 4, f"{f} is empty")
            self.assertEqual(struct.unpack("<I", head)[0], SPIRV_MAGIC, f"{f} lacks the SPIR-V magic number")
            r = run([common.ARGS.spirv_val, "--target-env", "vulkan1.1", p], timeout=60)
            if r.rc != 0:
                bad.append(f"{f}: {(r.stderr or r.stdout).strip()[:500]}")
        self.assertFalse(bad, f"{len(bad)} of {len(files)} kernels fail spirv-val:\n" + "\n".join(bad[:10]))
        self.assertGreater(os.path.getsize(mlir), 0)


if __name__ == "__main__":
    common.main()
