// Decoder.h - tokenizer.json's "decoder": token strings back to text.
// ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence, with
// Hugging Face's semantics (invalid UTF-8 becomes U+FFFD).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tessera::text {

class Decoder {
public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> apply(std::vector<std::string> tokens) const = 0;
};

// nullptr for none (tokens are concatenated). Throws "<where>: unsupported decoder type 'X'".
std::unique_ptr<Decoder> makeDecoder(const nlohmann::json &j, const std::string &where);

// Bytes to valid UTF-8, each invalid sequence replaced by U+FFFD (Rust's from_utf8_lossy).
std::string utf8Lossy(const std::string &bytes);

} // namespace tessera::text
