// Inspect.h - `tessera inspect`: what the compiler recognises in an ONNX model.
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

struct InspectOptions {
  std::string model;           // ONNX file
  int64_t batch = 1, seq = 16; // shapes the graph is specialised to while importing
};

/// Imports and raises the model and writes a report to `report`: the decoder
/// architecture (layers, sizes, norms, activation, tied embeddings, attention
/// windows), the LoRA-targetable linear layers with their structural names,
/// shapes and ONNX initializers, and the ops left generic. Returns 0, or 1 with
/// `error` set to one line (import failures, or a graph that is not a decoder).
int inspectModel(const InspectOptions &options, std::string &report, std::string &error);

} // namespace tessera
