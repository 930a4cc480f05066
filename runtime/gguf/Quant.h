// Quant.h - element encodings of GGUF tensors: F32, F16, BF16 and the block
// quantisations Q8_0, Q4_0 and TQ2_0 (ggml's layouts, docs/quantization.md).
//
// A block holds `blockElements` consecutive values of a row (the reduction
// axis of a linear weight) behind one f16 scale d:
//   Q8_0  32 values, 34 bytes: d, then 32 int8 q;       value = q * d
//   Q4_0  32 values, 18 bytes: d, then 16 bytes; byte j holds value j in its
//         low nibble and value j + 16 in its high one;  value = (q - 8) * d
//   TQ2_0 256 values, 66 bytes: 64 bytes of 2-bit codes, then d; byte
//         32c + m holds values 128c + m + 32n at bits 2n (n = 0..3);
//         value = (code - 1) * d
// The encoders round as ggml's reference quantisers (quantize_row_*_ref, the
// ones llama.cpp's converters use), so files and plan buffers are
// byte-identical to what llama.cpp writes:
//   Q8_0  d = max|x| / 127, q = roundf(x / d) (ties away from zero)
//   Q4_0  m = the x of largest |x| (the first), d = m / -8,
//         q = min(15, trunc(x / d + 8.5))
//   TQ2_0 d = max|x|, code = lroundf(x / d) + 1
// with 1/d computed in f32 from the unrounded d (0 when d is 0) and d stored
// as f16, rounded to nearest even.
#pragma once

#include "runtime/gguf/Gguf.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera::gguf {

constexpr uint64_t kQ8Block = 32;
constexpr uint64_t kQ8BlockBytes = 34;

// Values per block and bytes per block (1 and the element size for the
// unblocked types).
constexpr uint64_t blockElements(TensorType t) {
  return t == TensorType::Q8_0 || t == TensorType::Q4_0 ? 32 : t == TensorType::TQ2_0 ? 256 : 1;
}
constexpr uint64_t blockBytes(TensorType t) {
  switch (t) {
  case TensorType::F32: return 4;
  case TensorType::F16: case TensorType::BF16: return 2;
  case TensorType::Q8_0: return 34;
  case TensorType::Q4_0: return 18;
  case TensorType::TQ2_0: return 66;
  }
  return 0;
}
constexpr bool isBlockQuantized(TensorType t) { return blockElements(t) > 1; }

// Encodes n values (n a multiple of blockElements(type)) into `out`
// (tensorBytes(type, n) bytes).
void encodeInto(TensorType type, const float *x, size_t n, uint8_t *out);
std::vector<uint8_t> encode(TensorType type, const float *x, size_t n);
// Decodes n values of `type` from `bytes`.
void decode(TensorType type, const uint8_t *bytes, size_t n, float *out);

} // namespace tessera::gguf
