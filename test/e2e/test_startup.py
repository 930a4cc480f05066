#!/usr/bin/python3
"""e2e: issue 10 item 4, startup. `tessera train` on the bundled model's plan
keeps its pipelines in a cache folder: a second run finds them (the printed
`startup:` line says so, the device's cache file exists and is non-empty) and
its losses and adapter are bit-identical to the first run's and to a run with
the cache disabled (--no-pipeline-cache, TESSERA_PIPELINE_CACHE=""). A cache
file truncated, with a wrong header, or made for another device (its driver
header's deviceID changed, the checksum recomputed here by an independent
writer of the format) is ignored with one note and the losses do not change;
an unwritable folder is one warning. Distinct pipelines: the count printed
equals the distinct kernels this test counts itself (SPIR-V with the entry
point's name and the debug names blanked, and the layout), and a plan given a
copy of a kernel under another name prints one more kernel, not one more
pipeline. eval and generate print the line too.

    test_startup.py --tessera build/bin/tessera [--keep]
"""
import glob
import json
import os
import re
import struct

import common
from common import TempDirTest, tessera
from planfile import PlanFile

SEQ = 16
STARTUP = re.compile(r"^startup: (\d+) pipelines(?: for (\d+) kernels)? \((no pipeline cache|(\d+) from cache[^)]*)\) "
                     r"in [\d.]+ s, weights [\d.]+ [kMG]B in [\d.]+ s; ready [\d.]+ s after launch$", re.M)


def distinct_pipelines(plan_path):
    """Distinct (SPIR-V without entry point name and OpName/OpMemberName, bindings, push constants) of a plan."""
    p = PlanFile(plan_path)
    seen = set()
    for k in p.manifest["kernels"]:
        off, size = p.blob(k["spirv_blob"])
        words = list(struct.unpack_from(f"<{size // 4}I", p.blobs, off))
        out, i = words[:5], 5
        name = k["name"].encode() + b"\0"
        while i < len(words):
            count, op = words[i] >> 16, words[i] & 0xFFFF
            ins = words[i:i + count]
            i += count
            if op in (5, 6):
                continue
            if op == 15:
                lit = struct.pack(f"<{count - 3}I", *ins[3:])
                n = (len(name) + 3) // 4
                if lit.startswith(name):
                    ins = ins[:3] + [0] + ins[3 + n:]
            out.extend(ins)
        seen.add((tuple(out), k["num_bindings"], k["push_constant_bytes"]))
    return len(seen), len(p.manifest["kernels"])


