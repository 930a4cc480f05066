#include "runtime/tokenizer/PreTokenizer.h"

#include "runtime/tokenizer/ByteLevel.h"
#include "runtime/tokenizer/Regex.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace tessera::text {

namespace {

using json = nlohmann::json;
using Matches = std::vector<std::pair<size_t, size_t>>;

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parseBehavior(const std::string &s, const std::string &where) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  throw std::runtime_error(where + ": unknown split behavior '" + s + "'");
}

Matches literalMatches(const std::string &text, const std::string &needle) {
  Matches m;
  if (needle.empty()) return m;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size()))
    m.emplace_back(p, p + needle.size());
  return m;
}

// Hugging Face's NormalizedString::split: the matches and the gaps between
// them, combined as the behavior says.
void splitPiece(const AlignedText &t, const Matches &matches, Behavior behavior, bool invert,
                std::vector<AlignedText> &out) {
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) segs.push_back({prev, b, false});
    segs.push_back({b, e, true});
    prev = e;
  }
  if (prev != t.text.size()) segs.push_back({prev, t.text.size(), false});
  if (invert)
    for (Seg &s : segs) s.match = !s.match;
  std::vector<Seg> kept;
  bool previousMatch = false;
  switch (behavior) {
  case Behavior::Removed:
    for (const Seg &s : segs)
      if (!s.match) kept.push_back(s);
    break;
  case Behavior::Isolated:
    kept = segs;
    break;
  case Behavior::MergedWithPrevious:
    for (const Seg &s : segs) {
      if (s.match && !previousMatch && !kept.empty()) kept.back().e = s.e;
      else kept.push_back(s);
      previousMatch = s.match;
    }
    break;
  case Behavior::MergedWithNext:
    for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
      if (it->match && !previousMatch && !kept.empty()) kept.back().b = it->b;
      else kept.push_back(*it);
      previousMatch = it->match;
    }
    std::reverse(kept.begin(), kept.end());
    break;
  case Behavior::Contiguous:
    for (size_t i = 0; i < segs.size(); ++i) {
      if (i > 0 && segs[i].match == previousMatch) kept.back().e = segs[i].e;
      else kept.push_back(segs[i]);
      previousMatch = segs[i].match;
    }
    break;
  }
  for (const Seg &s : kept)
    if (s.e > s.b) out.push_back(t.slice(s.b, s.e));
}

class Split : public PreTokenizer {
public:
  Split(const json &j, const std::string &where) {
    const json &p = j.at("pattern");
    if (p.contains("String")) literal_ = p.at("String").get<std::string>();
    else if (p.contains("Regex")) regex_ = std::make_unique<Regex>(p.at("Regex").get<std::string>(), where);
    else throw std::runtime_error(where + ": Split pattern is neither String nor Regex");
    behavior_ = parseBehavior(j.value("behavior", "Isolated"), where);
    invert_ = j.value("invert", false);
  }
  void apply(std::vector<AlignedText> &pieces) const override {
    std::vector<AlignedText> out;
    for (const AlignedText &t : pieces)
      splitPiece(t, regex_ ? regex_->findAll(t.text) : literalMatches(t.text, literal_), behavior_, invert_, out);
    pieces = std::move(out);
  }

private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  Behavior behavior_ = Behavior::Isolated;
  bool invert_ = false;
};

const char *kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevelPre : public PreTokenizer {
public:
  ByteLevelPre(const json &j, const std::string &where)
      : addPrefixSpace_(j.value("add_prefix_space", true)) {
    if (j.value("use_regex", true)) regex_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void apply(std::vector<AlignedText> &pieces) const override {
    std::vector<AlignedText> split;
    for (AlignedText &t : pieces) {
      if (addPrefixSpace_ && !t.text.empty() && t.text[0] != ' ') {
        AlignedText p;
        p.append(" ", {t.align[0].start, t.align[0].start});
        p.appendFrom(t, 0, t.text.size());
        t = std::move(p);
      }
      if (regex_) splitPiece(t, regex_->findAll(t.text), Behavior::Isolated, false, split);
      else if (!t.empty()) split.push_back(std::move(t));
    }
    // Every byte becomes its printable character (one or two UTF-8 bytes).
    pieces.clear();
    for (const AlignedText &t : split) {
      AlignedText mapped;
      for (size_t i = 0; i < t.text.size(); ++i)
        mapped.append(byteLevelChar(static_cast<uint8_t>(t.text[i])), t.align[i]);
      pieces.push_back(std::move(mapped));
    }
  }

private:
  bool addPrefixSpace_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace : public PreTokenizer {
public:
  explicit Metaspace(const json &j) {
    replacement_ = j.value("replacement", "\xE2\x96\x81");
    if (j.contains("prepend_scheme")) scheme_ = j.at("prepend_scheme").get<std::string>();
    else scheme_ = j.value("add_prefix_space", true) ? "always" : "never";
    split_ = j.value("split", true);
  }
  void apply(std::vector<AlignedText> &pieces) const override {
    std::vector<AlignedText> out;
    for (const AlignedText &t : pieces) {
      AlignedText r;
      bool prepend = scheme_ == "always" || (scheme_ == "first" && !t.empty() && t.align[0].start == 0);
      if (prepend && !t.empty() && t.text.compare(0, replacement_.size(), replacement_) != 0 && t.text[0] != ' ')
        r.append(replacement_, {t.align[0].start, t.align[0].start});
      for (size_t i = 0; i < t.text.size(); ++i) {
        if (t.text[i] == ' ') r.append(replacement_, t.align[i]);
        else r.appendFrom(t, i, i + 1);
      }
      if (split_) splitPiece(r, literalMatches(r.text, replacement_), Behavior::MergedWithNext, false, out);
      else if (!r.empty()) out.push_back(std::move(r));
    }
    pieces = std::move(out);
  }

private:
  std::string replacement_, scheme_;
  bool split_ = true;
};

class Sequence : public PreTokenizer {
public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<AlignedText> &pieces) const override {
    for (const auto &s : steps_) s->apply(pieces);
  }

private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

} // namespace

std::unique_ptr<PreTokenizer> makePreTokenizer(const json &j, const std::string &where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  const std::string at = where + " (pre_tokenizer " + type + ")";
  if (type == "Split") return std::make_unique<Split>(j, at);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPre>(j, at);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json &s : j.at("pretokenizers"))
      if (auto p = makePreTokenizer(s, where)) steps.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw std::runtime_error(where + ": unsupported pre_tokenizer type '" + type +
                           "' (supported: Split, ByteLevel, Metaspace, Sequence)");
}

} // namespace tessera::text
