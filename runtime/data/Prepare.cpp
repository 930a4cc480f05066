#include "runtime/data/Prepare.h"

#include "runtime/chat/ChatTemplate.h"
#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

namespace tessera::data {

using json = nlohmann::ordered_json;
constexpr int32_t kIgnore = -100;

namespace {

std::string jsonMessage(const std::string &what) {
  size_t close = what.find("] ");
  return !what.empty() && what[0] == '[' && close != std::string::npos ? what.substr(close + 2) : what;
}

bool overlaps(const text::Span &s, size_t b, size_t e) { return s.start < e && b < s.end; }

} // namespace

void addSpecialTokenVariables(const text::Tokenizer &tok, json &variables) {
  for (auto [key, value] : {std::pair{"bos_token", tok.bosToken()}, {"eos_token", tok.eosToken()},
                            {"pad_token", tok.padToken()}, {"unk_token", tok.unkToken()}})
    if (!value.empty()) variables[key] = value;
}

std::string PrepareStats::summary() const {
  std::string s = std::to_string(lines) + " samples, " + std::to_string(rows) + " rows, " + std::to_string(tokens) +
                  " tokens (" + std::to_string(counted) + " counted in the loss)";
  if (skipped) s += ", " + std::to_string(skipped) + " bad lines skipped";
  if (truncated) s += ", " + std::to_string(truncated) + " truncated to --seq";
  if (dropped) s += ", " + std::to_string(dropped) + " longer than --seq dropped";
  return s;
}

Preparer::Preparer(const text::Tokenizer &tokenizer, const PrepareOptions &options) : tok_(tokenizer), o_(options) {
  if (o_.seq < 2) throw PrepareError("--seq must be at least 2");
  if (o_.stride < 0) throw PrepareError("--stride must be positive");
  if (!tok_.chatTemplate().empty()) {
    try {
      template_ = std::make_unique<chat::ChatTemplate>(tok_.chatTemplate());
    } catch (const chat::TemplateError &e) {
      templateError_ = chat::describe(e); // reported when a chat line needs it
    }
  }
}

Preparer::~Preparer() = default;

Sample Preparer::chat(const json &messages, const std::string &where) const {
  if (!messages.is_array() || messages.empty()) throw PrepareError(where + "\"messages\" must be a non-empty array");
  static const char *kRoles[] = {"system", "user", "assistant", "tool", "developer"};
  for (size_t i = 0; i < messages.size(); ++i) {
    const json &m = messages[i];
    std::string at = where + "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw PrepareError(at + " is not an object");
    if (!m.contains("role") || !m.at("role").is_string()) throw PrepareError(at + " has no string \"role\"");
    std::string role = m.at("role").get<std::string>();
    if (std::none_of(std::begin(kRoles), std::end(kRoles), [&](const char *r) { return role == r; }))
      throw PrepareError(at + ": unknown role '" + role + "' (expected system, user, assistant, tool or developer)");
    if (!m.contains("content")) throw PrepareError(at + " has no \"content\"");
    if (!m.at("content").is_string())
      throw PrepareError(at + ": \"content\" is " + std::string(m.at("content").type_name()) + ", not a string");
  }
  if (!template_) {
    if (!templateError_.empty()) throw PrepareError(templateError_);
    throw PrepareError(where + "a chat line, but the tokenizer has no chat_template (tokenizer_config.json)");
  }
  chat::RenderOptions ro;
  addSpecialTokenVariables(tok_, ro.variables);
  chat::RenderedChat r;
  try {
    r = template_->render(messages, ro);
  } catch (const chat::TemplateError &e) {
    throw PrepareError(where + chat::describe(e));
  }
  text::Encoding e = tok_.encode(r.text, false);
  Sample s;
  s.ids = e.ids;
  s.labels = e.ids;
  if (!o_.assistantOnlyLoss) return s;
  // Counted bytes: the generation blocks, else the assistant contents.
  std::vector<uint8_t> counted(r.text.size(), 0);
  for (size_t i = 0; i < r.text.size(); ++i)
    counted[i] = r.hasGenerationBlocks ? r.generation[i] : r.assistantContent[i] >= 0;
  std::vector<int32_t> prefix(r.text.size() + 1, 0);
  for (size_t i = 0; i < r.text.size(); ++i) prefix[i + 1] = prefix[i] + counted[i];
  std::vector<uint8_t> keep(e.ids.size(), 0);
  for (size_t k = 0; k < e.ids.size(); ++k) {
    const text::Span &sp = e.offsets[k];
    keep[k] = sp.end > sp.start && prefix[sp.end] - prefix[sp.start] > 0;
  }
  if (!r.hasGenerationBlocks) {
    // The end-of-turn token: the token after each assistant turn's last content token, if special.
    for (size_t k = 0; k + 1 < e.ids.size(); ++k) {
      if (!keep[k] || keep[k + 1]) continue;
      int32_t message = -1;
      for (uint32_t b = e.offsets[k].start; b < e.offsets[k].end; ++b)
        if (r.assistantContent[b] >= 0) message = r.assistantContent[b];
      if (message >= 0 && tok_.isSpecial(e.ids[k + 1])) keep[k + 1] = 2;
    }
  }
  for (size_t k = 0; k < e.ids.size(); ++k)
    if (!keep[k]) s.labels[k] = kIgnore;
  return s;
}

Sample Preparer::fromJson(const json &j, const std::string &where) const {
  if (!j.is_object()) throw PrepareError(where + "expected a JSON object");
  auto eos = [&](Sample &s, bool counts) {
    std::optional<int32_t> id = tok_.eosId();
    if (!o_.addEos || !id || (!s.ids.empty() && s.ids.back() == *id)) return;
    s.ids.push_back(*id);
    s.labels.push_back(counts ? *id : kIgnore);
  };
  if (j.contains("messages")) return chat(j.at("messages"), where);
  if (j.contains("prompt") || j.contains("completion")) {
    if (!j.contains("prompt") || !j.contains("completion"))
      throw PrepareError(where + "a prompt/completion line needs both \"prompt\" and \"completion\"");
    if (!j.at("prompt").is_string() || !j.at("completion").is_string())
      throw PrepareError(where + "\"prompt\" and \"completion\" must be strings");
    std::string prompt = j.at("prompt").get<std::string>(), completion = j.at("completion").get<std::string>();
    text::Encoding e = tok_.encode(prompt + completion, true);
    Sample s;
    s.ids = e.ids;
    s.labels = e.ids;
    if (o_.assistantOnlyLoss)
      for (size_t k = 0; k < e.ids.size(); ++k)
        if (!overlaps(e.offsets[k], prompt.size(), prompt.size() + completion.size())) s.labels[k] = kIgnore;
    eos(s, true);
    return s;
  }
  if (j.contains("text")) {
    if (!j.at("text").is_string()) throw PrepareError(where + "\"text\" must be a string");
    text::Encoding e = tok_.encode(j.at("text").get<std::string>(), true);
    Sample s;
    s.ids = e.ids;
    s.labels = e.ids;
    eos(s, true);
    return s;
  }
  if (j.contains("input_ids")) throw PrepareError(where + "already tokenized (\"input_ids\"): use it without --tokenizer");
  throw PrepareError(where + "expected \"text\", \"messages\", or \"prompt\" and \"completion\"");
}

std::vector<Sample> Preparer::fromText(const std::string &text, const std::string &where) const {
  text::Encoding e;
  try {
    e = tok_.encode(text, true);
  } catch (const text::TokenizerError &err) {
    throw PrepareError(where + ": " + err.what());
  }
  const int64_t n = int64_t(e.ids.size()), T = o_.seq, stride = o_.stride ? o_.stride : std::max<int64_t>(1, T / 2);
  std::vector<Sample> out;
  auto window = [&](int64_t b) {
    Sample s;
    s.ids.assign(e.ids.begin() + b, e.ids.begin() + std::min(n, b + T));
    s.labels = s.ids;
    out.push_back(std::move(s));
  };
  if (n == 0) return out;
  int64_t b = 0;
  for (; b + T <= n; b += stride) window(b);
  if (out.empty()) window(0);
  else if (b - stride + T < n) window(std::max<int64_t>(0, n - T)); // the tail
  return out;
}

std::vector<Sample> Preparer::finish(std::vector<Sample> samples, PrepareStats &stats) const {
  std::vector<Sample> kept;
  for (Sample &s : samples) {
    if (int64_t(s.ids.size()) > o_.seq) {
      if (o_.dropLong) {
        ++stats.dropped;
        continue;
      }
      ++stats.truncated;
      s.ids.resize(size_t(o_.seq));
      s.labels.resize(size_t(o_.seq));
    }
    if (s.ids.empty()) continue;
    kept.push_back(std::move(s));
  }
  if (o_.pack) {
    std::vector<Sample> rows;
    Sample row;
    for (Sample &s : kept) {
      if (!row.ids.empty() && int64_t(row.ids.size() + s.ids.size()) > o_.seq) rows.push_back(std::move(row)), row = Sample();
      if (!row.ids.empty()) s.labels[0] = kIgnore;
      if (row.ids.empty()) row.line = s.line;
      row.ids.insert(row.ids.end(), s.ids.begin(), s.ids.end());
      row.labels.insert(row.labels.end(), s.labels.begin(), s.labels.end());
    }
    if (!row.ids.empty()) rows.push_back(std::move(row));
    kept = std::move(rows);
  }
  stats.rows = kept.size();
  for (const Sample &s : kept) {
    stats.tokens += int64_t(s.ids.size());
    for (size_t k = 1; k < s.labels.size(); ++k) stats.counted += s.labels[k] != kIgnore;
  }
  return kept;
}

std::vector<Sample> Preparer::prepareFile(const std::string &path, PrepareStats &stats) const {
  std::string content;
  try {
    std::vector<uint8_t> bytes = util::readFile(path);
    content.assign(bytes.begin(), bytes.end());
  } catch (const std::runtime_error &e) {
    throw PrepareError(e.what());
  }
  std::string ext = std::filesystem::path(path).extension().string();
  std::vector<Sample> samples;
  if (ext == ".txt") {
    samples = fromText(content, path);
    stats.lines = samples.size();
    return finish(std::move(samples), stats);
  }
  size_t pos = 0, lineNo = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view line(content.data() + pos, eol - pos);
    pos = eol + 1;
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = path + ":" + std::to_string(lineNo) + ": ";
    try {
      json j;
      try {
        j = json::parse(line.begin(), line.end());
      } catch (const json::exception &e) {
        throw PrepareError(where + "not valid JSON: " + jsonMessage(e.what()));
      }
      Sample s;
      try {
        s = fromJson(j, where);
      } catch (const text::TokenizerError &e) {
        throw PrepareError(where + e.what());
      }
      s.line = lineNo;
      samples.push_back(std::move(s));
    } catch (const PrepareError &e) {
      if (!o_.skipBadLines) throw PrepareError(std::string(e.what()) + " (--skip-bad-lines skips such lines)");
      if (stats.skippedMessages.size() < 5) stats.skippedMessages.push_back(e.what());
      ++stats.skipped;
    }
  }
  stats.lines = samples.size();
  if (samples.empty())
    throw PrepareError(path + ": no samples" + (stats.skipped ? " (every line was bad)" : " (the file is empty)"));
  return finish(std::move(samples), stats);
}

void writeSamples(const std::string &path, const std::vector<Sample> &samples) {
  std::string out;
  for (const Sample &s : samples) {
    out += "{\"input_ids\":[";
    for (size_t k = 0; k < s.ids.size(); ++k) out += (k ? "," : "") + std::to_string(s.ids[k]);
    out += "],\"labels\":[";
    for (size_t k = 0; k < s.labels.size(); ++k) out += (k ? "," : "") + std::to_string(s.labels[k]);
    out += "]}\n";
  }
  util::writeFileAtomic(path, out);
}

} // namespace tessera::data
