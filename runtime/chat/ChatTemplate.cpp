#include "runtime/chat/ChatTemplate.h"

#include "runtime/util/File.h"

#include "runtime/chat/Interpreter.h"
#include "runtime/chat/Parser.h"

namespace tessera::chat {

ChatTemplate::ChatTemplate(const std::string &source)
    : template_(std::make_unique<Template>(parseTemplate(source))) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate &&) noexcept = default;

namespace {

// An assistant message's content (string, or the "text" of content parts)
// and reasoning_content carry its index as their tag.
Value messageValue(const nlohmann::ordered_json &m, int32_t index) {
  Value v = Value::fromJson(m);
  if (!m.is_object() || m.value("role", "") != "assistant") return v;
  for (auto &[key, field] : *v.dict) {
    if (key == "content" || key == "reasoning_content") {
      if (field.isString()) field = Value::string(TaggedString(field.str(), index));
      else if (field.isList())
        for (Value &part : *field.list)
          if (part.isDict())
            for (auto &[k, t] : *part.dict)
              if (k == "text" && t.isString()) t = Value::string(TaggedString(t.str(), index));
    }
  }
  return v;
}

} // namespace

RenderedChat ChatTemplate::render(const nlohmann::ordered_json &messages, const RenderOptions &options) const {
  std::map<std::string, Value> context;
  List ms;
  for (size_t i = 0; i < messages.size(); ++i) ms.push_back(messageValue(messages[i], int32_t(i)));
  context["messages"] = Value::makeList(std::move(ms));
  context["tools"] = Value::none();
  context["documents"] = Value::none();
  context["add_generation_prompt"] = Value::boolean(options.addGenerationPrompt);
  for (auto it = options.variables.begin(); it != options.variables.end(); ++it)
    context[it.key()] = Value::fromJson(it.value());
  Rendering r = renderTemplate(*template_, context);
  RenderedChat out;
  out.text = std::move(r.text.text);
  out.assistantContent = r.text.tags.empty() ? std::vector<int32_t>(out.text.size(), -1) : std::move(r.text.tags);
  out.generation = std::move(r.generation);
  out.hasGenerationBlocks = r.hasGenerationBlocks;
  return out;
}

std::string describe(const TemplateError &e) {
  // The message may quote template text: one line.
  return util::oneLine("chat template" + (e.line > 0 ? " line " + std::to_string(e.line) : std::string()) + ": " +
                       e.what());
}

} // namespace tessera::chat
