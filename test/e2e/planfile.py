"""Reading and rewriting plan files for tests that tamper with them (the
layout of docs/plan-format.md): the checksum is recomputed, so what the tests
exercise is the reader's validation of the content, not the checksum."""
import json
import struct


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class PlanFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        n = struct.unpack_from("<Q", raw, 16)[0]
        self.version = struct.unpack_from("<I", raw, 8)[0]
        self.manifest = json.loads(raw[32:32 + n])
        self.blobs = bytearray(raw[(32 + n + 15) // 16 * 16:])

    def blob(self, i):
        b = self.manifest["blobs"][i]
        return b["offset"], b["size"]

    def kernel_blob(self, k):
        return self.blob(self.manifest["kernels"][k]["spirv_blob"])

    def program(self, name):
        return next(p for p in self.manifest["programs"] if p["name"] == name)

    def write(self, path, manifest_text=None):
        man = (manifest_text if manifest_text is not None else json.dumps(self.manifest)).encode()
        start = (32 + len(man) + 15) // 16 * 16
        body = man + b"\0" * (start - 32 - len(man)) + bytes(self.blobs)
        with open(path, "wb") as f:
            f.write(b"TESSPLAN" + struct.pack("<IIQQ", self.version, 0, len(man), fnv1a64(body)) + body)
        return path
