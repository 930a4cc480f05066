#include "runtime/generate/Sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tessera::generate {

Sampler::Sampler(const SamplingOptions &o) : o_(o), state_(o.seed) {}

double Sampler::uniform() {
  // splitmix64, 53 bits.
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::next(const float *logits, int64_t vocab) {
  if (o_.temperature <= 0) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best]) best = i;
    return int32_t(best);
  }
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  size_t keep = o_.top_k > 0 ? std::min<size_t>(size_t(o_.top_k), ids.size()) : ids.size();
  double top = double(logits[ids[0]]);
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp((double(logits[ids[i]]) - top) / o_.temperature);
  if (o_.top_p < 1.0) {
    double acc = 0;
    size_t n = 0;
    while (n < keep) {
      acc += p[n++] / sum;
      if (acc >= o_.top_p) break;
    }
    keep = std::max<size_t>(n, 1);
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += p[i];
  }
  double u = uniform() * sum;
  for (size_t i = 0; i < keep; ++i) {
    u -= p[i];
    if (u <= 0) return ids[i];
  }
  return ids[keep - 1];
}

} // namespace tessera::generate
