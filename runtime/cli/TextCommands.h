// TextCommands.h - `tessera prepare` and `tessera tokenize`: text and chat
// data through a model's tokenizer (runtime/data/Prepare.h), without a GPU.
#pragma once

#include "runtime/data/Prepare.h"

#include <memory>
#include <string>

namespace CLI {
class App;
class Option;
}

namespace tessera {

// The data options `prepare`, `tokenize` and `train --tokenizer` share.
struct TextDataFlags {
  std::string tokenizer;
  data::PrepareOptions prepare;
  bool noEos = false;
};
// Adds --assistant-only-loss, --pack, --stride, --skip-bad-lines, --drop-long, --no-eos.
void addTextDataFlags(CLI::App &cmd, TextDataFlags &flags);
// Throws when a data preparation flag is given without --tokenizer (it would do nothing).
void checkTextDataFlags(const TextDataFlags &flags);

void addTextCommands(CLI::App &app);

} // namespace tessera
