#!/usr/bin/env bash
# The main job on the bundled default: set up, build, generate the tiny
# Llama-style model and its text data (chat and plain-text JSON lines), compile
# a LoRA training plan, train it through the tiny model's tokenizer
# (scripts/tiny-tokenizer) on the assistant's answers and the text, with a
# held-out validation loss, on the first Vulkan device (lavapipe when there is
# no GPU), write the adapter and its loss plot, evaluate it, ask it a question
# (a generation plan and a chat turn through the tokenizer's template), and
# write the model and the adapter as GGUF files for llama.cpp. README's
# walk-through is these commands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
OUT=${OUT:-build/default}
STEPS=${STEPS:-100}
mkdir -p "$OUT"
/usr/bin/python3 scripts/make_tiny_model.py --out "$OUT/tiny-llama.onnx"
/usr/bin/python3 scripts/make_data.py --out "$OUT/data.jsonl" --seq 64   # token ids (scripts/device_run.sh)
/usr/bin/python3 scripts/make_chat_data.py --out "$OUT/chat.jsonl"
TOK=scripts/tiny-tokenizer
build/bin/tessera compile "$OUT/tiny-llama.onnx" -o "$OUT/tiny-llama.tplan" \
  --batch 4 --seq 128 --lora-rank 8 --lora-alpha 16 --lora-targets all-linear
build/bin/tessera train "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" \
  --tokenizer "$TOK" --data "$OUT/chat.jsonl" --assistant-only-loss --val-split 0.1 \
  --steps "$STEPS" --lr 2e-3 --out "$OUT/adapter" --metrics "$OUT/metrics.jsonl"
echo "base model:"
build/bin/tessera eval "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" \
  --tokenizer "$TOK" --data "$OUT/chat.jsonl" --assistant-only-loss
echo "with the trained adapter ($OUT/adapter, loss plot $OUT/adapter/loss.svg):"
build/bin/tessera eval "$OUT/tiny-llama.tplan" --weights "$OUT/tiny-llama.onnx" \
  --tokenizer "$TOK" --data "$OUT/chat.jsonl" --assistant-only-loss --init-adapter "$OUT/adapter"
build/bin/tessera compile "$OUT/tiny-llama.onnx" -o "$OUT/tiny-gen.tplan" --generate \
  --batch 1 --seq 256 --lora-rank 8 --lora-alpha 16 --lora-targets all-linear
echo "the adapter's answer (the tiny model's weights are random: 100 LoRA steps teach it little):"
echo "When should I water my vegetables?" | build/bin/tessera generate "$OUT/tiny-gen.tplan" \
  --weights "$OUT/tiny-llama.onnx" --tokenizer "$TOK" --adapter "$OUT/adapter" --chat --max-new-tokens 48
build/bin/tessera export --weights "$OUT/tiny-llama.onnx" --tokenizer "$TOK" --adapter "$OUT/adapter" \
  --gguf-base "$OUT/tiny-llama.gguf" --gguf-adapter "$OUT/tiny-llama-LoRA.gguf"
echo "for llama.cpp: llama-cli -m $OUT/tiny-llama.gguf --lora $OUT/tiny-llama-LoRA.gguf"
