// Half.h - IEEE half (binary16) and bfloat16 <-> float conversion.
#pragma once

#include <cstdint>
#include <cstring>

namespace tessera::util {

inline float bitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bitsToFloat(sign | 0x7f800000u | (mant << 13)); // inf / nan
  if (exp == 0) {
    if (mant == 0) return bitsToFloat(sign); // +-0
    // Subnormal: value = mant * 2^-24.
    float v = float(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

inline float bf16ToFloat(uint16_t b) { return bitsToFloat(uint32_t(b) << 16); }

inline uint32_t floatToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// Round to nearest even; NaN stays a (quiet) NaN. The kernels round the same
// way (compiler/lowering/kernels/KernelBuilder.cpp).
inline uint16_t floatToBf16(float f) {
  uint32_t bits = floatToBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}

// float -> binary16, rounding to nearest even (as numpy's astype(float16) and
// ggml's FP32_TO_FP16); overflow gives +-inf, NaN stays NaN.
inline uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = uint16_t((x >> 16) & 0x8000);
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;     // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00;    // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                        // normal half (>= 2^-14)
    uint32_t h = ((((a >> 23) - 112) << 10) | ((a & 0x7fffff) >> 13));
    uint32_t rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h; // a carry moves into the exponent
    return uint16_t(sign | h);
  }
  if (a < 0x33000000u) return sign;              // below half the smallest subnormal
  uint32_t m = (a & 0x7fffff) | 0x800000;        // subnormal half: units of 2^-24
  uint32_t shift = 126 - (a >> 23);
  uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) ++h;
  return uint16_t(sign | h);
}

// As floatToHalf, but finite values beyond the half range saturate at
// +-65504 as the kernels' f16 stores do (KernelBuilder.h): how a plan's f16
// weights are made.
inline uint16_t floatToHalfSaturating(float f) {
  uint16_t h = floatToHalf(f);
  if ((h & 0x7fff) == 0x7c00 && (floatToBits(f) & 0x7fffffffu) != 0x7f800000u) return uint16_t((h & 0x8000) | 0x7bff);
  return h;
}

} // namespace tessera::util
