// Progress.h - what `tessera train` shows on stderr while it runs: a bar
// redrawn in place on a terminal, a plain line every few steps otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tessera::train {

// "m:ss" or "h:mm:ss".
std::string formatDuration(double seconds);

class Progress {
public:
  // `done` steps were trained before (a resumed run); speed and ETA count this run's.
  Progress(int64_t done, int64_t total, int64_t tokensPerStep);
  // tokens/s shown is the average since the start (the metrics file has per-step values).
  void update(int64_t step, double loss);
  // Shown after the loss from now on (the last validation loss).
  void setEvalLoss(double loss) { evalLoss_ = loss; hasEval_ = true; }

private:
  using Clock = std::chrono::steady_clock;
  int64_t done_, total_, tokensPerStep_, every_;
  bool tty_;
  bool hasEval_ = false;
  double evalLoss_ = 0;
  Clock::time_point start_, lastDraw_{};
};

} // namespace tessera::train
