// Sampler.h - picking the next token from logits: greedy (temperature 0),
// or temperature, top-k and top-p (nucleus) sampling with a seeded stream.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::generate {

struct SamplingOptions {
  double temperature = 0; // 0: greedy (argmax, the lowest id on ties)
  int64_t top_k = 0;      // keep the k most likely (0: all)
  double top_p = 1.0;     // keep the smallest set whose probability reaches p
  uint64_t seed = 0;
};

class Sampler {
public:
  explicit Sampler(const SamplingOptions &o);
  int32_t next(const float *logits, int64_t vocab);

private:
  SamplingOptions o_;
  uint64_t state_;
  double uniform();
};

} // namespace tessera::generate
