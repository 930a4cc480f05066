#include "runtime/train/LrSchedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tessera::train {

LrScheduleKind parseLrSchedule(const std::string &name) {
  if (name == "constant") return LrScheduleKind::Constant;
  if (name == "linear") return LrScheduleKind::Linear;
  if (name == "cosine") return LrScheduleKind::Cosine;
  throw std::runtime_error("--lr-schedule must be constant, linear or cosine, not '" + name + "'");
}

double LrSchedule::at(int64_t s) const {
  if (s < warmup_steps) return lr * double(s) / double(std::max<int64_t>(1, warmup_steps));
  double decaySteps = double(std::max<int64_t>(1, total_steps - warmup_steps));
  switch (kind) {
  case LrScheduleKind::Constant:
    return lr;
  case LrScheduleKind::Linear:
    return lr * std::max(0.0, double(total_steps - s) / decaySteps);
  case LrScheduleKind::Cosine: {
    const double pi = 3.14159265358979323846;
    return lr * std::max(0.0, 0.5 * (1.0 + std::cos(pi * double(s - warmup_steps) / decaySteps)));
  }
  }
  return lr;
}

} // namespace tessera::train
