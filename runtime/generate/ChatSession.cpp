#include "runtime/generate/ChatSession.h"

#include "runtime/chat/ChatTemplate.h"
#include "runtime/data/Prepare.h"
#include "runtime/util/File.h"

#include <algorithm>
#include <filesystem>

namespace tessera::generate {

using json = nlohmann::ordered_json;

namespace {

chat::RenderOptions renderOptions(const text::Tokenizer &tok, bool addGenerationPrompt) {
  chat::RenderOptions ro;
  ro.addGenerationPrompt = addGenerationPrompt;
  data::addSpecialTokenVariables(tok, ro.variables);
  return ro;
}

void addId(std::vector<int32_t> &ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

// The special token right after the assistant's content in a rendered
// two-turn conversation (none when the template writes no such token).
std::optional<int32_t> templateEndOfTurn(const text::Tokenizer &tok) {
  if (tok.chatTemplate().empty()) return std::nullopt;
  json messages = json::array({{{"role", "user"}, {"content", "Hello"}}, {{"role", "assistant"}, {"content", "Hi"}}});
  chat::RenderedChat r;
  try {
    r = chat::ChatTemplate(tok.chatTemplate()).render(messages, renderOptions(tok, false));
  } catch (const std::exception &) {
    return std::nullopt; // the template's own error is reported when the chat renders
  }
  text::Encoding e = tok.encode(r.text, false);
  for (size_t k = e.ids.size(); k-- > 0;) {
    bool content = false;
    for (uint32_t b = e.offsets[k].start; b < e.offsets[k].end && b < r.assistantContent.size(); ++b)
      content = content || r.assistantContent[b] == 1;
    if (!content) continue;
    if (k + 1 < e.ids.size() && tok.isSpecial(e.ids[k + 1])) return e.ids[k + 1];
    return std::nullopt;
  }
  return std::nullopt;
}

} // namespace

std::vector<int32_t> endOfTurnIds(const text::Tokenizer &tok, const std::string &dir) {
  std::vector<int32_t> ids;
  if (std::optional<int32_t> eos = tok.eosId()) addId(ids, *eos);
  if (std::optional<int32_t> eot = templateEndOfTurn(tok)) addId(ids, *eot);
  std::error_code ec;
  std::filesystem::path gen = std::filesystem::path(dir) / "generation_config.json";
  if (std::filesystem::exists(gen, ec)) {
    json g;
    try {
      std::vector<uint8_t> bytes = util::readFile(gen.string());
      g = json::parse(bytes.begin(), bytes.end());
    } catch (const std::exception &) {
      throw std::runtime_error(gen.string() + ": not valid JSON");
    }
    json eos = g.is_object() && g.contains("eos_token_id") ? g.at("eos_token_id") : json();
    if (eos.is_number_integer()) eos = json::array({eos});
    if (eos.is_array())
      for (const json &id : eos)
        if (id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < tok.vocabSize())
          addId(ids, id.get<int32_t>());
  }
  return ids;
}

ChatSession::ChatSession(const text::Tokenizer &tokenizer, const std::string &dir) : tok_(tokenizer) {
  if (tok_.chatTemplate().empty())
    throw std::runtime_error(dir + ": the tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja): "
                             "--chat needs one; use --prompt TEXT");
  try {
    template_ = std::make_unique<chat::ChatTemplate>(tok_.chatTemplate());
  } catch (const chat::TemplateError &e) {
    throw std::runtime_error(dir + ": " + chat::describe(e));
  }
}

ChatSession::~ChatSession() = default;

void ChatSession::add(const std::string &role, const std::string &content) {
  messages_.push_back({{"role", role}, {"content", content}});
}

void ChatSession::removeLast() {
  if (!messages_.empty()) messages_.erase(messages_.size() - 1);
}

std::string ChatSession::prompt() const {
  try {
    return template_->render(messages_, renderOptions(tok_, true)).text;
  } catch (const chat::TemplateError &e) {
    throw std::runtime_error(chat::describe(e));
  }
}

std::vector<int32_t> ChatSession::promptIds() const { return tok_.encode(prompt(), false).ids; }

} // namespace tessera::generate
