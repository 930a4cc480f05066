#!/usr/bin/python3
"""Writes the bundled default's text data: chat and plain-text JSON lines.

    make_chat_data.py --out build/default/chat.jsonl [--corpus scripts/corpus.txt] [--max-chars 110]

Each "Question: ... Answer: ..." paragraph of the corpus becomes a chat line
{"messages": [user, assistant]}; every other paragraph becomes {"text": ...}
lines of whole sentences, at most --max-chars characters each (a longer
sentence is cut at a space; the tiny model's tokens are bytes).
`tessera train --tokenizer scripts/tiny-tokenizer --assistant-only-loss`
tokenizes it (the tiny model's byte-level tokenizer and ChatML template).
"""
import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.txt"))
    ap.add_argument("--max-chars", type=int, default=110)
    args = ap.parse_args()
    text = open(args.corpus, encoding="utf-8").read()
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    lines = []
    for p in filter(None, paragraphs):
        if p.startswith("Question:") and " Answer:" in p:
            q, a = p.split(" Answer:", 1)
            lines.append({"messages": [{"role": "user", "content": q[len("Question:"):].strip()},
                                       {"role": "assistant", "content": a.strip()}]})
        else:
            chunk = ""
            pieces = []
            for sentence in p.replace(". ", ".\n").split("\n"):
                while len(sentence) > args.max_chars:  # a long sentence: cut at a space
                    cut = sentence.rfind(" ", 0, args.max_chars)
                    cut = cut if cut > 0 else args.max_chars
                    pieces.append(sentence[:cut])
                    sentence = sentence[cut:].lstrip()
                pieces.append(sentence)
            for sentence in pieces:
                if chunk and len(chunk) + 1 + len(sentence) > args.max_chars:
                    lines.append({"text": chunk})
                    chunk = ""
                chunk = (chunk + " " + sentence) if chunk else sentence
            if chunk:
                lines.append({"text": chunk})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    chats = sum(1 for l in lines if "messages" in l)
    print(f"wrote {args.out}: {len(lines)} lines ({chats} chats, {len(lines) - chats} texts)")


if __name__ == "__main__":
    main()
