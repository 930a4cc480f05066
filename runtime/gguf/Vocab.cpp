#include "runtime/gguf/Vocab.h"

#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

namespace tessera::gguf {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// llama_token_type
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others
// are shifted to U+0100 and up, in byte order.
std::vector<std::string> byteLevelAlphabet() {
  std::vector<std::string> out(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = utf8(printable ? b : next++);
  }
  return out;
}

void padTo(std::vector<std::string> &tokens, std::vector<int32_t> &types, std::vector<float> *scores, int64_t n) {
  for (int64_t i = int64_t(tokens.size()); i < n; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(kUnused);
    if (scores) scores->push_back(-1000.0f);
  }
}

void setIds(Metadata &md, const SpecialIds &ids, int64_t n) {
  auto put = [&](const char *key, std::optional<int64_t> id) {
    if (id && *id >= 0 && *id < n) md.emplace_back(key, Value::u32(uint32_t(*id)));
  };
  put("tokenizer.ggml.bos_token_id", ids.bos);
  put("tokenizer.ggml.eos_token_id", ids.eos);
  put("tokenizer.ggml.padding_token_id", ids.pad);
}

// The two byte-level pre-tokenizer regexes llama.cpp knows by name.
const char *kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char *kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Finds pre-tokenizers of `type` inside a (possibly Sequence) pre_tokenizer.
void collect(const json &p, const std::string &type, std::vector<const json *> &out) {
  if (!p.is_object()) return;
  if (p.value("type", "") == type) out.push_back(&p);
  if (p.contains("pretokenizers") && p["pretokenizers"].is_array())
    for (const json &q : p["pretokenizers"]) collect(q, type, out);
}

std::string tokenText(const json &v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

} // namespace

Metadata placeholderVocab(int64_t n, const SpecialIds &ids) {
  std::vector<std::string> alphabet = byteLevelAlphabet(), tokens;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < n && i < 256; ++i) {
    tokens.push_back(alphabet[size_t(i)]);
    types.push_back(kNormal);
  }
  padTo(tokens, types, nullptr, n);
  Metadata md;
  md.emplace_back("tokenizer.ggml.model", Value::str("gpt2"));
  md.emplace_back("tokenizer.ggml.pre", Value::str("default"));
  md.emplace_back("tokenizer.ggml.tokens", Value::strings(tokens));
  md.emplace_back("tokenizer.ggml.token_type", Value::i32s(types));
  md.emplace_back("tokenizer.ggml.merges", Value::strings({}));
  setIds(md, ids, n);
  md.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean(false));
  md.emplace_back("tokenizer.ggml.add_eos_token", Value::boolean(false));
  return md;
}

