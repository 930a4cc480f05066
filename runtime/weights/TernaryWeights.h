// TernaryWeights.h - BitNet b1.58 weights (plan::Ternary): the codes and the
// per-tensor scale derived from a linear weight w at load, with exactly
// transformers' AutoBitLinear rule in f32 (online mode):
//   s = 1 / max(mean |w|, eps), codes = clamp(roundeven(w * s), -1, 1),
//   scale = 1 / s
// so that codes * scale equals transformers' clamp(...) / s bit for bit.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/weights/OnnxWeights.h"

#include <vector>

namespace tessera::weights {

struct Ternarized {
  std::vector<float> codes; // -1, 0, 1 in w's layout
  float scale = 0;          // 1 / s
};

// mean |w| is summed in double and rounded once (torch's f32 sum differs by
// at most an ulp or two of the mean).
Ternarized ternarize(const float *w, size_t n, float eps);

// Loads initializer b.name whole and writes the buffer's part (b.ternary):
// the codes in b.dtype (f32, f16, bf16 or TQ2_0 blocks of scale 1), or the
// scale as one f32.
void loadTernaryInto(const OnnxWeights &w, const plan::Buffer &b, void *dst);

} // namespace tessera::weights
