// PreTokenizer.h - tokenizer.json's "pre_tokenizer": cuts normalized text
// into the words BPE runs on. Split (regex or string; Isolated, Removed,
// MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel (with or
// without GPT-2's regex), Metaspace and Sequence.
#pragma once

#include "runtime/tokenizer/AlignedText.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tessera::text {

class PreTokenizer {
public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their pieces (empty pieces are dropped).
  virtual void apply(std::vector<AlignedText> &pieces) const = 0;
};

// nullptr for a null pre_tokenizer. Throws "<where>: unsupported pre_tokenizer type 'X'".
std::unique_ptr<PreTokenizer> makePreTokenizer(const nlohmann::json &j, const std::string &where);

} // namespace tessera::text