Metadata tokenizerVocab(const std::string &dir, int64_t vocabSize, const SpecialIds &fallback) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": tokenizer directory not found");
  fs::path tjPath = fs::path(dir) / "tokenizer.json", tcPath = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(tjPath, ec))
    throw std::runtime_error(tjPath.string() + ": missing (a Hugging Face tokenizer folder has tokenizer.json)");
  auto parse = [](const fs::path &p) {
    std::vector<uint8_t> bytes = util::readFile(p.string());
    try {
      return json::parse(bytes.begin(), bytes.end());
    } catch (const json::exception &e) {
      throw std::runtime_error(p.string() + ": not valid JSON: " + e.what());
    }
  };
  json tj = parse(tjPath);
  json tc = fs::exists(tcPath, ec) ? parse(tcPath) : json::object();
  const std::string file = tjPath.string();
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    throw std::runtime_error(file + ": model: missing");
  const json &model = tj["model"];
  std::string type = model.value("type", "");
  if (type != "BPE")
    throw std::runtime_error(file + ": model.type \"" + type + "\" is not supported (BPE tokenizers are: Llama 3, Qwen 3, Gemma 3)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw std::runtime_error(file + ": model.vocab: missing");

  // id -> token, from the vocabulary and the added tokens.
  std::map<int64_t, std::string> byId;
  std::unordered_map<std::string, int64_t> idOf;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
      throw std::runtime_error(file + ": model.vocab[\"" + it.key() + "\"]: not a token id");
    byId[it.value().get<int64_t>()] = it.key();
    idOf[it.key()] = it.value().get<int64_t>();
  }
  std::map<int64_t, bool> added; // id -> special
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (size_t i = 0; i < tj["added_tokens"].size(); ++i) {
      const json &a = tj["added_tokens"][i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        throw std::runtime_error(file + ": added_tokens[" + std::to_string(i) + "]: needs an integer id and a string content");
      int64_t id = a["id"].get<int64_t>();
      byId[id] = a["content"].get<std::string>();
      idOf[a["content"].get<std::string>()] = id;
      added[id] = a.value("special", false);
    }
  int64_t n = byId.empty() ? 0 : byId.rbegin()->first + 1;
  if (vocabSize < 0) vocabSize = n; // vocab-only: the tokenizer's own size
  if (n > vocabSize)
    throw std::runtime_error(file + ": the tokenizer has " + std::to_string(n) + " tokens, the model's embedding only " +
                             std::to_string(vocabSize) + " rows: not this model's tokenizer");
  if (int64_t(byId.size()) != n)
    for (int64_t i = 0; i < n; ++i)
      if (!byId.count(i)) throw std::runtime_error(file + ": token id " + std::to_string(i) + " is missing (ids must be 0..N-1)");

  // Merges, as "left right" strings (tokenizer.json has either form).
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    merges.reserve(model["merges"].size());
    for (size_t i = 0; i < model["merges"].size(); ++i) {
      const json &m = model["merges"][i];
      if (m.is_string())
        merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else
        throw std::runtime_error(file + ": model.merges[" + std::to_string(i) + "]: not a merge");
    }
  }

  Metadata md;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(size_t(vocabSize));
  std::vector<const json *> byteLevel, splits;
  collect(tj["pre_tokenizer"], "ByteLevel", byteLevel);
  collect(tj["pre_tokenizer"], "Split", splits);
  if (!byteLevel.empty()) {
    // Byte-level BPE: llama.cpp's "gpt2" vocabulary with a named pre-tokenizer.
    std::string pre;
    for (const json *s : splits) {
      std::string re = (*s)["pattern"].is_object() ? (*s)["pattern"].value("Regex", "") : "";
      if (re == kLlama3Regex) pre = "llama-bpe";
      else if (re == kQwen2Regex) pre = "qwen2";
      else throw std::runtime_error(file + ": pre_tokenizer: the Split regex " + json(re).dump() +
                                    " is not one llama.cpp knows (Llama 3's or Qwen 2/3's)");
    }
    // Without merges every byte is its own token however the text is split
    // (the bundled tiny tokenizer), so llama.cpp's default split is exact.
    if (pre.empty() && splits.empty() && merges.empty()) pre = "default";
    if (pre.empty())
      throw std::runtime_error(file + ": pre_tokenizer: byte-level without a Split regex is not supported");
    for (int64_t i = 0; i < n; ++i) {
      tokens.push_back(byId[i]);
      auto a = added.find(i);
      types.push_back(a == added.end() ? kNormal : a->second ? kControl : kUserDefined);
    }
    padTo(tokens, types, nullptr, vocabSize);
    md.emplace_back("tokenizer.ggml.model", Value::str("gpt2"));
    md.emplace_back("tokenizer.ggml.pre", Value::str(pre));
    md.emplace_back("tokenizer.ggml.tokens", Value::strings(tokens));
    md.emplace_back("tokenizer.ggml.token_type", Value::i32s(types));
    md.emplace_back("tokenizer.ggml.merges", Value::strings(merges));
  } else if (model.value("byte_fallback", false)) {
    // SentencePiece-style BPE: llama.cpp's "llama" (SPM) vocabulary. A token's
    // score is minus the rank of the first merge that forms it.
    std::unordered_map<std::string, size_t> firstMerge;
    for (size_t r = 0; r < merges.size(); ++r) {
      size_t sp = merges[r].find(' ', 1);
      if (sp == std::string::npos) continue;
      std::string joined = merges[r].substr(0, sp) + merges[r].substr(sp + 1);
      firstMerge.emplace(joined, r);
    }
    std::string unk = model.contains("unk_token") && model["unk_token"].is_string() ? model["unk_token"].get<std::string>() : "";
    std::vector<float> scores;
    for (int64_t i = 0; i < n; ++i) {
      const std::string &t = byId[i];
      tokens.push_back(t);
      auto a = added.find(i);
      bool isByte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
      int32_t ty = a != added.end() ? (a->second ? kControl : kUserDefined)
                   : isByte         ? kByte
                   : t == unk       ? kUnknown
                                    : kNormal;
      if (t == unk) ty = kUnknown;
      types.push_back(ty);
      auto m = firstMerge.find(t);
      scores.push_back(m != firstMerge.end() ? -float(m->second) : ty == kNormal ? -1e9f : 0.0f);
    }
    padTo(tokens, types, &scores, vocabSize);
    md.emplace_back("tokenizer.ggml.model", Value::str("llama"));
    md.emplace_back("tokenizer.ggml.pre", Value::str("default"));
    md.emplace_back("tokenizer.ggml.tokens", Value::strings(tokens));
    md.emplace_back("tokenizer.ggml.scores", Value::f32s(scores));
    md.emplace_back("tokenizer.ggml.token_type", Value::i32s(types));
    md.emplace_back("tokenizer.ggml.add_space_prefix", Value::boolean(false));
    if (!unk.empty() && idOf.count(unk)) md.emplace_back("tokenizer.ggml.unknown_token_id", Value::u32(uint32_t(idOf[unk])));
  } else {
    throw std::runtime_error(file + ": a BPE tokenizer without a ByteLevel pre-tokenizer or byte_fallback is not supported");
  }

  // Special tokens: tokenizer_config.json names them; config.json ids are the fallback.
  SpecialIds ids = fallback;
  auto lookup = [&](const char *key, std::optional<int64_t> &slot) {
    if (!tc.contains(key)) return;
    std::string text = tokenText(tc[key]);
    if (text.empty()) return;
    auto it = idOf.find(text);
    if (it == idOf.end())
      throw std::runtime_error(tcPath.string() + ": " + key + " \"" + text + "\" is not a token of tokenizer.json");
    slot = it->second;
  };
  lookup("bos_token", ids.bos);
  lookup("eos_token", ids.eos);
  lookup("pad_token", ids.pad);
  setIds(md, ids, vocabSize);
  // BOS where the files say so: tokenizer_config.json's add_bos_token, else
  // a post-processor template that starts with a special token.
  bool addBos = false;
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    addBos = tc["add_bos_token"].get<bool>();
  } else if (tj.contains("post_processor") && tj["post_processor"].is_object()) {
    std::vector<const json *> templates;
    const json &pp = tj["post_processor"];
    if (pp.value("type", "") == "TemplateProcessing") templates.push_back(&pp);
    if (pp.contains("processors") && pp["processors"].is_array())
      for (const json &q : pp["processors"])
        if (q.is_object() && q.value("type", "") == "TemplateProcessing") templates.push_back(&q);
    for (const json *t : templates)
      if ((*t).contains("single") && (*t)["single"].is_array() && !(*t)["single"].empty() &&
          (*t)["single"][0].contains("SpecialToken"))
        addBos = true;
  }
  md.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean(addBos));
  md.emplace_back("tokenizer.ggml.add_eos_token",
                  Value::boolean(tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean() && tc["add_eos_token"].get<bool>()));

  std::string chat;
  if (tc.contains("chat_template")) {
    const json &c = tc["chat_template"];
    if (c.is_string()) chat = c.get<std::string>();
    else if (c.is_array())
      for (const json &e : c)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          chat = e["template"].get<std::string>();
  }
  fs::path jinja = fs::path(dir) / "chat_template.jinja";
  if (chat.empty() && fs::exists(jinja, ec)) {
    std::vector<uint8_t> bytes = util::readFile(jinja.string());
    chat.assign(bytes.begin(), bytes.end());
  }
  if (!chat.empty()) md.emplace_back("tokenizer.chat_template", Value::str(chat));
  return md;
}

} // namespace tessera::gguf
