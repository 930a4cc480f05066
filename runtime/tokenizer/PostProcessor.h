// PostProcessor.h - tokenizer.json's "post_processor": the special tokens an
// encoding gets around the text when add_special_tokens is on (Gemma's
// TemplateProcessing adds <bos>; Qwen's and Llama 3's ByteLevel adds none).
// TemplateProcessing (single sequences), BertProcessing, RobertaProcessing,
// ByteLevel and Sequence.
#pragma once

#include "runtime/tokenizer/Bpe.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tessera::text {

class PostProcessor {
public:
  virtual ~PostProcessor() = default;
  virtual void apply(std::vector<Token> &tokens) const = 0;
};

// nullptr for none. Throws "<where>: unsupported post_processor type 'X'".
std::unique_ptr<PostProcessor> makePostProcessor(const nlohmann::json &j, const std::string &where);

} // namespace tessera::text
