// TextStream.h - generated token ids to text as they arrive, never printing
// half a character.
//
// Each push decodes the whole reply so far (decoders are not token-local:
// Metaspace and Strip treat the first token specially, byte-fallback tokens
// and byte-level tokens combine into one character, transformers'
// clean_up_tokenization_spaces rewrites " ." to ".") and returns what was not
// returned yet, holding back the tail that a later token can still change:
// trailing U+FFFD (an incomplete UTF-8 sequence decodes to it until its last
// byte arrives) and, with clean-up on, the text from the last space. finish()
// returns the rest. The concatenation of everything returned equals
// Tokenizer::decode of all the ids, except where a later token rewrites
// already returned text (only an invalid byte sequence can), which then
// continues from what was returned.
#pragma once

#include "runtime/tokenizer/Tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::generate {

class TextStream {
public:
  // skipSpecialTokens: as Tokenizer::decode (special tokens are not printed).
  explicit TextStream(const text::Tokenizer &tokenizer, bool skipSpecialTokens = false)
      : tok_(tokenizer), skipSpecial_(skipSpecialTokens) {}

  // Returns the text that became final with `id` (possibly empty).
  std::string push(int32_t id);
  // Returns the held-back tail; the stream then holds the whole reply.
  std::string finish();

  const std::vector<int32_t> &ids() const { return ids_; }
  // Everything returned so far.
  const std::string &text() const { return printed_; }

private:
  std::string emitUpTo(const std::string &decoded, size_t end);
  const text::Tokenizer &tok_;
  bool skipSpecial_;
  std::vector<int32_t> ids_;
  std::string printed_;
  size_t offset_ = 0; // bytes of the decoding returned
};

} // namespace tessera::generate
