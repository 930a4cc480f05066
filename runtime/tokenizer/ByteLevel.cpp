#include "runtime/tokenizer/ByteLevel.h"

#include "runtime/tokenizer/Utf8.h"

#include <array>

namespace tessera::text {

namespace {

struct Tables {
  std::array<std::string, 256> toChar;
  std::array<int, 512> toByte; // code points used are < 324
  Tables() {
    toByte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = printable ? char32_t(b) : char32_t(256 + extra++);
      appendUtf8(toChar[size_t(b)], c);
      toByte[size_t(c)] = b;
    }
  }
};

const Tables &tables() {
  static const Tables t;
  return t;
}

} // namespace

const std::string &byteLevelChar(uint8_t b) { return tables().toChar[b]; }

int byteLevelByte(char32_t c) { return c < 512 ? tables().toByte[size_t(c)] : -1; }

std::string byteLevelDecode(std::string_view token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    int b = byteLevelByte(decodeUtf8(token, i));
    if (b < 0) return std::string(token);
    out += char(b);
  }
  return out;
}

} // namespace tessera::text
