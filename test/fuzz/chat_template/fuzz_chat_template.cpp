// The chat-template (Jinja subset) parser and interpreter (runtime/chat):
// a template, rendered for a fixed conversation. Errors are TemplateError
// naming the line; a template must not crash, overflow the stack or run
// for ever (libFuzzer's timeout).
#include "FuzzCheck.h"
#include "runtime/chat/ChatTemplate.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello, world"},
    {"role": "assistant", "content": "Hi! 1 2 3"},
    {"role": "user", "content": "More?"}])");
  std::string source(reinterpret_cast<const char *>(data), size);
  try {
    chat::ChatTemplate t(source);
    chat::RenderOptions o;
    o.addGenerationPrompt = true;
    o.variables = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    chat::RenderedChat r = t.render(messages, o);
    if (r.assistantContent.size() != r.text.size()) fuzz::finding("the assistant mask is not per byte");
  } catch (const chat::TemplateError &e) {
    fuzz::checkMessage(chat::describe(e));
  }
  return 0;
}
