#!/usr/bin/python3
"""e2e (d): every kernel written by `tessera compile --emit-spirv DIR` is valid
SPIR-V for Vulkan 1.1 (spirv-val --target-env vulkan1.1), and there are kernels:
for fp32 plans, and for f16 and bf16 plans (lavapipe profile: 16-bit storage,
bf16 as 16-bit words). --emit-mlir writes a non-empty training graph too.
"""
import os
import struct

import common
from common import TempDirTest, run

SPIRV_MAGIC = 0x07230203
STORAGE16 = 4433  # Capability StorageBuffer16BitAccess


def capabilities(path):
    """The OpCapability operands of a SPIR-V module."""
    with open(path, "rb") as f:
        words = struct.unpack(f"<{os.path.getsize(path) // 4}I", f.read())
    caps, i = set(), 5
    while i < len(words):
        count, opcode = words[i] >> 16, words[i] & 0xFFFF
        if opcode == 17:
            caps.add(words[i + 1])
        i += max(count, 1)
    return caps


class SpirvValid(TempDirTest):
    def test_emit_spirv_validates(self):
        mlir = self.path("train.mlir")
        self.validate(self.path("spv"), "--emit-mlir", mlir)
        self.assertGreater(os.path.getsize(mlir), 0)

    def test_half_precision_kernels_validate(self):
        lavapipe = os.path.join(common.ROOT, "autotune", "profiles", "lavapipe.json")
        for mode in ("f16", "bf16"):
            with self.subTest(mode=mode):
                files = self.validate(self.path(f"spv-{mode}"), "--profile", lavapipe, "--precision", mode)
                sixteen = [f for f in files if STORAGE16 in capabilities(f)]
                self.assertGreater(len(sixteen), len(files) // 2, f"{mode}: few kernels use 16-bit storage")

    def validate(self, spv_dir, *flags):
        self.compile(self.path("p.tplan"), "--batch", 2, "--seq", 16, "--lora-rank", 4, "--lora-targets",
                     "all-linear", "--lora-dropout", 0.1, "--emit-spirv", spv_dir, *flags)
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
        return [os.path.join(spv_dir, f) for f in files]


if __name__ == "__main__":
    common.main()
