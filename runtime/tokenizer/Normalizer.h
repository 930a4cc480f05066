// Normalizer.h - tokenizer.json's "normalizer": NFC/NFD/NFKC/NFKD (utf8proc),
// Replace (string or regex), Prepend, Lowercase, Strip and Sequence. Each
// keeps the alignment of every output byte to the input (AlignedText).
#pragma once

#include "runtime/tokenizer/AlignedText.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>

namespace tessera::text {

class Normalizer {
public:
  virtual ~Normalizer() = default;
  virtual AlignedText apply(const AlignedText &in) const = 0;
};

// nullptr for a null normalizer. Throws "<where>: unsupported normalizer type 'X'".
std::unique_ptr<Normalizer> makeNormalizer(const nlohmann::json &j, const std::string &where);

} // namespace tessera::text
