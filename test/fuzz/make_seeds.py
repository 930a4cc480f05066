#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (test/fuzz/<name>/seeds/).

The seeds are committed; rerun this after a format change:

    /usr/bin/python3 test/fuzz/make_seeds.py --tessera build/bin/tessera

Seeds are small valid (and a few nearly valid) inputs of each reader: ONNX
models of the importer tests, data lines, adapters and checkpoints written
by tessera itself, the bundled device profiles, and plans compiled from a
one-layer model.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "reference"))
import safetensors_io  # noqa: E402

import numpy as np  # noqa: E402

GEN = os.path.join(ROOT, "test", "lit", "import", "Inputs", "gen_models.py")
ONNX_CASES = ["linear", "shapes", "rmsnorm", "ops", "opset18", "function", "constant_weight", "fixed_dims",
              "gathernd_nan_guard", "static_export", "erf", "ext_ok", "unsupported"]


def seeds(name):
    d = os.path.join(HERE, name, "seeds")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def run(*cmd):
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", default=os.path.join(ROOT, "build", "bin", "tessera"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tessera-seeds-")
    try:
        # ONNX models: the importer and the runtime's weight reader.
        onnx_dirs = [seeds("onnx_import"), seeds("onnx_weights")]
        for case in ONNX_CASES:
            path = os.path.join(tmp, case + ".onnx")
            run(sys.executable, GEN, case, path)
            with open(path, "rb") as f:
                model = f.read()
            put(onnx_dirs[0], case, b"\x06" + model)  # first byte: batch 1, seq 5
            put(onnx_dirs[1], case, model)

        d = seeds("jsonl")
        put(d, "plain", "\x00" + '{"input_ids": [1, 2, 3, 4]}\n{"input_ids": [5, 6]}\n')
        put(d, "labels", "\x01" + '{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}\n\n{"input_ids": [7], "labels": null}\n')
        put(d, "bad", "\x02" + '{"input_ids": [1, 300]}\n')

        d = seeds("safetensors")
        rng = np.random.default_rng(0)
        put(d, "f32", safetensors_io.dumps({"a.lora_A.weight": rng.standard_normal((2, 4)).astype(np.float32),
                                            "a.lora_B.weight": np.zeros((4, 2), np.float32)}, {"format": "pt"}))
        put(d, "mixed", safetensors_io.dumps({"h": rng.standard_normal((3,)).astype(np.float16),
                                              "d": rng.standard_normal((2, 1)).astype(np.float64),
                                              "s": np.zeros((), np.float32)}))

        d = seeds("profile")
        for p in sorted(os.listdir(os.path.join(ROOT, "autotune", "profiles"))):
            shutil.copy(os.path.join(ROOT, "autotune", "profiles", p), os.path.join(d, p))

        # Plans and a checkpoint, written by tessera from a one-layer model.
        model = os.path.join(tmp, "linear.onnx")
        plan_dir, ck_dir = seeds("plan"), seeds("checkpoint")
        for name, extra in [("linear", []), ("linear-dropout", ["--lora-dropout", "0.1", "--rslora"])]:
            plan = os.path.join(tmp, name + ".tplan")
            run(a.tessera, "compile", model, "-o", plan, "--batch", 1, "--seq", 4, "--lora-rank", 2, *extra)
            shutil.copy(plan, os.path.join(plan_dir, name))
        data = os.path.join(tmp, "data.jsonl")
        with open(data, "w") as f:
            f.write('{"input_ids": [1, 2, 3, 4]}\n{"input_ids": [5, 6, 7]}\n')
        out = os.path.join(tmp, "out")
        run(a.tessera, "train", os.path.join(tmp, "linear.tplan"), "--weights", model, "--data", data,
            "--steps", 2, "--checkpoint-every", 1, "--out", out)
        ck = os.path.join(out, "checkpoint")
        with open(os.path.join(ck, "state.json"), "rb") as f:
            state = f.read()
        with open(os.path.join(ck, json.loads(state)["tensors"]), "rb") as f:
            tensors = f.read()
        for flag in (0, 1):
            put(ck_dir, f"checkpoint-{flag}", bytes([flag]) + struct.pack("<I", len(state)) + state + tensors)
        # GGUF: LoRA adapters of the bundled tiny Llama as tessera export writes them.
        d = seeds("gguf")
        tiny = os.path.join(tmp, "tiny", "tiny-llama.onnx")
        run(sys.executable, os.path.join(ROOT, "scripts", "make_tiny_model.py"), "--out", tiny)
        tplan, tout = os.path.join(tmp, "tiny.tplan"), os.path.join(tmp, "tiny-out")
        run(a.tessera, "compile", tiny, "-o", tplan, "--batch", 1, "--seq", 8, "--lora-rank", 2, "--lora-targets",
            "q_proj,v_proj")
        with open(os.path.join(tmp, "tiny.jsonl"), "w") as f:
            f.write('{"input_ids": [1, 2, 3, 4, 5, 6, 7, 8]}\n')
        run(a.tessera, "train", tplan, "--weights", tiny, "--data", os.path.join(tmp, "tiny.jsonl"), "--steps", 1,
            "--out", tout)
        for kind in ("f32", "f16"):
            lora = os.path.join(tmp, f"lora-{kind}.gguf")
            run(a.tessera, "export", "--weights", tiny, "--adapter", tout, "--gguf-adapter", lora, "--type", kind)
            with open(lora, "rb") as f:
                put(d, os.path.basename(lora), f.read())

        # Tokenizers: small hand-made tokenizer.json files (byte-level BPE as
        # in Qwen / Llama 3, byte fallback as in Gemma), a NUL, a text.
        d = seeds("tokenizer")
        for name, tok in tokenizers().items():
            for i, text in enumerate(["Hello world! 123", "h\u00e9llo  w\u00f6rld\n\ttab <|im_end|>"]):
                put(d, f"{name}-{i}", json.dumps(tok).encode() + b"\0" + text.encode())

        # Chat templates written for the test: loops, conditions, filters,
        # macros, namespaces, generation blocks, raise_exception.
        d = seeds("chat_template")
        for name, t in CHAT_TEMPLATES.items():
            put(d, name, t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizers():
    byte = bytes_to_unicode()
    vocab = {byte[b]: i for i, b in enumerate(range(256))}
    merges = []
    for pair in ["H e", "l l", "ll o", "w o", "r l", "wo rl", "\u0120 w"]:
        a_, b_ = pair.split(" ")
        if a_ in vocab and b_ in vocab and a_ + b_ not in vocab:
            vocab[a_ + b_] = len(vocab)
            merges.append(pair)
    added = [{"id": len(vocab), "content": "<|im_end|>", "special": True, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False}]
    byte_level = {
        "version": "1.0", "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges, "byte_fallback": False}}
    fb_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        fb_vocab[f"<0x{b:02X}>"] = len(fb_vocab)
    for t in ["\u2581", "h", "e", "l", "o", "\u2581h", "ll", "llo"]:
        fb_vocab.setdefault(t, len(fb_vocab))
    fallback = {
        "version": "1.0", "added_tokens": [],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "vocab": fb_vocab, "merges": ["l l", "ll o", "\u2581 h"], "byte_fallback": True,
                  "unk_token": "<unk>"}}
    return {"byte-level": byte_level, "byte-fallback": fallback}


CHAT_TEMPLATES = {
    "chatml": "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim"
              " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
              "{% endif %}",
    "system-first": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
                    "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}"
                    "{% for m in loop_messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                    "{{ raise_exception('roles must alternate') }}{% endif %}{% if m['role'] == 'assistant' %}"
                    "{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}{% else %}"
                    "[INST] {{ (system ~ '\\n\\n' if loop.first and system is defined else '') ~ m['content'] }} [/INST]"
                    "{% endif %}{% endfor %}",
    "macros": "{%- macro render(m) -%}{{ m.role | upper }}: {{ m.content | replace('world', 'there') }}{%- endmacro -%}"
              "{%- set ns = namespace(n=0) -%}{%- for m in messages if m.role != 'system' -%}{%- set ns.n = ns.n + 1 -%}"
              "{{ render(m) }}{{ '\\n' if not loop.last }}{%- endfor -%}{{ ns.n }} {{ messages | length }} "
              "{{ messages[-1] | tojson }} {{ strftime_now('%Y') | length > 0 }}",
}


if __name__ == "__main__":
    main()
