#!/usr/bin/python3
"""Renders test/text/conversations.json with the real chat templates through
python3-jinja2, set up as transformers' apply_chat_template sets it up
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, strftime_now and its own tojson; messages, tools=None,
documents=None, add_generation_prompt and the special tokens in the context).

    render_chat_oracle.py TOKENIZERS CONVERSATIONS.json OUT_DIR

(TOKENIZERS: scripts/npm_oracles.sh's DIR/tokenizers, one folder per model)

and test/text/jinja_cases.json (small templates covering the rest of the
supported subset) into OUT_DIR/jinja.json. Writes OUT_DIR/chat-<model>.json: {"renderings": [{"conversation", "add_generation_prompt",
"text"} or {..., "error"}]} for the Qwen 3, Llama 3 and Gemma 3 templates.
"""
import json
import os
import sys
from datetime import datetime

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """transformers' AssistantTracker tag ({% generation %}), rendering its body as it is."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def token_text(config, key):
    v = config.get(key)
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


def environment():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols", GenerationTag])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    tokenizers, conversations_path, out_dir = sys.argv[1:4]
    conversations = json.load(open(conversations_path, encoding="utf-8"))
    os.makedirs(out_dir, exist_ok=True)
    env = environment()
    for model in ["qwen3", "llama3", "gemma3"]:
        path = os.path.join(tokenizers, model, "tokenizer_config.json")
        config = json.load(open(path, encoding="utf-8"))
        template = env.from_string(config["chat_template"])
        special = {k: token_text(config, k) for k in ["bos_token", "eos_token", "pad_token", "unk_token"]}
        special = {k: v for k, v in special.items() if v is not None}
        out = []
        for c in conversations:
            for agp in (False, True):
                entry = {"conversation": c["name"], "add_generation_prompt": agp}
                try:
                    entry["text"] = template.render(messages=c["messages"], tools=None, documents=None,
                                                    add_generation_prompt=agp, **special, **c.get("variables", {}))
                except TemplateError as e:
                    entry["error"] = str(e)
                out.append(entry)
        with open(os.path.join(out_dir, f"chat-{model}.json"), "w", encoding="utf-8") as f:
            json.dump({"special_tokens": special, "renderings": out}, f, ensure_ascii=False)
        print(f"chat-{model}: {len(out)} renderings")

    cases = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja_cases.json"), encoding="utf-8"))
    out = []
    for c in cases:
        entry = dict(c)
        try:
            entry["text"] = env.from_string(c["template"]).render(**c["context"])
        except Exception as e:  # noqa: BLE001 - any jinja2 failure is an expected error
            entry["error"] = f"{type(e).__name__}: {e}"
        out.append(entry)
    with open(os.path.join(out_dir, "jinja.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": out}, f, ensure_ascii=False)
    print(f"jinja: {len(out)} small templates")


if __name__ == "__main__":
    main()
