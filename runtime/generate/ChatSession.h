// ChatSession.h - the conversation of `tessera generate --chat`: the turns so
// far, rendered with the model's own chat template as transformers'
// apply_chat_template(add_generation_prompt=True) renders them, tokenized
// without added special tokens (the template writes them), and the ids that
// end an assistant turn.
//
// The whole conversation is rendered again for every turn (templates rewrite
// the history: Qwen 3 drops the <think> blocks of earlier answers), so the
// prompt is always exactly what the template makes of the turns.
#pragma once

#include "runtime/tokenizer/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera::chat {
class ChatTemplate;
}

namespace tessera::generate {

// The ids a reply ends at: the tokenizer's eos token, the template's
// end-of-turn token (the special token it writes right after an assistant's
// content: <|im_end|>, <|eot_id|>, <end_of_turn>), and generation_config.json's
// eos_token_id when DIR has one (as transformers' generate stops).
std::vector<int32_t> endOfTurnIds(const text::Tokenizer &tokenizer, const std::string &dir);

class ChatSession {
public:
  // Throws std::runtime_error naming DIR when the tokenizer has no chat
  // template, or the template does not parse.
  ChatSession(const text::Tokenizer &tokenizer, const std::string &dir);
  ~ChatSession();

  void add(const std::string &role, const std::string &content);
  void removeLast();
  const nlohmann::ordered_json &messages() const { return messages_; }

  // The conversation with the generation prompt (errors name the template line).
  std::string prompt() const;
  std::vector<int32_t> promptIds() const;

private:
  const text::Tokenizer &tok_;
  std::unique_ptr<chat::ChatTemplate> template_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
};

} // namespace tessera::generate
