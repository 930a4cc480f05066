// OutputLock.h - one training run per --out directory.
//
// `tessera train` holds an exclusive lock (flock) on `<OUT>.lock` while it
// runs, with its pid written inside. A second run on the same --out stops at
// once naming the holder's pid, instead of the two deleting each other's
// temporary files and the last to finish silently winning. The kernel drops
// the lock of a process that dies, so a lock file left by a killed run is
// taken over (and said so). The file is removed when the run ends.
#pragma once

#include <string>

namespace tessera::train {

class OutputLock {
public:
  explicit OutputLock(const std::string &out); // throws std::runtime_error naming the holder
  ~OutputLock();
  OutputLock(const OutputLock &) = delete;
  OutputLock &operator=(const OutputLock &) = delete;

  static std::string lockPath(const std::string &out); // "<OUT>.lock"

private:
  std::string path_;
  int fd_ = -1;
};

} // namespace tessera::train
