#include "runtime/weights/QuantizedWeights.h"

#include "runtime/gguf/Quant.h"

#include <cstring>
#include <stdexcept>

namespace tessera::weights {

uint32_t ggufTypeOf(plan::DType t) {
  switch (t) {
  case plan::DType::Q8_0: return uint32_t(gguf::TensorType::Q8_0);
  case plan::DType::Q4_0: return uint32_t(gguf::TensorType::Q4_0);
  case plan::DType::TQ2_0: return uint32_t(gguf::TensorType::TQ2_0);
  default: throw std::logic_error(std::string("ggufTypeOf: ") + plan::dtypeName(t) + " is not a block type");
  }
}

void quantizeInto(const plan::Buffer &b, const float *values, uint8_t *dst) {
  if (b.shape.size() != 2) throw std::runtime_error("weight '" + b.name + "': a block-quantised weight must be 2-D");
  const int64_t R = b.shape[0], C = b.shape[1];
  const uint64_t n = uint64_t(R * C);
  std::vector<float> t;
  if (b.transposed) { // rows of R values: the [C, R] transpose
    t.resize(n);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) t[size_t(c * R + r)] = values[size_t(r * C + c)];
    values = t.data();
  }
  const int64_t row = b.transposed ? R : C;
  if (row % int64_t(plan::blockElements(b.dtype)) != 0)
    throw std::runtime_error("weight '" + b.name + "': rows of " + std::to_string(row) + " values are not whole " +
                             plan::dtypeName(b.dtype) + " blocks");
  const gguf::TensorType type = gguf::TensorType(ggufTypeOf(b.dtype));
  const uint64_t used = gguf::tensorBytes(type, n);
  if (used > b.bytes) throw std::runtime_error("weight '" + b.name + "': the buffer is smaller than its blocks");
  gguf::encodeInto(type, values, n, dst);
  std::memset(dst + used, 0, b.bytes - used);
}

void loadQuantizedInto(const OnnxWeights &w, const plan::Buffer &b, void *dst) {
  std::vector<float> v = w.load(b.name, b.shape);
  quantizeInto(b, v.data(), static_cast<uint8_t *>(dst));
}

} // namespace tessera::weights
