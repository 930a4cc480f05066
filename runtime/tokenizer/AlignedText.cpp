#include "runtime/tokenizer/AlignedText.h"

#include <algorithm>

namespace tessera::text {

AlignedText AlignedText::original(std::string_view s, uint32_t base) {
  AlignedText t;
  t.text.assign(s);
  t.align.resize(s.size());
  for (size_t i = 0; i < s.size(); ++i) t.align[i] = {base + uint32_t(i), base + uint32_t(i) + 1};
  return t;
}

AlignedText AlignedText::slice(size_t b, size_t e) const {
  AlignedText t;
  t.text = text.substr(b, e - b);
  t.align.assign(align.begin() + long(b), align.begin() + long(e));
  return t;
}

void AlignedText::append(std::string_view bytes, Span source) {
  text.append(bytes);
  align.insert(align.end(), bytes.size(), source);
}

void AlignedText::appendFrom(const AlignedText &other, size_t b, size_t e) {
  text.append(other.text, b, e - b);
  align.insert(align.end(), other.align.begin() + long(b), other.align.begin() + long(e));
}

Span AlignedText::spanOf(size_t b, size_t e) const {
  if (b >= e || b >= align.size()) return b < align.size() ? Span{align[b].start, align[b].start} : Span{};
  Span s = align[b];
  for (size_t i = b + 1; i < e; ++i) {
    s.start = std::min(s.start, align[i].start);
    s.end = std::max(s.end, align[i].end);
  }
  return s;
}

} // namespace tessera::text
