// Regex.h - the pre-tokenizer and Replace patterns of tokenizer.json, run
// with PCRE2 (UTF + UCP, JIT). Hugging Face compiles them with Oniguruma;
// the only difference these patterns meet is \s, which in Oniguruma is
// Unicode White_Space (it includes U+0085) and in PCRE2 is \p{Xps}, so \s
// and \S are rewritten to include U+0085 (translateOnigurumaPattern).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::text {

std::string translateOnigurumaPattern(std::string_view pattern);

class Regex {
public:
  // Throws std::runtime_error("<where>: cannot compile the regex ...: <reason> at offset N").
  Regex(std::string_view pattern, const std::string &where);
  ~Regex();
  Regex(const Regex &) = delete;
  Regex &operator=(const Regex &) = delete;
  // Every non-overlapping match in s (valid UTF-8), as byte ranges, left to right.
  std::vector<std::pair<size_t, size_t>> findAll(std::string_view s) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace tessera::text
