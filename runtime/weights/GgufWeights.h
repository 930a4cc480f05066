// GgufWeights.h - frozen weights from a llama.cpp GGUF base (a plan compiled
// with `tessera compile --weights BASE.gguf`, docs/quantization.md): every
// weight buffer names its tensor (plan::Buffer::gguf). Block-quantised
// buffers take the tensor's blocks as they are (rows moved back where llama's
// q/k rows are permuted: a block never spans two rows); float buffers take
// its decoded values (any type the reader knows, Q4_0 / Q8_0 / TQ2_0
// included), un-permuted, un-scaled and transposed back to the ONNX layout.
#pragma once

#include "runtime/gguf/Gguf.h"
#include "runtime/plan/Plan.h"

#include <string>

namespace tessera::weights {

// Whether the file starts with GGUF's magic.
bool isGgufFile(const std::string &path);

class GgufWeights {
public:
  explicit GgufWeights(const std::string &path) : file_(path) {}
  const gguf::File &file() const { return file_; }
  // The tensor of weight buffer b exists with its shape and, for a block
  // type, the buffer's type; throws one line naming the file, tensor and
  // what differs.
  void check(const plan::Buffer &b) const;
  // b.bytes bytes of b's storage.
  void loadInto(const plan::Buffer &b, void *dst) const;

private:
  gguf::File file_;
};

} // namespace tessera::weights
