// DispatchProfile.h - where a program's GPU time goes in its real sequence:
// per dispatch, the median over runs of the time from the previous
// dispatch's end to its end (Executor dispatch timestamps). Written by
// `tessera-rt train --dispatch-profile FILE` and `tessera-kbench --sequence`;
// unlike kbench's repeated single dispatches, caches are as cold as in
// training (docs/autotune.md, "kbench and training").
#pragma once

#include "runtime/plan/Plan.h"

#include <string>
#include <vector>

namespace tessera::train {

class DispatchProfile {
public:
  DispatchProfile(const plan::Plan &plan, const std::string &program);
  // One run's per-dispatch times (ms), as Executor::dispatchTimes gives them.
  void add(const std::vector<double> &ms);
  size_t runs() const { return runs_; }
  // TSV: dispatch, kernel, family, result buffer, median us, config; then
  // "# family" lines with each family's total. Written atomically.
  void write(const std::string &path) const;
  // "matmul 120.3 ms (2101), attention 20.1 ms (...)": the largest families.
  std::string summary(size_t families = 6) const;

private:
  std::vector<double> medians() const; // us per dispatch
  const plan::Plan &plan_;
  const plan::Program *program_;
  std::vector<std::vector<double>> samples_; // per dispatch, us
  size_t runs_ = 0;
};

} // namespace tessera::train
