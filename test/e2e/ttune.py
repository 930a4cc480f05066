"""Reads and writes the container of tuning plans (.ttune) and training
plans (.tplan), for tests that look inside or plant mistakes
(docs/autotune.md, docs/plan-format.md):

    header (32 bytes): magic (8) | u32 version | u32 flags | u64 manifest_bytes | u64 checksum
    manifest: UTF-8 JSON | zero padding to 16 | blob section (16-byte aligned blobs)

checksum = FNV-1a 64 over every byte after the header.
"""
import json
import struct


def _align(v, a=16):
    return (v + a - 1) // a * a


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def read(data):
    """Returns (magic, version, manifest dict, list of blob bytes)."""
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    magic = data[:8]
    version, flags, mbytes, _checksum = struct.unpack("<IIQQ", data[8:32])
    manifest = json.loads(data[32:32 + mbytes])
    start = _align(32 + mbytes)
    blobs = [data[start + b["offset"]:start + b["offset"] + b["size"]] for b in manifest["blobs"]]
    return magic, version, manifest, blobs


def write(magic, version, manifest, blobs):
    """The container's bytes (offsets, sizes and the checksum recomputed)."""
    offsets, off = [], 0
    for b in blobs:
        offsets.append(off)
        off = _align(off + len(b))
    manifest = dict(manifest)
    manifest["blobs"] = [{"offset": o, "size": len(b)} for o, b in zip(offsets, blobs)]
    manifest["blob_section_bytes"] = off
    text = json.dumps(manifest, separators=(",", ":")).encode()
    start = _align(32 + len(text))
    out = bytearray(start + off)
    out[32:32 + len(text)] = text
    for o, b in zip(offsets, blobs):
        out[start + o:start + o + len(b)] = b
    out[0:8] = magic
    struct.pack_into("<IIQ", out, 8, version, 0, len(text))
    struct.pack_into("<Q", out, 24, fnv1a64(memoryview(out)[32:]))
    return bytes(out)


def subset(path, out, keep):
    """Writes a tuning plan with only the problems whose indices are in `keep`
    (in that order) and their blobs."""
    magic, version, m, blobs = read(path)
    problems, new_blobs = [], []
    for i in keep:
        p = dict(m["problems"][i])
        new_blobs.append(blobs[p["plan_blob"]])
        p["plan_blob"] = len(new_blobs) - 1
        problems.append(p)
    m = dict(m)
    m["problems"] = problems
    with open(out, "wb") as f:
        f.write(write(magic, version, m, new_blobs))
    return out
