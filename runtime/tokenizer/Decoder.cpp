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

std::string utf8Lossy(const std::string &bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    size_t bad = firstInvalidUtf8(std::string_view(bytes).substr(i));
    if (bad == std::string_view::npos) {
      out.append(bytes, i, std::string::npos);
      break;
    }
    out.append(bytes, i, bad);
    out += "\xEF\xBF\xBD";
    i += bad;
    // Skip the lead byte and the continuation bytes of its truncated sequence.
    size_t n = utf8Length(static_cast<unsigned char>(bytes[i]));
    size_t k = i + 1;
    while (n > 1 && k < bytes.size() && k < i + n && (static_cast<unsigned char>(bytes[k]) & 0xC0) == 0x80) ++k;
    i = k;
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
