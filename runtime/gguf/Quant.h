// Quant.h - element encodings of GGUF tensors: F32, F16, BF16 and Q8_0.
//
// Q8_0 is ggml's block_q8_0: 32 values per block, stored as an f16 scale d
// followed by 32 int8 quants (34 bytes), value = q * d. The encoder is ggml's
// reference quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d) (ties
// away from zero), d rounded to f16 to nearest even, so files are
// byte-identical to llama.cpp's converter.
#pragma once

#include "runtime/gguf/Gguf.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera::gguf {

constexpr uint64_t kQ8Block = 32;
constexpr uint64_t kQ8BlockBytes = 34;

// Encodes n values (n a multiple of 32 for Q8_0).
std::vector<uint8_t> encode(TensorType type, const float *x, size_t n);
// Decodes n values of `type` from `bytes`.
void decode(TensorType type, const uint8_t *bytes, size_t n, float *out);

} // namespace tessera::gguf
