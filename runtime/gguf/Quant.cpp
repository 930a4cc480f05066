#include "runtime/gguf/Quant.h"

#include "runtime/util/Half.h"

#include <cmath>
#include <cstring>

namespace tessera::gguf {

namespace {

void quantizeQ8Block(const float *x, uint8_t *out) {
  float amax = 0.0f;
  for (uint64_t j = 0; j < kQ8Block; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint16_t dh = util::floatToHalf(d);
  std::memcpy(out, &dh, 2);
  for (uint64_t j = 0; j < kQ8Block; ++j) {
    const float v = x[j] * id;
    out[2 + j] = uint8_t(int8_t(std::roundf(v)));
  }
}

} // namespace

std::vector<uint8_t> encode(TensorType type, const float *x, size_t n) {
  std::vector<uint8_t> out(tensorBytes(type, n));
  switch (type) {
  case TensorType::F32:
    if (n) std::memcpy(out.data(), x, n * 4);
    break;
  case TensorType::F16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = util::floatToHalf(x[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
    break;
  case TensorType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &x[i], 4);
      // Round to nearest even; NaN stays a (quiet) NaN.
      uint16_t b = (bits & 0x7fffffffu) > 0x7f800000u ? uint16_t((bits >> 16) | 0x40)
                                                      : uint16_t((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
      std::memcpy(out.data() + 2 * i, &b, 2);
    }
    break;
  case TensorType::Q8_0:
    for (size_t b = 0; b < n / kQ8Block; ++b) quantizeQ8Block(x + b * kQ8Block, out.data() + b * kQ8BlockBytes);
    break;
  }
  return out;
}

void decode(TensorType type, const uint8_t *bytes, size_t n, float *out) {
  switch (type) {
  case TensorType::F32:
    if (n) std::memcpy(out, bytes, n * 4);
    break;
  case TensorType::F16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = util::halfToFloat(h);
    }
    break;
  case TensorType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = util::bf16ToFloat(h);
    }
    break;
  case TensorType::Q8_0:
    for (size_t b = 0; b < n / kQ8Block; ++b) {
      const uint8_t *blk = bytes + b * kQ8BlockBytes;
      uint16_t dh;
      std::memcpy(&dh, blk, 2);
      float d = util::halfToFloat(dh);
      for (uint64_t j = 0; j < kQ8Block; ++j) out[b * kQ8Block + j] = float(int8_t(blk[2 + j])) * d;
    }
    break;
  }
}

} // namespace tessera::gguf
