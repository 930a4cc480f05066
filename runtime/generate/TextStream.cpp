#include "runtime/generate/TextStream.h"

namespace tessera::generate {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD"; // U+FFFD

// Where the stable part of `s` ends: before a trailing run of U+FFFD, and
// (clean-up on) before the last space, or before " ' " ending there, the one
// clean-up rule that spans two spaces.
size_t stableEnd(const std::string &s, bool cleanUp) {
  size_t end = s.size();
  while (end >= kReplacement.size() && s.compare(end - kReplacement.size(), kReplacement.size(), kReplacement) == 0)
    end -= kReplacement.size();
  if (cleanUp) {
    size_t space = s.rfind(' ', end == 0 ? 0 : end - 1);
    if (space != std::string::npos && end > 0) {
      if (space >= 2 && s[space - 1] == '\'' && s[space - 2] == ' ') space -= 2;
      end = space;
    }
  }
  return end;
}

} // namespace

// Returned text stays returned: the stream continues at the byte offset
// where it stopped (moved to the next character boundary when a later token
// rewrote the text before it, which only an invalid byte sequence can).
std::string TextStream::emitUpTo(const std::string &decoded, size_t end) {
  size_t start = offset_;
  while (start < decoded.size() && (static_cast<unsigned char>(decoded[start]) & 0xC0) == 0x80) ++start;
  if (end <= start) return "";
  std::string out = decoded.substr(start, end - start);
  offset_ = end;
  printed_ += out;
  return out;
}

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  std::string decoded = tok_.decode(ids_, skipSpecial_);
  return emitUpTo(decoded, stableEnd(decoded, tok_.cleansUpSpaces()));
}

std::string TextStream::finish() {
  std::string decoded = tok_.decode(ids_, skipSpecial_);
  return emitUpTo(decoded, decoded.size());
}

} // namespace tessera::generate
