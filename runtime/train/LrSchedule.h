// LrSchedule.h - the learning rate of each optimizer step, computed by the
// runtime and written into the hparams buffer (never a recompile). The
// formulas are transformers' get_{constant,linear,cosine}_schedule_with_warmup
// (docs/training.md).
#pragma once

#include <cstdint>
#include <string>

namespace tessera::train {

enum class LrScheduleKind { Constant, Linear, Cosine };

// "constant", "linear" or "cosine"; throws std::runtime_error otherwise.
LrScheduleKind parseLrSchedule(const std::string &name);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::Constant;
  double lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Learning rate of 0-based optimizer step s:
  //   s < W:    lr * s / max(1, W)                   (step 0 of a warmup has lr 0)
  //   constant: lr
  //   linear:   lr * max(0, (total - s) / max(1, total - W))
  //   cosine:   lr * max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, total - W))))
  double at(int64_t s) const;
};

} // namespace tessera::train
