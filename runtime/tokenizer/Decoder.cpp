#include "runtime/tokenizer/Decoder.h"

#include "runtime/tokenizer/ByteLevel.h"
#include "runtime/tokenizer/Utf8.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <stdexcept>

namespace tessera::text {

namespace {

using json = nlohmann::json;

class ByteLevelDec : public Decoder {
public:
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const std::string &t : tokens) bytes += byteLevelDecode(t);
    return {utf8Lossy(bytes)};
  }
};

class ReplaceDec : public Decoder {
public:
  ReplaceDec(const json &j, const std::string &where) {
    const json &p = j.at("pattern");
    if (!p.contains("String")) throw std::runtime_error(where + ": only String patterns are supported in a Replace decoder");
    from_ = p.at("String").get<std::string>();
    to_ = j.at("content").get<std::string>();
  }
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    for (std::string &t : tokens) t = replaceAll(t, from_, to_);
    return tokens;
  }

private:
  std::string from_, to_;
};

class ByteFallbackDec : public Decoder {
public:
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (!count) return;
      if (firstInvalidUtf8(bytes) == std::string::npos) out.push_back(bytes);
      else
        for (size_t k = 0; k < count; ++k) out.push_back("\xEF\xBF\xBD");
      bytes.clear();
      count = 0;
    };
    for (const std::string &t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        bytes += char(std::stoi(t.substr(3, 2), nullptr, 16));
        ++count;
      } else {
        flush();
        out.push_back(t);
      }
    }
    flush();
    return out;
  }
};

class FuseDec : public Decoder {
public:
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    std::string all;
    for (const std::string &t : tokens) all += t;
    return {all};
  }
};

class StripDec : public Decoder {
public:
  explicit StripDec(const json &j)
      : content_(j.at("content").get<std::string>()), start_(j.value("start", 0)), stop_(j.value("stop", 0)) {}
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    for (std::string &t : tokens) {
      for (int k = 0; k < start_ && t.compare(0, content_.size(), content_) == 0; ++k) t.erase(0, content_.size());
      for (int k = 0; k < stop_ && t.size() >= content_.size() &&
                      t.compare(t.size() - content_.size(), content_.size(), content_) == 0;
           ++k)
        t.erase(t.size() - content_.size());
    }
    return tokens;
  }

private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDec : public Decoder {
public:
  explicit MetaspaceDec(const json &j) {
    replacement_ = j.value("replacement", "\xE2\x96\x81");
    std::string scheme = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>()
                                                      : (j.value("add_prefix_space", true) ? "always" : "never");
    stripFirst_ = scheme != "never";
  }
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = replaceAll(tokens[i], replacement_, " ");
      if (i == 0 && stripFirst_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
    return tokens;
  }

private:
  std::string replacement_;
  bool stripFirst_;
};

class SequenceDec : public Decoder {
public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> apply(std::vector<std::string> tokens) const override {
    for (const auto &s : steps_) tokens = s->apply(std::move(tokens));
    return tokens;
  }

private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

} // namespace

// Each maximal subpart of an ill-formed sequence becomes one U+FFFD (Unicode
// 3.9 "U+FFFD substitution of maximal subparts", what Rust's
// String::from_utf8_lossy, which `tokenizers` uses, and Python do): a lead
// byte followed by the continuation bytes that can still complete it.
std::string utf8Lossy(const std::string &bytes) {
  auto cont = [&](size_t k, unsigned lo, unsigned hi) {
    if (k >= bytes.size()) return false;
    unsigned c = static_cast<unsigned char>(bytes[k]);
    return c >= lo && c <= hi;
  };
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned b = static_cast<unsigned char>(bytes[i]);
    size_t n = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    // The second byte's range depends on the lead (no overlongs, surrogates or values past U+10FFFF).
    unsigned lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80, hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
    size_t k = i + 1;
    if (n > 1 && cont(k, lo, hi)) ++k;
    while (n > 1 && k > i + 1 && k < i + n && cont(k, 0x80, 0xBF)) ++k;
    if (n >= 1 && k == i + n) out.append(bytes, i, n);
    else out += "\xEF\xBF\xBD";
    i = n == 0 ? i + 1 : k;
  }
  return out;
}

std::unique_ptr<Decoder> makeDecoder(const json &j, const std::string &where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  const std::string at = where + " (decoder " + type + ")";
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "Replace") return std::make_unique<ReplaceDec>(j, at);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip") return std::make_unique<StripDec>(j);
  if (type == "Metaspace") return std::make_unique<MetaspaceDec>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const json &s : j.at("decoders"))
      if (auto d = makeDecoder(s, where)) steps.push_back(std::move(d));
    return std::make_unique<SequenceDec>(std::move(steps));
  }
  throw std::runtime_error(where + ": unsupported decoder type '" + type +
                           "' (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)");
}

} // namespace tessera::text
