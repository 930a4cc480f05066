// Bpe.h - tokenizer.json's BPE model: merges applied lowest rank first
// (leftmost on ties, as Hugging Face's Word::merge_all), ignore_merges (a
// word already in the vocabulary is one token), byte_fallback (<0xXX>
// tokens for characters outside the vocabulary), unk_token with fuse_unk,
// continuing_subword_prefix and end_of_word_suffix.
#pragma once

#include "runtime/tokenizer/AlignedText.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera::text {

struct Token {
  int32_t id = 0;
  Span offsets; // bytes of the original input
};

class BpeModel {
public:
  // j is tokenizer.json's "model"; throws naming `where` and the field.
  BpeModel(const nlohmann::json &j, const std::string &where);
  // Appends the tokens of one pre-tokenized word.
  void tokenize(const AlignedText &word, std::vector<Token> &out) const;
  std::optional<int32_t> tokenToId(std::string_view token) const;
  // "" when the id is not in the model's vocabulary.
  const std::string &idToToken(int32_t id) const;
  int64_t size() const { return int64_t(idToToken_.size()); }

private:
  // (first byte, byte length) of each token of `word`.
  std::vector<std::pair<int32_t, std::pair<uint32_t, uint32_t>>> encodeWord(std::string_view word) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> idToToken_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_;
  bool fuseUnk_ = false, byteFallback_ = false, ignoreMerges_ = false;
  std::string prefix_, suffix_;
  int32_t byteTokens_[256];

  mutable std::mutex cacheMutex_;
  mutable std::unordered_map<std::string, std::vector<std::pair<int32_t, std::pair<uint32_t, uint32_t>>>> cache_;
};

} // namespace tessera::text
