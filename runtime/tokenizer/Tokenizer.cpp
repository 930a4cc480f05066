#include "runtime/tokenizer/Tokenizer.h"

#include "runtime/tokenizer/Utf8.h"
#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace tessera::text {

using json = nlohmann::json;

namespace {

std::string jsonMessage(const std::string &what) {
  size_t close = what.find("] ");
  return !what.empty() && what[0] == '[' && close != std::string::npos ? what.substr(close + 2) : what;
}

std::string readText(const std::string &path) {
  std::vector<uint8_t> bytes = util::readFile(path);
  return std::string(bytes.begin(), bytes.end());
}

// tokenizer_config.json writes a token as "text" or as {"content": "text", ...}.
std::string tokenText(const json &config, const char *key) {
  if (!config.contains(key)) return "";
  const json &v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return "";
}

// Transformers' clean_up_tokenization (clean_up_tokenization_spaces: true).
std::string cleanUpSpaces(std::string s) {
  static const std::pair<const char *, const char *> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) s = replaceAll(s, from, to);
  return s;
}

} // namespace

Tokenizer Tokenizer::fromDirectory(const std::string &dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw TokenizerError(dir + ": not a tokenizer folder (expected a directory with tokenizer.json)");
  std::string tj = (fs::path(dir) / "tokenizer.json").string();
  std::string cj = (fs::path(dir) / "tokenizer_config.json").string();
  if (!fs::exists(tj, ec)) {
    bool sentencePiece = fs::exists(fs::path(dir) / "tokenizer.model", ec);
    throw TokenizerError(dir + ": no tokenizer.json" +
                         std::string(sentencePiece ? " (only a SentencePiece tokenizer.model, which tessera does not read: "
                                                     "save the tokenizer with a fast tokenizer to get tokenizer.json)"
                                                   : ""));
  }
  std::string tokText, cfgText;
  try {
    tokText = readText(tj);
    if (fs::exists(cj, ec)) cfgText = readText(cj);
  } catch (const std::runtime_error &e) {
    throw TokenizerError(e.what());
  }
  Tokenizer t = fromJson(tokText, cfgText, tj);
  std::string jinja = (fs::path(dir) / "chat_template.jinja").string();
  if (fs::exists(jinja, ec)) t.chatTemplate_ = readText(jinja);
  return t;
}

Tokenizer Tokenizer::fromJson(std::string_view tokenizerJson, std::string_view configJson, const std::string &where) {
  json j, config = json::object();
  try {
    j = json::parse(tokenizerJson.begin(), tokenizerJson.end());
  } catch (const json::exception &e) {
    throw TokenizerError(where + ": not valid JSON: " + jsonMessage(e.what()));
  }
  std::string configWhere = where.size() > 14 && where.compare(where.size() - 14, 14, "tokenizer.json") == 0
                                ? where.substr(0, where.size() - 14) + "tokenizer_config.json"
                                : where + " (tokenizer_config)";
  if (!configJson.empty()) {
    try {
      config = json::parse(configJson.begin(), configJson.end());
    } catch (const json::exception &e) {
      throw TokenizerError(configWhere + ": not valid JSON: " + jsonMessage(e.what()));
    }
  }
  Tokenizer t;
  try {
    if (!j.is_object() || !j.contains("model")) throw TokenizerError(where + ": no \"model\" (is this a tokenizer.json?)");
    const json &model = j.at("model");
    std::string type = model.value("type", "");
    if (type.empty() && model.contains("merges")) type = "BPE";
    if (type != "BPE")
      throw TokenizerError(where + ": unsupported model type '" + type + "' (tessera reads BPE tokenizers: "
                           "byte-level like Qwen and Llama 3, or with byte fallback like Gemma)");
    t.model_ = std::make_unique<BpeModel>(model, where);
    t.byteFallback_ = model.value("byte_fallback", false);
    auto get = [&](const char *k) -> const json & {
      static const json null;
      return j.contains(k) ? j.at(k) : null;
    };
    t.normalizer_ = makeNormalizer(get("normalizer"), where);
    t.preTokenizer_ = makePreTokenizer(get("pre_tokenizer"), where);
    t.postProcessor_ = makePostProcessor(get("post_processor"), where);
    t.decoder_ = makeDecoder(get("decoder"), where);
    t.byteLevel_ = get("decoder").dump().find("\"ByteLevel\"") != std::string::npos;
    t.added_.load(get("added_tokens"), where);
  } catch (const TokenizerError &) {
    throw;
  } catch (const json::exception &e) {
    throw TokenizerError(where + ": " + jsonMessage(e.what()));
  } catch (const std::runtime_error &e) {
    throw TokenizerError(e.what());
  }
  t.vocabSize_ = t.model_->size();
  for (const AddedToken &a : t.added_.tokens()) t.vocabSize_ = std::max<int64_t>(t.vocabSize_, int64_t(a.id) + 1);

  if (config.is_object()) {
    if (config.contains("chat_template")) {
      const json &c = config.at("chat_template");
      if (c.is_string()) t.chatTemplate_ = c.get<std::string>();
      else if (c.is_array()) // [{"name": "default", "template": ...}, ...]
        for (const json &e : c)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template"))
            t.chatTemplate_ = e.at("template").get<std::string>();
    }
    t.bosToken_ = tokenText(config, "bos_token");
    t.eosToken_ = tokenText(config, "eos_token");
    t.padToken_ = tokenText(config, "pad_token");
    t.unkToken_ = tokenText(config, "unk_token");
    t.cleanUpSpaces_ = config.value("clean_up_tokenization_spaces", false) == true;
  }
  return t;
}

