// Vocab.h - the tokenizer.* keys of a llama.cpp model GGUF.
//
// From a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json):
//   byte-level BPE (Llama 3, Qwen 3)       -> tokenizer.ggml.model "gpt2" with
//       tokens, token_type, merges and the pre-tokenizer llama.cpp knows by
//       name ("llama-bpe", "qwen2"), recognised from the Split regex;
//   SentencePiece-style BPE with byte fallback (Gemma 3) -> "llama" (SPM)
//       with tokens, scores and token types; a token's score is minus the
//       rank of the first merge that makes it, so llama.cpp's highest-score-
//       first merging follows the BPE merge order;
// plus bos / eos / pad ids, add_bos_token / add_eos_token and the
// chat_template. Tokens beyond the tokenizer up to the embedding's rows are
// "[PAD<i>]" (UNUSED), as llama.cpp's converter pads.
//
// Without a tokenizer: a placeholder llama.cpp accepts, "gpt2" with the 256
// byte tokens in GPT-2's byte-to-unicode spelling (ids 0..255 = bytes, so a
// byte-level model such as the bundled one reads and writes text) and
// "[PAD<i>]" for the rest, no merges, no BOS added.
#pragma once

#include "runtime/gguf/Gguf.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tessera::gguf {

using Metadata = std::vector<std::pair<std::string, Value>>;

struct SpecialIds {
  std::optional<int64_t> bos, eos, pad;
};

Metadata placeholderVocab(int64_t vocabSize, const SpecialIds &ids);

// Reads DIR/tokenizer.json (+ tokenizer_config.json, chat_template.jinja).
// Errors name the file and field: a missing file, an unsupported model or
// pre-tokenizer type, more tokens than the model's embedding has rows.
// `fallback` ids (config.json) serve where the tokenizer files name none.
// vocabSize < 0: no padding (a vocab-only file).
Metadata tokenizerVocab(const std::string &dir, int64_t vocabSize, const SpecialIds &fallback);

} // namespace tessera::gguf
