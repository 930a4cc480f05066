#include "runtime/gguf/Quant.h"

#include "runtime/util/Half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tessera::gguf {

namespace {

void putHalf(uint8_t *out, float d) {
  uint16_t dh = util::floatToHalf(d);
  std::memcpy(out, &dh, 2);
}

float getHalf(const uint8_t *in) {
  uint16_t dh;
  std::memcpy(&dh, in, 2);
  return util::halfToFloat(dh);
}

void quantizeQ8Block(const float *x, uint8_t *out) {
  float amax = 0.0f;
  for (uint64_t j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  putHalf(out, d);
  for (uint64_t j = 0; j < 32; ++j) out[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
}

void quantizeQ4Block(const float *x, uint8_t *out) {
  float amax = 0.0f, max = 0.0f; // the value of largest magnitude, the first one on ties
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  putHalf(out, d);
  for (int j = 0; j < 16; ++j) {
    // Truncation toward zero of x/d + 8.5 (in [0.5, 16.5]): round half up.
    const uint8_t lo = uint8_t(std::min(15, int(int8_t(x[j] * id + 8.5f))));
    const uint8_t hi = uint8_t(std::min(15, int(int8_t(x[j + 16] * id + 8.5f))));
    out[2 + j] = uint8_t(lo | (hi << 4));
  }
}

void quantizeTq2Block(const float *x, uint8_t *out) {
  float amax = 0.0f;
  for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int c = 0; c < 2; ++c)
    for (int m = 0; m < 32; ++m) {
      uint8_t q = 0;
      for (int n = 0; n < 4; ++n) {
        const int code = int(std::lroundf(x[128 * c + m + 32 * n] * id)) + 1; // -1, 0, 1 -> 0, 1, 2
        q = uint8_t(q + ((code & 3) << (2 * n)));
      }
      out[32 * c + m] = q;
    }
  putHalf(out + 64, d);
}

} // namespace

void encodeInto(TensorType type, const float *x, size_t n, uint8_t *out) {
  switch (type) {
  case TensorType::F32:
    if (n) std::memcpy(out, x, n * 4);
    break;
  case TensorType::F16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = util::floatToHalf(x[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    break;
  case TensorType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &x[i], 4);
      // Round to nearest even; NaN stays a (quiet) NaN.
      uint16_t b = (bits & 0x7fffffffu) > 0x7f800000u ? uint16_t((bits >> 16) | 0x40)
                                                      : uint16_t((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
      std::memcpy(out + 2 * i, &b, 2);
    }
    break;
  case TensorType::Q8_0:
    for (size_t b = 0; b < n / 32; ++b) quantizeQ8Block(x + b * 32, out + b * 34);
    break;
  case TensorType::Q4_0:
    for (size_t b = 0; b < n / 32; ++b) quantizeQ4Block(x + b * 32, out + b * 18);
    break;
  case TensorType::TQ2_0:
    for (size_t b = 0; b < n / 256; ++b) quantizeTq2Block(x + b * 256, out + b * 66);
    break;
  }
}

std::vector<uint8_t> encode(TensorType type, const float *x, size_t n) {
  std::vector<uint8_t> out(tensorBytes(type, n));
  encodeInto(type, x, n, out.data());
  return out;
}

void decode(TensorType type, const uint8_t *bytes, size_t n, float *out) {
  switch (type) {
  case TensorType::F32:
    if (n) std::memcpy(out, bytes, n * 4);
    break;
  case TensorType::F16:
    for (size_t i = 0; i < n; ++i) out[i] = getHalf(bytes + 2 * i);
    break;
  case TensorType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = util::bf16ToFloat(h);
    }
    break;
  case TensorType::Q8_0:
    for (size_t b = 0; b < n / 32; ++b) {
      const uint8_t *blk = bytes + b * 34;
      const float d = getHalf(blk);
      for (int j = 0; j < 32; ++j) out[b * 32 + j] = float(int8_t(blk[2 + j])) * d;
    }
    break;
  case TensorType::Q4_0:
    for (size_t b = 0; b < n / 32; ++b) {
      const uint8_t *blk = bytes + b * 18;
      const float d = getHalf(blk);
      for (int j = 0; j < 16; ++j) {
        out[b * 32 + j] = float(int(blk[2 + j] & 15) - 8) * d;
        out[b * 32 + j + 16] = float(int(blk[2 + j] >> 4) - 8) * d;
      }
    }
    break;
  case TensorType::TQ2_0:
    for (size_t b = 0; b < n / 256; ++b) {
      const uint8_t *blk = bytes + b * 66;
      const float d = getHalf(blk + 64);
      for (int e = 0; e < 256; ++e) {
        const int byte = 32 * (e / 128) + e % 32, shift = 2 * ((e % 128) / 32);
        out[b * 256 + e] = float(int((blk[byte] >> shift) & 3) - 1) * d;
      }
    }
    break;
  }
}

} // namespace tessera::gguf
