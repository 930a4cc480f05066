// ChatTemplate.h - a model's chat_template (Jinja) rendered for
// {"messages": [...]} as transformers' apply_chat_template renders it
// (trim_blocks, lstrip_blocks, raise_exception, strftime_now, tojson;
// messages, tools, documents, add_generation_prompt and the special tokens
// in the context), byte for byte.
//
// The rendering also says which of its bytes are an assistant message's own
// content: message contents enter the interpreter as tagged strings and the
// tags follow them through slicing, strip, split and concatenation into the
// output (runtime/chat/Value.h). A template with {% generation %} blocks
// marks what the assistant generates itself; transformers' return_assistant_tokens_mask
// uses those, and so does AssistantSpans below when they are there.
#pragma once

#include "runtime/chat/Ast.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera::chat {

struct RenderOptions {
  bool addGenerationPrompt = false;
  // Context variables: bos_token, eos_token, ... and extra ones (enable_thinking, tools).
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

struct RenderedChat {
  std::string text;
  // Per byte: the index of the assistant message whose content it is, or -1.
  std::vector<int32_t> assistantContent;
  // Per byte: inside a {% generation %} block (when the template has any).
  std::vector<uint8_t> generation;
  bool hasGenerationBlocks = false;
};

class ChatTemplate {
public:
  // Throws TemplateError("...", line) for a syntax error or an unsupported construct.
  explicit ChatTemplate(const std::string &source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate &&) noexcept;
  // messages: an array of {"role", "content"} objects (OpenAI style).
  // Throws TemplateError (with the template line) when rendering fails.
  RenderedChat render(const nlohmann::ordered_json &messages, const RenderOptions &options) const;

private:
  std::unique_ptr<Template> template_;
};

// "chat template line 12: unsupported Jinja filter 'xyz'".
std::string describe(const TemplateError &e);

} // namespace tessera::chat
