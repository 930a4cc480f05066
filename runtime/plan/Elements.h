// Elements.h - element i of a plan buffer's bytes, read as or written from a
// double, by the buffer's dtype (f16/bf16 rounded to nearest even on write).
// For tools that fill and compare buffers on the host: the tuner, tessera-kcheck.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/util/Half.h"

#include <cstdint>
#include <cstring>

namespace tessera::plan {

inline double readElement(const void *bytes, DType t, size_t i) {
  const uint8_t *data = static_cast<const uint8_t *>(bytes);
  switch (t) {
  case DType::F32: {
    float f;
    std::memcpy(&f, data + 4 * i, 4);
    return f;
  }
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, data + 4 * i, 4);
    return v;
  }
  case DType::F16:
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, data + 2 * i, 2);
    return t == DType::F16 ? util::halfToFloat(h) : util::bf16ToFloat(h);
  }
  }
  return 0;
}

inline void writeElement(void *bytes, DType t, size_t i, double v) {
  uint8_t *data = static_cast<uint8_t *>(bytes);
  switch (t) {
  case DType::F32: {
    float f = float(v);
    std::memcpy(data + 4 * i, &f, 4);
    return;
  }
  case DType::I32: {
    int32_t x = int32_t(v);
    std::memcpy(data + 4 * i, &x, 4);
    return;
  }
  case DType::F16:
  case DType::BF16: {
    uint16_t h = t == DType::F16 ? util::floatToHalf(float(v)) : util::floatToBf16(float(v));
    std::memcpy(data + 2 * i, &h, 2);
    return;
  }
  }
}

} // namespace tessera::plan
