// AlignedText.h - text that remembers where each of its bytes came from.
//
// Normalizers rewrite text (NFC, " " -> "▁"), pre-tokenizers cut it and the
// byte-level mapping re-encodes it; every byte keeps the byte range of the
// original input it stands for, so that each token's offsets point into the
// caller's string (assistant-only masks are computed from them). Hugging
// Face's NormalizedString keeps the same alignments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text {

// A byte range [start, end) of the original input.
struct Span {
  uint32_t start = 0, end = 0;
};

struct AlignedText {
  std::string text;
  std::vector<Span> align; // one per byte of text

  // s itself: byte i stands for [base + i, base + i + 1).
  static AlignedText original(std::string_view s, uint32_t base = 0);
  bool empty() const { return text.empty(); }
  // Bytes [b, e) with their alignment.
  AlignedText slice(size_t b, size_t e) const;
  // Appends bytes that all stand for `source`.
  void append(std::string_view bytes, Span source);
  void appendFrom(const AlignedText &other, size_t b, size_t e);
  // The original range covered by bytes [b, e).
  Span spanOf(size_t b, size_t e) const;
};

} // namespace tessera::text
