// Utf8.h - UTF-8 decoding and encoding, the little the tokenizer and the
// chat-template interpreter need (code points, lengths, validation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::text {

// Length in bytes of the UTF-8 sequence starting with byte b (1 for
// continuation or invalid bytes, so that loops always advance).
inline size_t utf8Length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) return 2;
  if ((b >> 4) == 0xE) return 3;
  if ((b >> 3) == 0x1E) return 4;
  return 1;
}

// Decodes the code point at s[i] and advances i (an invalid byte decodes to U+FFFD).
char32_t decodeUtf8(std::string_view s, size_t &i);

void appendUtf8(std::string &out, char32_t cp);

// Offset of the first invalid UTF-8 byte, or npos when s is valid.
size_t firstInvalidUtf8(std::string_view s);

// Number of code points.
size_t codePointCount(std::string_view s);

// Unicode White_Space (Oniguruma's \s): what lstrip/rstrip and Strip remove.
bool isWhiteSpace(char32_t c);

// s with every occurrence of `from` replaced by `to`.
std::string replaceAll(std::string_view s, std::string_view from, std::string_view to);

} // namespace tessera::text
