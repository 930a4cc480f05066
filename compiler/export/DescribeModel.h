// DescribeModel.h - what llama.cpp needs to know about an ONNX decoder, read
// from the model itself: the raised graph (compiler/raise) and, when there is
// one, the Hugging Face config.json beside the model.
//
// Which source wins (docs/export.md):
//  - structure (layers, hidden, heads, kv heads, head dim, intermediate,
//    vocab, norm eps, tied embeddings, q/k norms, activation, attention and
//    embedding scales, which weight is which) comes from the graph, since it
//    is what Tessera trains; config.json's values for the same fields must
//    agree, or the export stops naming the field;
//  - RoPE base and scaling, the sliding window and which layers use it, and
//    the context length come from config.json when it is there (the graph
//    only shows them at the length it was specialised to); the graph's
//    cos/sin tables and masks are checked against it. Without config.json
//    the RoPE base (and a linear scale) is fitted from the tables, windows
//    are read from the masks, and the context length must be given.
#pragma once

#include "runtime/gguf/BaseModel.h"
#include "runtime/gguf/Vocab.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

struct DescribeOptions {
  std::string model;          // ONNX file
  std::string config;         // config.json ("" = the one beside the model, if any)
  int64_t seq = 16;           // length the graph is specialised to while importing
  int64_t context_length = 0; // overrides config.json's max_position_embeddings
};

struct ModelDescription {
  gguf::DecoderModel model;
  gguf::SpecialIds ids;   // bos / eos / pad from config.json
  std::string config;     // the config.json used ("" = none)
  double attention_scale = 0; // the graph's softmax scale
};

/// Imports and raises `options.model` and describes it for llama.cpp.
/// Returns 0, or 1 with `error` set to one line naming the file and field.
int describeModel(const DescribeOptions &options, ModelDescription &out, std::string &error);

} // namespace tessera
