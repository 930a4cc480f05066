// Tuner.h - `tessera-rt tune`: measures a tuning plan's candidates on a
// Vulkan device and writes that device's profile (docs/autotune.md).
//
// Two processes: the supervisor (runTuning) starts a worker (the same
// binary, hidden subcommand `tune-worker`) that measures and appends every
// result to a journal; it draws the progress bar from the journal, and when
// the worker hangs on a candidate past the timeout, loses the device or
// dies, marks that candidate failed, starts a new worker and goes on. An
// interrupted run (Ctrl-C) resumes from the journal. At the end the
// supervisor writes the profile: the tuning plan's base profile, keyed by
// the device, with an exact-shape entry per tuned problem and the
// provenance of the run.
#pragma once

#include <string>
#include <vector>

namespace tessera::autotune {

struct TuneOptions {
  std::string ttune;      // the tuning plan
  std::string out;        // the profile to write (merged into when it is this device's)
  std::string journal;    // default: <out>.journal
  int device = 0;         // Vulkan device index
  double budget_s = 120;  // wall-clock budget of the measurements
  double timeout_s = 60;  // one candidate's measurement, before it is declared hung
  int repeats = 5;        // timed runs per measurement
  std::vector<std::string> families; // tune only these rule families (matmul, reduce, ...); empty: all
  std::string name;       // the profile's name (default: the base profile's)
  bool restart = false;   // ignore an existing journal
  int64_t cold_cache_bytes = -1; // scrub between timed repetitions (BenchOptions); -1: coldCacheBytes(device)
  std::string exe;        // the binary that runs `tune-worker` (default: this one)
};

// The supervisor. Throws std::runtime_error (one line) on failure.
void runTuning(const TuneOptions &o);

// Prints the tuning plan's problems (key, occurrences, candidates with where
// each comes from) of the selected families on stdout.
void listTuningPlan(const TuneOptions &o);

// The worker: measures what the journal lacks until `deadline` (seconds
// since the epoch), appending to the journal. Returns the exit code: 0 done,
// 3 the device was lost (the supervisor starts another worker).
int runTuneWorker(const TuneOptions &o, double deadline);

} // namespace tessera::autotune