class Startup(TempDirTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan = os.path.join(cls.dir, "p.tplan")
        tessera("compile", cls.model, "-o", cls.plan, "--batch", 2, "--seq", SEQ, "--lora-rank", 4,
                "--lora-targets", "all-linear")
        cls.data = common.make_data(os.path.join(cls.dir, "data.jsonl"), SEQ, max_lines=8)
        cls.runs = 0

    def train(self, *flags, env=None, plan=None):
        """One 3-step run; returns (stderr, losses, adapter bytes, the parsed startup line)."""
        Startup.runs += 1
        out = self.path(f"out{self.runs}")
        metrics = out + ".jsonl"
        r = tessera("train", plan or self.plan, "--weights", self.model, "--data", self.data, "--steps", 3,
                    "--out", out, "--metrics", metrics, *flags, env=env)
        lines = STARTUP.findall(r.stderr)
        self.assertEqual(len(lines), 1, r.stderr)
        with open(os.path.join(out, "adapter_model.safetensors"), "rb") as f:
            adapter = f.read()
        return r.stderr, common.losses_of(metrics), adapter, lines[0]

    def cache_file(self, folder):
        files = glob.glob(os.path.join(folder, "*.vkpipelines"))
        self.assertEqual(len(files), 1, files)
        return files[0]

    def test_second_run_finds_the_cache_bit_identical(self):
        folder = self.path("cache-a")
        err1, loss1, ad1, s1 = self.train("--pipeline-cache", folder)
        distinct, kernels = distinct_pipelines(self.plan)
        self.assertEqual(int(s1[0]), distinct, err1)
        self.assertEqual(int(s1[1] or s1[0]), kernels, err1)
        self.assertEqual(s1[3], "0", err1)
        f = self.cache_file(folder)
        self.assertGreater(os.path.getsize(f), 32 + 8 * distinct)  # our header, the keys, the driver's data
        err2, loss2, ad2, s2 = self.train("--pipeline-cache", folder)
        self.assertEqual(s2[3], str(distinct), err2)  # every pipeline found in the file
        self.assertNotIn("note:", err2)
        _, loss3, ad3, s3 = self.train("--no-pipeline-cache")
        self.assertEqual(s3[2], "no pipeline cache")
        _, loss4, ad4, s4 = self.train(env={"TESSERA_PIPELINE_CACHE": ""})
        self.assertEqual(s4[2], "no pipeline cache")
        # The environment variable chooses the folder when no flag does.
        _, _, _, s5 = self.train(env={"TESSERA_PIPELINE_CACHE": folder})
        self.assertEqual(s5[3], str(distinct))
        self.assertEqual(len(loss1), 3)
        self.assertEqual(loss1, loss2)
        self.assertEqual(loss1, loss3)
        self.assertEqual(loss1, loss4)
        self.assertEqual(ad1, ad2)
        self.assertEqual(ad1, ad3)
        self.assertEqual(ad1, ad4)

    def test_bad_cache_files_are_ignored_with_one_note(self):
        folder = self.path("cache-b")
        _, want, adapter, _ = self.train("--pipeline-cache", folder)
        f = self.cache_file(folder)
        with open(f, "rb") as fh:
            good = fh.read()
        # The format (runtime/vulkan/PipelineCache.h), written here independently.
        magic, nkeys, _, ndriver, _ = struct.unpack_from("<8sIIQQ", good, 0)
        self.assertEqual(magic, b"TSRPIPE1")
        self.assertEqual(len(good), 32 + 8 * nkeys + ndriver)
        keys, driver = good[32:32 + 8 * nkeys], bytearray(good[32 + 8 * nkeys:])

        def rewrite(driver_bytes):
            body = keys + bytes(driver_bytes)
            from planfile import fnv1a64
            return struct.pack("<8sIIQQ", magic, nkeys, 0, len(driver_bytes), fnv1a64(body)) + body

        self.assertEqual(rewrite(driver), good)  # the independent writer agrees with the runtime's
        other_device = bytearray(driver)
        struct.pack_into("<I", other_device, 12, struct.unpack_from("<I", driver, 12)[0] ^ 0x5A5A)
        other_vendor = bytearray(driver)
        struct.pack_into("<I", other_vendor, 8, 0x10DE)
        cases = {
            "truncated": (good[:len(good) // 2], "truncated or damaged"),
            "wrong header": (b"GARBAGE!" + good[8:], "wrong magic"),
            "other device": (rewrite(other_device), "made for another device or driver"),
            "other vendor": (rewrite(other_vendor), "made for another device or driver"),
        }
        for name, (bytes_, why) in cases.items():
            with self.subTest(name):
                with open(f, "wb") as fh:
                    fh.write(bytes_)
                err, losses, ad, s = self.train("--pipeline-cache", folder)
                notes = [l for l in err.splitlines() if l.startswith("note: pipeline cache")]
                self.assertEqual(len(notes), 1, err)
                self.assertIn(f, notes[0])
                self.assertIn(why, notes[0])
                self.assertEqual(s[3], "0", err)
                self.assertEqual(losses, want)
                self.assertEqual(ad, adapter)
                with open(f, "rb") as fh:
                    self.assertEqual(fh.read()[:8], b"TSRPIPE1")  # replaced by a good file

    def test_unwritable_folder_warns_and_trains(self):
        blocker = self.path("not-a-folder")
        with open(blocker, "w") as fh:
            fh.write("x")
        err, losses, _, _ = self.train("--pipeline-cache", os.path.join(blocker, "cache"))
        warnings = [l for l in err.splitlines() if l.startswith("warning: pipeline cache not written")]
        self.assertEqual(len(warnings), 1, err)
        self.assertIn(blocker, warnings[0])
        self.assertEqual(len(losses), 3)

    def test_a_copied_kernel_shares_its_pipeline(self):
        p = PlanFile(self.plan)
        kernels = p.manifest["kernels"]
        k = next(i for i, x in enumerate(kernels) if x["name"].startswith("matmul_"))
        old = kernels[k]["name"]
        new = old[:-1] + ("Z" if old[-1] != "Z" else "Y")  # same length: the module keeps its size
        off, size = p.kernel_blob(k)
        blob = bytes(p.blobs[off:off + size]).replace(old.encode() + b"\0", new.encode() + b"\0")
        self.assertNotEqual(blob, bytes(p.blobs[off:off + size]))
        start = (len(p.blobs) + 15) // 16 * 16
        p.blobs += b"\0" * (start - len(p.blobs)) + blob
        p.manifest["blobs"].append({"offset": start, "size": len(blob)})
        p.manifest["blob_section_bytes"] = len(p.blobs)
        copy = dict(kernels[k], name=new, spirv_blob=len(p.manifest["blobs"]) - 1)
        kernels.append(copy)
        # Every other dispatch of the kernel goes to the copy.
        moved = 0
        for prog in p.manifest["programs"]:
            for d in prog["dispatches"]:
                if d["kernel"] == k:
                    if moved % 2:
                        d["kernel"] = len(kernels) - 1
                    moved += 1
        self.assertGreater(moved, 1)
        plan2 = p.write(self.path("copied.tplan"))
        _, want, adapter, s = self.train("--no-pipeline-cache")
        _, losses, ad, s2 = self.train("--no-pipeline-cache", plan=plan2)
        self.assertEqual(int(s2[0]), int(s[0]))  # one pipeline for the kernel and its copy
        self.assertEqual(int(s2[1]), int(s[1] or s[0]) + 1)
        self.assertEqual(distinct_pipelines(plan2), (int(s[0]), int(s[1] or s[0]) + 1))
        self.assertEqual(losses, want)
        self.assertEqual(ad, adapter)

    def test_eval_and_generate_print_startup(self):
        folder = self.path("cache-e")
        r = tessera("eval", self.plan, "--weights", self.model, "--data", self.data, "--pipeline-cache", folder)
        self.assertEqual(len(STARTUP.findall(r.stderr)), 1, r.stderr)
        r = tessera("eval", self.plan, "--weights", self.model, "--data", self.data, "--pipeline-cache", folder)
        (line,) = STARTUP.findall(r.stderr)
        self.assertNotEqual(line[3], "0", r.stderr)
        gen = self.path("gen.tplan")
        tessera("compile", self.model, "-o", gen, "--generate", "--batch", 1, "--seq", 32, "--lora-rank", 4)
        r = tessera("generate", gen, "--weights", self.model, "--prompt-ids", "1,2,3", "--max-new-tokens", 2,
                    "--print-ids", "--no-pipeline-cache")
        (line,) = STARTUP.findall(r.stderr)
        self.assertEqual(line[2], "no pipeline cache", r.stderr)


if __name__ == "__main__":
    common.main()
