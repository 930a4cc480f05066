// TuningPlan.h - the tuning plan (.ttune): what `tessera compile
// --tuning-plan` writes and `tessera-rt tune` measures on the device with
// the runtime alone (no MLIR). docs/autotune.md documents the layout:
//
//   header (32 bytes): "TESSTUNE" | u32 version | u32 flags | u64 manifest_bytes | u64 checksum
//   manifest: UTF-8 JSON, manifest_bytes long
//   zero padding to a 16-byte file offset
//   blob section: every blob at a 16-byte aligned offset from the section start
//
// as the plan format (docs/plan-format.md), checksum FNV-1a 64 over every
// byte after the header. Each problem's blob is itself a plan file holding
// one buffer per kernel argument and one program per candidate (and one for
// the reference kernel): the plan reader validates it and the executor runs
// it unchanged.
#pragma once

#include "autotune/SearchSpace.h"
#include "runtime/plan/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::autotune {

constexpr uint32_t kTuningPlanVersion = 1;
constexpr char kTuningMagic[8] = {'T', 'E', 'S', 'S', 'T', 'U', 'N', 'E'};

// The tessera version (git describe) this binary was built from; a tuning
// plan records the compiler's, and the tuner refuses another's.
const char *tesseraVersion();

struct TuningPlanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How the tuner fills a buffer of a problem before every checked run
// (random, never zero, in the domain of the op).
struct BufferFill {
  enum Kind {
    Signed,   // floats of magnitude in [0.25, 1] with random signs
    Positive, // floats in [0.5, 2] (log, sqrt, rsqrt, pow, division)
    Index,    // integers in [lo, hi]
    Labels,   // integers in [lo, hi], about one in eight `ignore` (cross-entropy labels)
    Bool,     // 0 or 1 (i1 stored as i32)
    Values,   // exactly `values` (hparams, grad_norm)
    None,     // scratch: left as the kernels write it
  } kind = Signed;
  int64_t lo = 0, hi = 0, ignore = -100;
  std::vector<float> values;
};

struct TuneBuffer {
  // input: read only; output: written (compared with the reference);
  // inout: filled and written (compared); scratch: the kernels' own.
  std::string role = "input";
  BufferFill fill;
};

struct TuneCandidate {
  KernelConfig config;
  std::string program; // name of its program in the problem's plan
  std::string origin;  // "rule", "seed <profile>", "space", "reference"
};

struct TuneProblem {
  std::string key;     // the op as the compiler prints it (ExactEntry::key)
  ProblemShape shape;  // family and sizes (the cost model's features)
  int64_t count = 0;   // occurrences in the model's programs
  std::string dtype;   // storage type of the result ("f32", "bf16", ...)
  std::string summary; // "M=512 N=128 K=128", "rows=512 len=128", "n=65536"
  uint32_t plan_blob = 0;
  std::vector<TuneBuffer> buffers; // one per buffer of the problem's plan
  TuneCandidate reference;
  std::vector<TuneCandidate> candidates;
  int64_t rule = 0;                // index of the rules' config in `candidates`
  double rtol = 1e-3, atol = 1e-4; // |c - r| <= rtol*|r| + atol*max|r|
};

struct TuningPlan {
  uint32_t version = kTuningPlanVersion;
  std::string compiler_version; // tesseraVersion() of the compiler that wrote it
  std::string model_file;
  std::string profile_json;     // the base profile (its rules are the baseline)
  std::vector<TuneProblem> problems;
  std::vector<std::vector<uint8_t>> blobs;

  // The problem's plan (parsed and validated from its blob).
  plan::Plan problemPlan(size_t problem, const std::string &origin) const;
};

std::vector<uint8_t> serializeTuningPlan(const TuningPlan &t);
void writeTuningPlanFile(const TuningPlan &t, const std::string &path); // atomic
// Validates the framing, the version (format and compiler), every field and
// index; throws TuningPlanError naming the file and the field.
TuningPlan parseTuningPlan(const std::vector<uint8_t> &bytes, const std::string &origin);
TuningPlan readTuningPlanFile(const std::string &path);
// FNV-1a 64 of the whole file (journals are tied to the plan they measured).
uint64_t tuningPlanDigest(const std::vector<uint8_t> &bytes);

} // namespace tessera::autotune
