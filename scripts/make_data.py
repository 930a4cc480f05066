#!/usr/bin/python3
"""Writes Tessera's bundled byte-level training data as JSON lines.

    make_data.py --out build/default/data.jsonl [--seq 64] [--corpus scripts/corpus.txt]

Tokens are the UTF-8 bytes of the corpus (vocabulary 256). The corpus is cut
into paragraphs, each paragraph into lines of at most `seq` tokens (preferably
at a space, so most lines start at a word). Every line is
`{"input_ids": [...]}`. Each question/answer paragraph is also written as one
supervised example with `"labels"`: the question part is masked with -100 and
only the answer is counted (Hugging Face's ignore_index); when it does not fit,
the answer is cut to half the line and the prompt keeps its end. Deterministic.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def split_tokens(tokens, seq):
    """Cuts a token list into chunks of at most seq tokens, preferring to cut after a space (byte 32)."""
    out = []
    start = 0
    while start < len(tokens):
        end = min(start + seq, len(tokens))
        if end < len(tokens):
            cut = end
            while cut > start + seq // 2 and tokens[cut - 1] != 32:
                cut -= 1
            if tokens[cut - 1] == 32:
                end = cut
        out.append(tokens[start:end])
        start = end
    return out


def make_lines(text, seq):
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    lines = []
    for p in paragraphs:
        toks = list(p.encode("utf-8"))
        for chunk in split_tokens(toks, seq):
            lines.append({"input_ids": chunk})
        # Question/answer paragraphs: one more line with the prompt masked out.
        if p.startswith("Question:") and " Answer:" in p:
            q, a = p.split(" Answer:", 1)
            prompt = list((q + " Answer:").encode("utf-8"))
            answer = list(a.encode("utf-8"))
            # Fit in seq tokens: the answer keeps at least half the line, the prompt keeps its end.
            answer = answer[:max(seq // 2, seq - len(prompt))]
            prompt = prompt[len(prompt) - (seq - len(answer)):] if len(prompt) + len(answer) > seq else prompt
            ids = prompt + answer
            labels = [-100] * len(prompt) + answer
            lines.append({"input_ids": ids, "labels": labels})
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output .jsonl file")
    ap.add_argument("--seq", type=int, default=64, help="maximum tokens per line")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.txt"))
    args = ap.parse_args(argv)
    if args.seq < 8:
        ap.error("--seq must be at least 8")

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    lines = make_lines(text, args.seq)
    d = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(d, exist_ok=True)
    with open(args.out, "w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    n_tok = sum(len(l["input_ids"]) for l in lines)
    n_lab = sum(1 for l in lines if "labels" in l)
    print(f"wrote {args.out}: {len(lines)} lines, {n_tok} tokens, {n_lab} with labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
