// ExportGguf.h - `tessera export`: a model and its LoRA adapter as GGUF files
// for llama.cpp (docs/export.md).
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

struct ExportOptions {
  std::string weights;      // ONNX model
  std::string tokenizer;    // Hugging Face tokenizer folder ("" = placeholder vocabulary)
  std::string adapter;      // PEFT adapter folder (tessera train --out)
  std::string gguf_base;    // base model GGUF to write ("" = none)
  std::string gguf_adapter; // LoRA adapter GGUF to write ("" = none)
  std::string type = "f32"; // f32 | f16 | q8_0
  std::string config;       // config.json ("" = beside the model)
  int64_t seq = 16;         // length the graph is specialised to while importing
  int64_t context_length = 0;
  bool vocab_only = false;  // --gguf-base gets the metadata and tokenizer only (llama.cpp's vocab files)
  bool quiet = false;
};

/// Returns 0, or 1 with `error` set to one line naming the file and field.
int exportGguf(const ExportOptions &options, std::string &error);

} // namespace tessera
