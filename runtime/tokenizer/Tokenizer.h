// Tokenizer.h - a Hugging Face tokenizer read from a model folder
// (tokenizer.json + tokenizer_config.json), as `tokenizers` runs it:
// added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, and
// back through the decoder. Byte-level BPE (Qwen, Llama 3) and
// SentencePiece-style BPE with byte fallback (Gemma) are supported; other
// model types are refused by name. No MLIR/LLVM: it ships in tessera-rt.
#pragma once

#include "runtime/tokenizer/AddedVocabulary.h"
#include "runtime/tokenizer/Bpe.h"
#include "runtime/tokenizer/Decoder.h"
#include "runtime/tokenizer/Normalizer.h"
#include "runtime/tokenizer/PostProcessor.h"
#include "runtime/tokenizer/PreTokenizer.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<Span> offsets; // byte ranges of the input; post-processor tokens get an empty range
};

class Tokenizer {
public:
  // DIR/tokenizer.json and DIR/tokenizer_config.json (the latter optional;
  // DIR/chat_template.jinja, when present, is the chat template). Errors name
  // the file and what is missing or unsupported.
  static Tokenizer fromDirectory(const std::string &dir);
  // From the two files' text; `where` names them in errors.
  static Tokenizer fromJson(std::string_view tokenizerJson, std::string_view configJson, const std::string &where);

  // Input must be valid UTF-8 (else a TokenizerError naming the byte offset).
  Encoding encode(std::string_view text, bool addSpecialTokens = true) const;
  std::string decode(const std::vector<int32_t> &ids, bool skipSpecialTokens = false) const;

  // The token's string in the vocabulary ("" for an unknown id).
  std::string idToToken(int32_t id) const;
  std::optional<int32_t> tokenToId(std::string_view token) const;
  bool isSpecial(int32_t id) const;
  // 1 + the largest id (model vocabulary and added tokens).
  int64_t vocabSize() const { return vocabSize_; }

  // From tokenizer_config.json ("" when absent).
  const std::string &chatTemplate() const { return chatTemplate_; }
  const std::string &bosToken() const { return bosToken_; }
  const std::string &eosToken() const { return eosToken_; }
  const std::string &padToken() const { return padToken_; }
  const std::string &unkToken() const { return unkToken_; }
  std::optional<int32_t> eosId() const { return tokenToId(eosToken_); }
  std::optional<int32_t> bosId() const { return tokenToId(bosToken_); }
  // tokenizer_config.json's clean_up_tokenization_spaces (decode applies it).
  bool cleansUpSpaces() const { return cleanUpSpaces_; }
  // A short description, e.g. "BPE, 151669 tokens (byte-level)".
  std::string describe() const;

private:
  Tokenizer() = default;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> preTokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> postProcessor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  int64_t vocabSize_ = 0;
  std::string chatTemplate_, bosToken_, eosToken_, padToken_, unkToken_;
  bool cleanUpSpaces_ = false, byteLevel_ = false, byteFallback_ = false;
};

} // namespace tessera::text
