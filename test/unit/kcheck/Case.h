// Case.h - the kernel-check case format (docs/kernel-checks.md): a plan, the
// buffers to write before each run of one of its programs, and the buffer
// elements to compare with float64 references after it. KernelNumericsTest
// writes cases (TESSERA_KCHECK_EXPORT=DIR); tessera-kcheck runs them on any
// Vulkan device with the runtime alone. Plain C++ + nlohmann-json, no Vulkan.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::kcheck {

constexpr int kCaseFormat = 1;
constexpr const char *kCaseFile = "case.json";

struct CaseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The input generator a case may name instead of storing the data: element
// i of stream `seed` is float(lo + (hi - lo) * u_i), u_i = (splitmix64(seed
// * 2^32 + i) >> 11) * 2^-53, computed in double and rounded to nearest.
std::vector<float> uniformFloats(uint64_t seed, int64_t n, double lo, double hi);

// Bytes written into one plan buffer (its whole storage) before a run.
struct Input {
  int64_t buffer = -1;  // plan buffer index (storage-owning)
  std::string name;     // its name, checked against the plan
  std::string file;     // raw bytes, relative to the case folder; or
  bool uniform = false; // generated f32: uniformFloats(seed, count, lo, hi)
  uint64_t seed = 0;
  int64_t count = 0;
  double lo = 0, hi = 0;
};

// Elements [offset, offset + count) of a buffer, read in its dtype and
// compared with float64 references: passes when
//   |got - expected| <= max(abs, rel * (|expected| + scale_i))
// (scale_i = 0 without a scale file), or both are NaN, or expected is an
// infinity that got equals.
struct Check {
  int64_t buffer = -1;
  std::string name;
  int64_t offset = 0, count = 0;
  std::string expected; // count float64 (little-endian), relative to the case folder
  std::string scale;    // optional: count float64
  double rel = 0, abs = 0;
  std::string what;     // what the test called it (printed on failure)
};

struct Step {
  std::vector<Input> inputs; // before the run
  std::string program;       // e.g. "eval", "train_step"
  std::vector<Check> checks; // after it
};

// Before the first step every storage-owning buffer is zero except
// constants, which hold their blobs.
struct Case {
  std::string name;
  std::string plan = "plan.tplan"; // relative to the case folder
  std::string profile;             // the profile it was compiled with (informational)
  std::vector<std::string> configs; // its kernels' configs (informational)
  std::vector<Step> steps;
};

// Reads DIR/case.json; throws CaseError naming the file and field.
Case readCase(const std::string &dir);
// Writes DIR/case.json (atomically). The data files are the caller's.
void writeCase(const Case &c, const std::string &dir);

// Reads a file of float64 values; throws CaseError naming it when its size is not 8 * count.
std::vector<double> readDoubles(const std::string &path, int64_t count);

// Case folders under `root`: root itself when it holds case.json, else its
// subfolders that do, sorted by name.
std::vector<std::string> findCases(const std::string &root);

} // namespace tessera::kcheck
