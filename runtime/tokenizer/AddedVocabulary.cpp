#include "runtime/tokenizer/AddedVocabulary.h"

#include "runtime/tokenizer/Utf8.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <stdexcept>

namespace tessera::text {

using json = nlohmann::json;

// A byte trie over token contents; node 0 is the root.
struct AddedVocabulary::Trie {
  struct Node {
    std::map<unsigned char, int> next;
    int token = -1; // index into tokens_
  };
  std::vector<Node> nodes{1};
  bool firstByte[256] = {};
  void add(const std::string &s, int token) {
    int n = 0;
    for (unsigned char c : s) {
      auto it = nodes[size_t(n)].next.find(c);
      if (it == nodes[size_t(n)].next.end()) {
        nodes[size_t(n)].next[c] = int(nodes.size());
        n = int(nodes.size());
        nodes.emplace_back();
      } else {
        n = it->second;
      }
    }
    nodes[size_t(n)].token = token;
    firstByte[static_cast<unsigned char>(s[0])] = true;
  }
  // Longest token starting at s[i]: (token index, length) or (-1, 0).
  std::pair<int, size_t> longestAt(const std::string &s, size_t i) const {
    int n = 0, best = -1;
    size_t bestLen = 0;
    for (size_t k = i; k < s.size(); ++k) {
      auto it = nodes[size_t(n)].next.find(static_cast<unsigned char>(s[k]));
      if (it == nodes[size_t(n)].next.end()) break;
      n = it->second;
      if (nodes[size_t(n)].token >= 0) {
        best = nodes[size_t(n)].token;
        bestLen = k + 1 - i;
      }
    }
    return {best, bestLen};
  }
};

AddedVocabulary::AddedVocabulary() : raw_(std::make_unique<Trie>()), normalized_(std::make_unique<Trie>()) {}
AddedVocabulary::~AddedVocabulary() = default;
AddedVocabulary::AddedVocabulary(AddedVocabulary &&) noexcept = default;
AddedVocabulary &AddedVocabulary::operator=(AddedVocabulary &&) noexcept = default;

void AddedVocabulary::load(const json &added, const std::string &where) {
  if (added.is_null()) return;
  if (!added.is_array()) throw std::runtime_error(where + ": added_tokens is not an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const json &t = added[i];
    std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t.at("id").is_number_integer() ||
        !t.at("content").is_string())
      throw std::runtime_error(at + " needs an integer \"id\" and a string \"content\"");
    AddedToken a;
    a.id = int32_t(t.at("id").get<int64_t>());
    a.content = t.at("content").get<std::string>();
    if (a.content.empty()) throw std::runtime_error(at + " has an empty content");
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.singleWord = t.value("single_word", false);
    a.normalized = t.value("normalized", !a.special);
    size_t index = tokens_.size();
    byId_[a.id] = index;
    byContent_[a.content] = index;
    (a.normalized ? normalized_ : raw_)->add(a.content, int(index));
    tokens_.push_back(std::move(a));
  }
}

const AddedToken *AddedVocabulary::byId(int32_t id) const {
  auto it = byId_.find(id);
  return it == byId_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken *AddedVocabulary::byContent(const std::string &content) const {
  auto it = byContent_.find(content);
  return it == byContent_.end() ? nullptr : &tokens_[it->second];
}

namespace {

bool isWordChar(char32_t c) {
  if (c == '_') return true;
  utf8proc_category_t cat = utf8proc_category(utf8proc_int32_t(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) ||
         (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME);
}

// The code point that ends just before byte i.
char32_t codePointBefore(const std::string &s, size_t i, size_t &start) {
  start = i - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t k = start;
  return decodeUtf8(s, k);
}

} // namespace

std::vector<Segment> AddedVocabulary::split(const AlignedText &in, bool normalizedSet) const {
  const Trie &trie = normalizedSet ? *normalized_ : *raw_;
  const std::string &s = in.text;
  std::vector<Segment> out;
  size_t textStart = 0, i = 0;
  while (i < s.size()) {
    if (!trie.firstByte[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    auto [index, len] = trie.longestAt(s, i);
    if (index < 0) {
      ++i;
      continue;
    }
    const AddedToken &t = tokens_[size_t(index)];
    size_t b = i, e = i + len;
    if (t.singleWord) {
      size_t before = 0, k = e;
      bool wordBefore = b > textStart && isWordChar(codePointBefore(s, b, before));
      bool wordAfter = e < s.size() && isWordChar(decodeUtf8(s, k));
      if (wordBefore || wordAfter) {
        ++i;
        continue;
      }
    }
    if (t.lstrip)
      while (b > textStart) {
        size_t start = 0;
        if (!isWhiteSpace(codePointBefore(s, b, start))) break;
        b = start;
      }
    if (t.rstrip)
      while (e < s.size()) {
        size_t k = e;
        if (!isWhiteSpace(decodeUtf8(s, k))) break;
        e = k;
      }
    if (b > textStart) out.push_back({in.slice(textStart, b), -1});
    out.push_back({in.slice(b, e), t.id});
    textStart = i = e;
  }
  if (textStart < s.size()) out.push_back({in.slice(textStart, s.size()), -1});
  return out;
}

} // namespace tessera::text
