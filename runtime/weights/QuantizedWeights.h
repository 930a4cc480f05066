// QuantizedWeights.h - a frozen weight of a block-quantised plan buffer
// (plan::DType Q8_0, Q4_0, TQ2_0), quantised at load from the model's floats
// with ggml's reference rounding (runtime/gguf/Quant.h): rows along the
// buffer's blocked axis (the transpose of the initializer when the buffer is
// `transposed`), each row a whole number of blocks, zero-padded to a word.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/weights/OnnxWeights.h"

#include <cstdint>
#include <vector>

namespace tessera::weights {

// The GGUF tensor type of a block dtype.
uint32_t ggufTypeOf(plan::DType t);

// The buffer's bytes from the logical [R, C] values (row-major).
void quantizeInto(const plan::Buffer &b, const float *values, uint8_t *dst);
// Loads initializer b.name and quantises it into dst (b.bytes bytes).
void loadQuantizedInto(const OnnxWeights &w, const plan::Buffer &b, void *dst);

} // namespace tessera::weights
