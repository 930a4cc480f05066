#include "runtime/tokenizer/Bpe.h"

#include "runtime/tokenizer/Utf8.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <queue>
#include <stdexcept>

namespace tessera::text {

using json = nlohmann::json;

BpeModel::BpeModel(const json &j, const std::string &where) {
  const json &vocab = j.at("vocab");
  if (!vocab.is_object()) throw std::runtime_error(where + ": model.vocab is not an object");
  vocab_.reserve(vocab.size());
  int32_t maxId = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
      throw std::runtime_error(where + ": model.vocab[\"" + it.key() + "\"] is not a token id");
    // Ids index a table: a sparse id far beyond the vocabulary's size is
    // damage, not a model (and must not allocate gigabytes).
    int64_t raw = it.value().get<int64_t>();
    if (raw >= std::max<int64_t>(int64_t(1) << 20, 4 * int64_t(vocab.size())))
      throw std::runtime_error(where + ": model.vocab[\"" + it.key() + "\"] = " + std::to_string(raw) +
                               " is far beyond the vocabulary's " + std::to_string(vocab.size()) + " tokens");
    int32_t id = int32_t(raw);
    vocab_.emplace(it.key(), id);
    maxId = std::max(maxId, id);
  }
  idToToken_.assign(size_t(maxId + 1), std::string());
  for (const auto &[token, id] : vocab_) idToToken_[size_t(id)] = token;

  if (j.contains("unk_token") && j.at("unk_token").is_string()) {
    std::string unk = j.at("unk_token").get<std::string>();
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw std::runtime_error(where + ": model.unk_token '" + unk + "' is not in the vocabulary");
    unk_ = it->second;
  }
  auto flag = [&](const char *key) { return j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>(); };
  auto text = [&](const char *key) {
    return j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : std::string();
  };
  fuseUnk_ = flag("fuse_unk");
  byteFallback_ = flag("byte_fallback");
  ignoreMerges_ = flag("ignore_merges");
  prefix_ = text("continuing_subword_prefix");
  suffix_ = text("end_of_word_suffix");
  if (j.contains("dropout") && j.at("dropout").is_number() && j.at("dropout").get<double>() > 0)
    throw std::runtime_error(where + ": BPE dropout is a training-time option that tessera does not apply");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(name);
    byteTokens_[b] = it == vocab_.end() ? -1 : it->second;
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs.
  const json &merges = j.at("merges");
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const json &m : merges) {
    std::string a, b;
    if (m.is_string()) {
      const std::string &s = m.get_ref<const std::string &>();
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) throw std::runtime_error(where + ": merge " + std::to_string(rank) + " '" + s + "' has no space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw std::runtime_error(where + ": merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    std::string merged = a + (prefix_.empty() || b.compare(0, prefix_.size(), prefix_) ? b : b.substr(prefix_.size()));
    auto im = vocab_.find(merged);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      throw std::runtime_error(where + ": merge " + std::to_string(rank) + " ('" + a + "', '" + b +
                               "') uses a token that is not in the vocabulary");
    merges_.emplace((uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second), std::pair{rank, im->second});
    ++rank;
  }
}

std::optional<int32_t> BpeModel::tokenToId(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string &BpeModel::idToToken(int32_t id) const {
  static const std::string none;
  return id >= 0 && size_t(id) < idToToken_.size() ? idToToken_[size_t(id)] : none;
}

std::vector<std::pair<int32_t, std::pair<uint32_t, uint32_t>>> BpeModel::encodeWord(std::string_view w) const {
  struct Symbol {
    int32_t id;
    uint32_t start, len;
    int prev, next;
  };
  std::vector<Symbol> sym;
  std::optional<std::pair<int32_t, std::pair<uint32_t, uint32_t>>> unk; // pending (fused) unknown
  auto push = [&](int32_t id, uint32_t start, uint32_t len) {
    sym.push_back({id, start, len, int(sym.size()) - 1, int(sym.size()) + 1});
  };
  auto flushUnk = [&] {
    if (unk) push(unk->first, unk->second.first, unk->second.second);
    unk.reset();
  };
  size_t i = 0;
  while (i < w.size()) {
    size_t b = i;
    i += utf8Length(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    std::string s(w.substr(b, i - b));
    if (!prefix_.empty() && b > 0) s = prefix_ + s;
    if (!suffix_.empty() && i == w.size()) s += suffix_;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      flushUnk();
      push(it->second, uint32_t(b), uint32_t(i - b));
      continue;
    }
    if (byteFallback_) {
      bool all = true;
      for (size_t k = b; k < i; ++k) all = all && byteTokens_[static_cast<unsigned char>(w[k])] >= 0;
      if (all) {
        flushUnk();
        for (size_t k = b; k < i; ++k) push(byteTokens_[static_cast<unsigned char>(w[k])], uint32_t(k), 1);
        continue;
      }
    }
    if (unk_) {
      if (unk && fuseUnk_) {
        unk->second.second = uint32_t(i) - unk->second.first;
      } else {
        flushUnk();
        unk = std::pair{*unk_, std::pair{uint32_t(b), uint32_t(i - b)}};
      }
    }
  }
  flushUnk();
  if (!sym.empty()) sym.back().next = -1;

  // Merge the lowest-ranked adjacent pair first, the leftmost among equals.
  struct Merge {
    int pos;
    int32_t rank, id;
    bool operator<(const Merge &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Merge> queue;
  auto pairOf = [&](int a, int b) -> const std::pair<int32_t, int32_t> * {
    auto it = merges_.find((uint64_t(uint32_t(sym[size_t(a)].id)) << 32) | uint32_t(sym[size_t(b)].id));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int k = 0; k + 1 < int(sym.size()); ++k)
    if (auto m = pairOf(k, k + 1)) queue.push({k, m->first, m->second});
  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol &left = sym[size_t(top.pos)];
    if (left.len == 0 || left.next < 0) continue;
    auto m = pairOf(top.pos, left.next);
    if (!m || m->second != top.id) continue; // stale: a neighbour merged meanwhile
    Symbol &right = sym[size_t(left.next)];
    left.id = top.id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) sym[size_t(left.next)].prev = top.pos;
    if (left.prev >= 0)
      if (auto p = pairOf(left.prev, top.pos)) queue.push({left.prev, p->first, p->second});
    if (left.next >= 0)
      if (auto n = pairOf(top.pos, left.next)) queue.push({top.pos, n->first, n->second});
  }
  std::vector<std::pair<int32_t, std::pair<uint32_t, uint32_t>>> out;
  for (const Symbol &s : sym)
    if (s.len) out.push_back({s.id, {s.start, s.len}});
  return out;
}

void BpeModel::tokenize(const AlignedText &word, std::vector<Token> &out) const {
  if (word.empty()) return;
  if (ignoreMerges_) {
    auto it = vocab_.find(word.text);
    if (it != vocab_.end()) {
      out.push_back({it->second, word.spanOf(0, word.text.size())});
      return;
    }
  }
  std::vector<std::pair<int32_t, std::pair<uint32_t, uint32_t>>> pieces;
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = cache_.find(word.text);
    if (it != cache_.end()) pieces = it->second;
  }
  if (pieces.empty()) {
    pieces = encodeWord(word.text);
    if (word.text.size() < 256) { // long words rarely repeat
      std::lock_guard<std::mutex> lock(cacheMutex_);
      if (cache_.size() > 200000) cache_.clear();
      cache_.emplace(word.text, pieces);
    }
  }
  for (const auto &[id, range] : pieces) out.push_back({id, word.spanOf(range.first, range.first + range.second)});
}

} // namespace tessera::text
