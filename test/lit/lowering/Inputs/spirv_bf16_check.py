"""For every matmul_coopmat*.spv and flash_attention*coopmat*.spv in a folder: how many 16-bit float types are bf16 (OpTypeFloat 16 0) and how
many IEEE f16, which cooperative-matrix / bf16 capabilities and which SPV_KHR_bfloat16 extension the binary
declares, and how many results are decorated NoContraction (a reader of the raw words: Debian 12's SPIRV-Tools do not know these capabilities)."""
import os
import struct
import sys

CAPS = {6022: "CooperativeMatrixKHR", 5116: "BFloat16TypeKHR", 5117: "BFloat16DotProductKHR",
        5118: "BFloat16CooperativeMatrixKHR"}


def describe(path):
    data = open(path, "rb").read()
    words = struct.unpack("<%dI" % (len(data) // 4), data)
    assert words[0] == 0x07230203, "not SPIR-V"
    bf16 = f16 = nocontraction = 0
    caps, exts = [], []
    i = 5
    while i < len(words):
        count, op = words[i] >> 16, words[i] & 0xFFFF
        if op == 17 and words[i + 1] in CAPS:
            caps.append(CAPS[words[i + 1]])
        if op == 10:
            exts.append(struct.pack("<%dI" % (count - 1), *words[i + 1:i + count]).split(b"\0")[0].decode())
        if op == 71 and count == 3 and words[i + 2] == 42:  # OpDecorate ... NoContraction
            nocontraction += 1
        if op == 22 and words[i + 2] == 16:
            if count == 4 and words[i + 3] == 0:
                bf16 += 1
            else:
                f16 += 1
        i += count
    line = f"{os.path.basename(path)}: bf16 types {bf16}, f16 types {f16}, capabilities {' '.join(sorted(caps))}"
    if "SPV_KHR_bfloat16" in exts:
        line += ", extension SPV_KHR_bfloat16"
    if nocontraction:
        line += f", NoContraction {nocontraction}"
    return line


for name in sorted(os.listdir(sys.argv[1])):
    coopmat = name.startswith("matmul_coopmat") or (name.startswith("flash_attention") and "coopmat" in name)
    if coopmat and name.endswith(".spv"):
        print(describe(os.path.join(sys.argv[1], name)))
