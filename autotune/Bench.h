// Bench.h - measuring the candidates of one tuning-plan problem on a Vulkan
// device: the reference kernel's outputs on random inputs, then per
// candidate a checked run (outputs compared with the reference's) and
// timed runs (timestamp queries; warm-up, repeats, median after rejecting
// outliers). Runtime only (no MLIR).
#pragma once

#include "autotune/TuningPlan.h"
#include "runtime/vulkan/Context.h"

#include <memory>
#include <map>
#include <string>
#include <vector>

namespace tessera::autotune {

struct Measurement {
  std::string status; // "ok", "wrong" (output differs from the reference), "failed", "unsupported"
  double us = 0;      // median time of one run of the candidate's dispatches
  std::vector<double> samples; // per-run times (us) kept after outlier rejection
  int rejected_samples = 0;    // outliers dropped
  double max_error = 0;        // largest |c - r| / (rtol*|r| + atol*max|r|): <= 1 passes
  std::string reason;          // why wrong / failed / unsupported
  int reps = 1;                // dispatch repetitions per timed run
  // Host seconds by phase (fill, executor, check, read, compare, time):
  // where tuning time goes, in the journal as "phases".
  std::map<std::string, double> phases;
};

struct BenchOptions {
  int repeats = 5;           // timed runs per measurement
  double target_ms = 2.0;    // a timed run repeats the dispatches until it lasts about this long
  double warm_ms = 10.0;     // untimed runs first, until they took this long (the GPU leaves its idle clocks)
  uint64_t seed = 0x7e55e7a; // of the random inputs
  // > 0: each repetition of a candidate's dispatches runs after a fill of a
  // scrub buffer this large (vk::ExecutorOptions::cold_cache_bytes) and only
  // the dispatches are timed: inputs come from memory, not from the cache the
  // previous repetition warmed, as in a training step (docs/autotune.md,
  // "Cold caches"). coldCacheBytes(device) is the tuner's choice.
  uint64_t cold_cache_bytes = 0;
};

// The scrub size for a device: 256 MiB (above the last-level caches of
// today's GPUs: 50 MiB on an H100/H200, 96-256 MiB of AMD's Infinity Cache),
// at most 1/16 of its device-local memory; 0 on a CPU device (lavapipe),
// whose fills would cost more tuning time than they teach.
uint64_t coldCacheBytes(const vk::DeviceInfo &device);

class ProblemBench {
public:
  // Parses and checks the problem's plan (programs, buffers) and fills the
  // inputs; throws TuningPlanError naming the field.
  ProblemBench(vk::Context &ctx, const TuningPlan &t, size_t problem, const std::string &origin,
               BenchOptions options = {});
  ~ProblemBench();

  // Runs the reference kernel (once; later calls return its result).
  // status "ok", or "failed" with the reason.
  const Measurement &reference();
  // Checks candidate `c` against the reference, then times it.
  Measurement measure(size_t candidate);
  // Why the device cannot run candidate `c` ("" when it can): threads and
  // shared memory against the device's limits.
  std::string unsupported(size_t candidate) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Median after dropping samples more than 3 median absolute deviations
// above the median (timer noise, preemption); `rejected` gets the count.
double robustMedian(std::vector<double> &samples, int *rejected = nullptr);

} // namespace tessera::autotune
