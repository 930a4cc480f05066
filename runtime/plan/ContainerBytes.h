// ContainerBytes.h - the little-endian integers, FNV-1a 64 checksum and blob
// alignment of Tessera's binary containers: plans (runtime/plan/Plan.cpp,
// docs/plan-format.md) and tuning plans (autotune/TuningPlan.cpp).
#pragma once

#include "runtime/util/File.h"

#include <cstddef>
#include <cstdint>

namespace tessera::plan::bytes {

inline uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

inline uint64_t fnv1a64(const uint8_t *p, size_t n) {
  util::Fnv1a64 f;
  f.update(p, n);
  return f.h;
}

inline void putU32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline void putU64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline uint32_t getU32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
inline uint64_t getU64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

} // namespace tessera::plan::bytes
