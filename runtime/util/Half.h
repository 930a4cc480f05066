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

// Round to nearest even, saturating finite values at +-65504 as the kernels'
// f16 stores do (KernelBuilder.h); NaN stays NaN, inf stays inf.
inline uint16_t floatToHalf(float f) {
  uint32_t bits = floatToBits(f);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  uint32_t mag = bits & 0x7fffffffu;
  if (mag > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (mag == 0x7f800000u) return uint16_t(sign | 0x7c00); // inf
  if (mag >= 0x477ff000u) return uint16_t(sign | 0x7bff); // rounds to >= 65520: saturate
  if (mag < 0x38800000u) {                                // below the smallest normal half: subnormal or 0
    if (mag < 0x33000000u) return sign;                   // < 2^-25: rounds to 0
    uint32_t exp = mag >> 23, mant = (mag & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - exp; // value = mant * 2^(exp-150); half subnormal unit 2^-24
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return uint16_t(sign | q);
  }
  uint32_t h = ((mag >> 13) - (112u << 10)); // rebias exponent, keep 10 mantissa bits
  uint32_t rem = mag & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return uint16_t(sign | h);
}

} // namespace tessera::util
