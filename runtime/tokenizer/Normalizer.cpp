#include "runtime/tokenizer/Normalizer.h"

#include "runtime/tokenizer/Regex.h"
#include "runtime/tokenizer/Utf8.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace tessera::text {

namespace {

using json = nlohmann::json;

// Unicode normalization forms through utf8proc. The input is cut before
// every ASCII byte (an ASCII character never composes with what precedes
// it, so the form of the whole is the concatenation of the forms of the
// pieces); a piece the form leaves unchanged keeps its byte alignment, a
// changed piece maps every output byte to the whole piece.
class UnicodeForm : public Normalizer {
public:
  explicit UnicodeForm(utf8proc_option_t options) : options_(options) {}
  AlignedText apply(const AlignedText &in) const override {
    AlignedText out;
    const std::string &s = in.text;
    size_t i = 0;
    while (i < s.size()) {
      // A piece: one ASCII byte (or none at the start) and the non-ASCII run after it.
      size_t j = i;
      if (static_cast<unsigned char>(s[j]) < 0x80) ++j;
      while (j < s.size() && static_cast<unsigned char>(s[j]) >= 0x80) ++j;
      if (j == i + 1 && !(options_ & UTF8PROC_CASEFOLD)) { // plain ASCII
        out.appendFrom(in, i, j);
        i = j;
        continue;
      }
      utf8proc_uint8_t *mapped = nullptr;
      utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t *>(s.data() + i),
                                        utf8proc_ssize_t(j - i), &mapped, options_);
      if (n < 0) throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
      std::string_view result(reinterpret_cast<const char *>(mapped), size_t(n));
      if (result == std::string_view(s).substr(i, j - i)) out.appendFrom(in, i, j);
      else out.append(result, in.spanOf(i, j));
      std::free(mapped);
      i = j;
    }
    return out;
  }

private:
  utf8proc_option_t options_;
};

class Lowercase : public Normalizer {
public:
  AlignedText apply(const AlignedText &in) const override {
    AlignedText out;
    size_t i = 0;
    while (i < in.text.size()) {
      size_t b = i;
      char32_t cp = decodeUtf8(in.text, i);
      std::string lower;
      appendUtf8(lower, char32_t(utf8proc_tolower(utf8proc_int32_t(cp))));
      if (i - b == lower.size()) out.appendFrom(in, b, i); // same length: keep byte alignment
      else out.append(lower, in.spanOf(b, i));
    }
    return out;
  }
};

class Replace : public Normalizer {
public:
  Replace(const json &j, const std::string &where) {
    const json &p = j.at("pattern");
    if (p.contains("String")) literal_ = p.at("String").get<std::string>();
    else if (p.contains("Regex")) regex_ = std::make_unique<Regex>(p.at("Regex").get<std::string>(), where);
    else throw std::runtime_error(where + ": Replace pattern is neither String nor Regex");
    content_ = j.at("content").get<std::string>();
  }
  AlignedText apply(const AlignedText &in) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    if (regex_) {
      matches = regex_->findAll(in.text);
    } else if (!literal_.empty()) {
      for (size_t p = in.text.find(literal_); p != std::string::npos; p = in.text.find(literal_, p + literal_.size()))
        matches.emplace_back(p, p + literal_.size());
    }
    AlignedText out;
    size_t last = 0;
    for (auto [b, e] : matches) {
      out.appendFrom(in, last, b);
      out.append(content_, in.spanOf(b, e));
      last = e;
    }
    out.appendFrom(in, last, in.text.size());
    return out;
  }

private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

class Prepend : public Normalizer {
public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  AlignedText apply(const AlignedText &in) const override {
    if (in.empty()) return in;
    AlignedText out;
    out.append(prefix_, {in.align[0].start, in.align[0].start});
    out.appendFrom(in, 0, in.text.size());
    return out;
  }

private:
  std::string prefix_;
};

class Strip : public Normalizer {
public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  AlignedText apply(const AlignedText &in) const override {
    size_t b = 0, e = in.text.size();
    if (left_)
      while (b < e) {
        size_t k = b;
        if (!isWhiteSpace(decodeUtf8(in.text, k))) break;
        b = k;
      }
    if (right_)
      while (e > b) {
        size_t s = e - 1;
        while (s > b && (static_cast<unsigned char>(in.text[s]) & 0xC0) == 0x80) --s;
        size_t k = s;
        if (!isWhiteSpace(decodeUtf8(in.text, k))) break;
        e = s;
      }
    return in.slice(b, e);
  }

private:
  bool left_, right_;
};

class Sequence : public Normalizer {
public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  AlignedText apply(const AlignedText &in) const override {
    AlignedText t = in;
    for (const auto &s : steps_) t = s->apply(t);
    return t;
  }

private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

} // namespace

std::unique_ptr<Normalizer> makeNormalizer(const json &j, const std::string &where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  const std::string at = where + " (normalizer " + type + ")";
  if (type == "NFC") return std::make_unique<UnicodeForm>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::make_unique<UnicodeForm>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (type == "NFKC")
    return std::make_unique<UnicodeForm>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::make_unique<UnicodeForm>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Replace") return std::make_unique<Replace>(j, at);
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Strip") return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const json &s : j.at("normalizers"))
      if (auto n = makeNormalizer(s, where)) steps.push_back(std::move(n));
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw std::runtime_error(where + ": unsupported normalizer type '" + type +
                           "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence)");
}

} // namespace tessera::text
