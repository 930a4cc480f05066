// Prepare.h - text and chat data to the {"input_ids", "labels"} lines the
// trainer reads, through a model's tokenizer and chat template
// (`tessera prepare`, `tessera tokenize`, `tessera train --tokenizer`).
//
// Inputs, one JSON object per line (or a plain .txt file):
//   {"text": "..."}                         every token counts
//   {"prompt": "...", "completion": "..."}  prompt + completion as one text
//   {"messages": [{"role", "content"}...]}  rendered with the chat template
//   plain .txt                              the whole file, cut into windows of
//                                           --seq tokens every --stride tokens
// Text and prompt/completion samples get the tokenizer's special tokens
// (its post-processor: <bos> for Gemma) and end with its eos token, as TRL's
// SFTTrainer does; a chat is tokenized without them (its template writes
// them), as transformers' apply_chat_template does.
//
// --assistant-only-loss: only the assistant's turns count (the rest gets label
// -100): for a chat, the tokens that hold an assistant message's content
// (found by rendering: the content strings carry tags through the template,
// runtime/chat/Value.h), plus the token right after each turn's content when it
// is a special token (the end-of-turn token: <|im_end|>, <|eot_id|>,
// <end_of_turn>); a template with {% generation %} blocks is trusted
// instead, as transformers' return_assistant_tokens_mask does. The template's
// own markup (role headers, <think> wrappers, the generation prompt) never
// counts. For prompt/completion the completion and the eos count.
//
// --pack: consecutive samples share a row of --seq tokens (next fit, in file
// order). The plans' attention is a plain causal mask, so inside a packed row
// a sample's tokens attend to the samples before it in that row; positions
// keep counting across the row. The first token of each packed sample gets
// label -100 (it is not predicted from the previous sample). Packing is
// therefore opt-in.
#pragma once

#include "runtime/tokenizer/Tokenizer.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::chat {
class ChatTemplate;
}

namespace tessera::data {

struct PrepareError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PrepareOptions {
  int64_t seq = 0;               // T: samples longer are truncated (or dropped); rows of --pack
  bool assistantOnlyLoss = false;
  bool pack = false;
  int64_t stride = 0;            // .txt windows; 0: seq / 2 (llama.cpp's finetune)
  bool skipBadLines = false;     // count and skip lines that fail, instead of stopping
  bool dropLong = false;         // drop samples longer than seq instead of truncating them
  bool addEos = true;            // text and prompt/completion samples end with eos
};

struct Sample {
  std::vector<int32_t> ids, labels; // labels: -100 = not counted
  size_t line = 0;                  // the input line (1-based; 0 for .txt windows)
};

struct PrepareStats {
  size_t lines = 0, skipped = 0, truncated = 0, dropped = 0, rows = 0;
  int64_t tokens = 0, counted = 0;
  std::vector<std::string> skippedMessages; // the first few
  std::string summary() const;
};

class Preparer {
public:
  Preparer(const text::Tokenizer &tokenizer, const PrepareOptions &options);
  ~Preparer();

  // One JSON line (already parsed). Throws PrepareError("<where>...").
  Sample fromJson(const nlohmann::ordered_json &line, const std::string &where) const;
  // A whole .txt file as windows.
  std::vector<Sample> fromText(const std::string &text, const std::string &where) const;
  // Reads FILE (.jsonl or .txt), truncates/drops long samples and packs.
  std::vector<Sample> prepareFile(const std::string &path, PrepareStats &stats) const;
  // Truncation / dropping and packing of samples (prepareFile's last steps).
  std::vector<Sample> finish(std::vector<Sample> samples, PrepareStats &stats) const;

  const text::Tokenizer &tokenizer() const { return tok_; }

private:
  Sample chat(const nlohmann::ordered_json &messages, const std::string &where) const;
  const text::Tokenizer &tok_;
  PrepareOptions o_;
  std::unique_ptr<chat::ChatTemplate> template_;
  std::string templateError_;
};

// The chat template's special-token variables (bos_token, eos_token,
// pad_token, unk_token) from the tokenizer, as apply_chat_template passes them.
void addSpecialTokenVariables(const text::Tokenizer &tokenizer, nlohmann::ordered_json &variables);

// Writes samples as {"input_ids": [...], "labels": [...]} lines, atomically.
void writeSamples(const std::string &path, const std::vector<Sample> &samples);

} // namespace tessera::data
