// Recorder.h - writes what a kernel test does with one plan as a kernel-check
// case (Case.h) for tessera-kcheck: the harness reports its runs, reads and
// checks, the recorder works out the inputs itself.
//
// Inputs are found by comparing every storage-owning buffer with a snapshot
// taken after the previous run (or after initialisation: zeros and
// constants), so whatever the test wrote, through any helper, is recorded.
// A check is attributed to the most recent unclaimed read of the same length
// (and, when the plan really ran, the same values): `check(get(...), ref)`.
#pragma once

#include "test/unit/kcheck/Case.h"

#include "runtime/plan/Plan.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessera::kcheck {

// TESSERA_KCHECK_EXPORT: the folder cases are written into ("" when unset).
std::string exportDir();

// Notes a uniformFloats() draw, so that a buffer holding it exactly is
// recorded as the generator instead of its bytes (large inputs stay small).
void noteUniform(uint64_t seed, int64_t n, double lo, double hi, const std::vector<float> &values);

class Recorder {
public:
  // `data(i)`: the host copy of storage-owning plan buffer i. `executed`:
  // whether the plan really runs here (false: compiled for a device this one
  // is not; reads hold no results, so checks match reads by length alone).
  Recorder(std::string dir, std::string name, const plan::Plan &plan, std::string profile,
           std::function<const void *(size_t)> data, bool executed);
  ~Recorder(); // writes the case (errors go to stderr: a destructor must not throw)

  void beforeRun(const std::string &program);
  void afterRun();
  void noteRead(size_t buffer, int64_t offset, std::vector<double> values);
  // Records a check of `got`; returns "" or why it cannot be attributed.
  std::string check(const std::vector<double> &got, const std::vector<double> &expected,
                    const std::vector<double> &scale, double rel, double abs, const std::string &what);
  // Writes the case now (the destructor does it otherwise); throws on I/O errors.
  void write();

private:
  struct Read {
    size_t buffer;
    int64_t offset;
    std::vector<double> values;
    bool claimed = false;
  };
  struct PendingCheck {
    Check check;
    std::vector<double> expected, scale;
  };
  struct PendingInput {
    Input input;
    std::vector<uint8_t> bytes; // when not generated
  };
  struct PendingStep {
    std::vector<PendingInput> inputs;
    std::string program;
    std::vector<PendingCheck> checks;
  };

  std::string dir_, name_, profile_;
  const plan::Plan &plan_;
  std::function<const void *(size_t)> data_;
  bool executed_;
  std::vector<std::vector<uint8_t>> snapshot_; // per buffer (empty for aliases)
  std::vector<PendingStep> steps_;
  std::vector<Read> reads_;
  bool written_ = false;
};

} // namespace tessera::kcheck
