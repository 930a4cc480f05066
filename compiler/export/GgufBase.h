// GgufBase.h - `tessera compile --weights BASE.gguf`: a llama.cpp GGUF base as
// the plan's frozen weights (docs/quantization.md). The ONNX graph is
// described for llama.cpp as `tessera export` does (DescribeModel.h); the
// file must be that model: its architecture, and every tensor the export
// would write by name and shape (the first that differs is named). Each
// linear layer keeps the file's type: Q8_0, Q4_0 and TQ2_0 tensors stay
// blocks (their layer's --base-dtype-override), float ones load in the
// plan's precision, as do the embedding and the norms; other types are
// refused by the reader, naming type and tensor.
#pragma once

#include "runtime/plan/Plan.h"

#include <map>
#include <string>

namespace tessera {

struct GgufBinding {
  std::map<std::string, plan::Buffer::GgufSource> sources; // ONNX initializer -> its tensor
  std::string overrides;  // "layers.0.self_attn.q_proj=q4_0,..." for tessera-assign-quant
  std::string arch;
  size_t quantized = 0;   // tensors kept as blocks
};

/// Returns 0, or 1 with `error` set to one line naming the file and tensor.
int bindGgufBase(const std::string &onnx, const std::string &gguf, int64_t seq, const std::string &precision,
                 GgufBinding &out, std::string &error);

} // namespace tessera
