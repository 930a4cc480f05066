// The Hugging Face tokenizer reader and the BPE it builds (runtime/tokenizer):
// tokenizer.json, then encoding a text with it and decoding the ids. Input:
// tokenizer.json, a NUL byte, the text. An encoding must decode to ids in
// range; errors are TokenizerError (one line).
#include "FuzzCheck.h"
#include "runtime/tokenizer/Tokenizer.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view all(reinterpret_cast<const char *>(data), size);
  size_t nul = all.find('\0');
  std::string_view json = all.substr(0, nul), text = nul == std::string_view::npos ? "" : all.substr(nul + 1);
  try {
    text::Tokenizer tok = text::Tokenizer::fromJson(json, "{}", "fuzz/tokenizer.json");
    text::Encoding e = tok.encode(text);
    for (int32_t id : e.ids)
      if (id < 0 || id >= tok.vocabSize()) fuzz::finding("an encoded id is outside the vocabulary");
    (void)tok.decode(e.ids);
    (void)tok.decode(e.ids, true);
  } catch (const text::TokenizerError &e) {
    fuzz::checkMessage(e.what());
  }
  return 0;
}
