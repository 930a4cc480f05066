// AddedVocabulary.h - tokenizer.json's "added_tokens": special and added
// tokens are found in the text before the model runs and never split. As in
// Hugging Face, tokens with "normalized": false are matched in the raw text,
// those with "normalized": true in the normalized text; a match is the
// leftmost, then longest; lstrip/rstrip swallow the whitespace beside it and
// single_word requires non-word characters around it.
#pragma once

#include "runtime/tokenizer/AlignedText.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera::text {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, singleWord = false, normalized = false;
};

// A piece of input: text to tokenize further, or one added token.
struct Segment {
  AlignedText text;
  int32_t token = -1; // >= 0: this added token (text holds its match)
};

class AddedVocabulary {
public:
  AddedVocabulary();
  ~AddedVocabulary();
  AddedVocabulary(AddedVocabulary &&) noexcept;
  AddedVocabulary &operator=(AddedVocabulary &&) noexcept;
  void load(const nlohmann::json &addedTokens, const std::string &where);
  // Cuts `in` at the tokens of the raw (normalized == false) or the normalized set.
  std::vector<Segment> split(const AlignedText &in, bool normalizedSet) const;
  const AddedToken *byId(int32_t id) const;
  const AddedToken *byContent(const std::string &content) const;
  const std::vector<AddedToken> &tokens() const { return tokens_; }

private:
  struct Trie;
  std::vector<AddedToken> tokens_;
  std::map<int32_t, size_t> byId_;
  std::map<std::string, size_t> byContent_;
  std::unique_ptr<Trie> raw_, normalized_;
};

} // namespace tessera::text