Encoding Tokenizer::encode(std::string_view text, bool addSpecialTokens) const {
  size_t bad = firstInvalidUtf8(text);
  if (bad != std::string_view::npos)
    throw TokenizerError("the text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  std::vector<Token> tokens;
  AlignedText input = AlignedText::original(text);
  for (Segment &raw : added_.split(input, false)) {
    if (raw.token >= 0) {
      tokens.push_back({raw.token, raw.text.spanOf(0, raw.text.text.size())});
      continue;
    }
    AlignedText normalized = normalizer_ ? normalizer_->apply(raw.text) : std::move(raw.text);
    for (Segment &seg : added_.split(normalized, true)) {
      if (seg.token >= 0) {
        tokens.push_back({seg.token, seg.text.spanOf(0, seg.text.text.size())});
        continue;
      }
      std::vector<AlignedText> words;
      words.push_back(std::move(seg.text));
      if (preTokenizer_) preTokenizer_->apply(words);
      for (const AlignedText &w : words) model_->tokenize(w, tokens);
    }
  }
  if (addSpecialTokens && postProcessor_) postProcessor_->apply(tokens);
  Encoding e;
  e.ids.reserve(tokens.size());
  e.offsets.reserve(tokens.size());
  for (const Token &t : tokens) {
    e.ids.push_back(t.id);
    e.offsets.push_back(t.offsets);
  }
  return e;
}

std::string Tokenizer::idToToken(int32_t id) const {
  if (const AddedToken *a = added_.byId(id)) return a->content;
  return model_->idToToken(id);
}

std::optional<int32_t> Tokenizer::tokenToId(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  if (const AddedToken *a = added_.byContent(std::string(token))) return a->id;
  return model_->tokenToId(token);
}

bool Tokenizer::isSpecial(int32_t id) const {
  const AddedToken *a = added_.byId(id);
  return a && a->special;
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids, bool skipSpecialTokens) const {
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    if (skipSpecialTokens && isSpecial(id)) continue;
    std::string t = idToToken(id);
    if (!t.empty()) tokens.push_back(std::move(t));
  }
  std::string out;
  if (decoder_)
    for (const std::string &s : decoder_->apply(std::move(tokens))) out += s;
  else
    for (const std::string &s : tokens) out += s;
  return cleanUpSpaces_ ? cleanUpSpaces(out) : out;
}

std::string Tokenizer::describe() const {
  return std::string("BPE, ") + std::to_string(vocabSize_) + " tokens" +
         (byteLevel_ ? " (byte-level)" : byteFallback_ ? " (byte fallback)" : "");
}

} // namespace tessera::text
