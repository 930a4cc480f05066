// ByteLevel.h - GPT-2's reversible byte <-> printable-character mapping used
// by byte-level BPE (Qwen, Llama 3): every byte becomes one code point, so the
// vocabulary is over characters and any byte sequence is representable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::text {

// The UTF-8 of the character standing for byte b.
const std::string &byteLevelChar(uint8_t b);
// The byte a character stands for, or -1 when it stands for none.
int byteLevelByte(char32_t c);

// The Hugging Face ByteLevel decoder: each token's characters back to bytes
// (a token with a character outside the table keeps its own UTF-8).
std::string byteLevelDecode(std::string_view token);

} // namespace tessera::text
