// MetricsLog.h - the --metrics JSONL file of a training run.
//
// Lines are appended through an O_APPEND descriptor, each with a single
// write(2), so runs sharing one file never interleave or lose lines. Every
// run holds a shared flock on the file while it writes; a run that can take
// the lock exclusively (nobody else is writing) first starts a fresh file
// over, or, resuming from step S, drops the lines of steps after S (written
// before the interruption). When another run is writing, the file is left as
// it is and this run appends (a note says so).
#pragma once

#include <cstdint>
#include <string>

namespace tessera::train {

class MetricsLog {
public:
  // keepUpTo < 0: a fresh run; else the checkpoint's step of a resumed run.
  MetricsLog(const std::string &path, int64_t keepUpTo);
  ~MetricsLog();
  MetricsLog(const MetricsLog &) = delete;
  MetricsLog &operator=(const MetricsLog &) = delete;

  void append(const std::string &line); // line ends with '\n'; throws on a write error

private:
  std::string path_;
  int fd_ = -1;
};

} // namespace tessera::train
