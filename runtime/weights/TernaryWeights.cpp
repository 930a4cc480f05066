#include "runtime/weights/TernaryWeights.h"

#include "runtime/util/Half.h"
#include "runtime/weights/QuantizedWeights.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace tessera::weights {

Ternarized ternarize(const float *w, size_t n, float eps) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::fabs(double(w[i]));
  const float mean = n ? float(sum / double(n)) : 0.0f;
  const float s = 1.0f / std::max(mean, eps); // f32, as torch computes it
  Ternarized t;
  t.codes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float c = std::nearbyint(w[i] * s); // the default rounding mode: ties to even
    t.codes[i] = std::min(1.0f, std::max(-1.0f, c));
  }
  t.scale = 1.0f / s;
  return t;
}

void loadTernaryInto(const OnnxWeights &w, const plan::Buffer &b, void *dst) {
  std::vector<int64_t> full = w.shape(b.name);
  std::vector<float> v = w.load(b.name, full);
  Ternarized t = ternarize(v.data(), v.size(), float(b.ternary_eps));
  if (b.ternary == plan::Ternary::Scale) {
    if (b.dtype != plan::DType::F32 || b.bytes != 4)
      throw std::runtime_error("weight '" + b.name + "': a ternary scale is one f32 value");
    std::memcpy(dst, &t.scale, 4);
    return;
  }
  if (full != b.shape)
    throw std::runtime_error("weight '" + b.name + "': the plan's ternary codes do not have the initializer's shape");
  if (plan::isQuantized(b.dtype)) {
    quantizeInto(b, t.codes.data(), static_cast<uint8_t *>(dst)); // TQ2_0: d = max |code| = 1, exact
    return;
  }
  for (size_t i = 0; i < t.codes.size(); ++i) {
    float c = t.codes[i];
    switch (b.dtype) {
    case plan::DType::F32: static_cast<float *>(dst)[i] = c; break;
    case plan::DType::F16: static_cast<uint16_t *>(dst)[i] = util::floatToHalf(c); break;
    case plan::DType::BF16: static_cast<uint16_t *>(dst)[i] = util::floatToBf16(c); break;
    default: throw std::runtime_error("weight '" + b.name + "': ternary codes cannot be " + plan::dtypeName(b.dtype));
    }
  }
}

} // namespace tessera::weights
