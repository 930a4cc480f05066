#include "runtime/train/OutputLock.h"

#include "runtime/util/File.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::train {

namespace {

long readPid(int fd) {
  char buf[32] = {0};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

} // namespace

std::string OutputLock::lockPath(const std::string &out) {
  std::filesystem::path p(out);
  while (!p.empty() && p.filename().empty()) p = p.parent_path(); // "adapter/" -> "adapter"
  return p.string() + ".lock";
}

OutputLock::OutputLock(const std::string &out) : path_(lockPath(out)) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(path_ + ": cannot create the lock of --out " + out + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      long holder = readPid(fd);
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw std::runtime_error(out + " is in use by another `tessera train` (pid " +
                                 (holder > 0 ? std::to_string(holder) : std::string("unknown")) + ", lock " + path_ +
                                 "): wait for it to finish, or train into another --out");
      throw std::runtime_error(path_ + ": cannot lock: " + std::strerror(err));
    }
    // The holder before us removes the file as it ends: make sure we locked
    // the file that is still at the path, else start again.
    struct stat mine, there;
    if (::fstat(fd, &mine) != 0 || ::stat(path_.c_str(), &there) != 0 || mine.st_ino != there.st_ino ||
        mine.st_dev != there.st_dev) {
      ::close(fd);
      continue;
    }
    long previous = readPid(fd);
    if (previous > 0 && previous != long(::getpid()))
      std::fprintf(stderr, "note: %s was left by pid %ld, which is no longer running: taken over\n", path_.c_str(),
                   previous);
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error(path_ + ": cannot write: " + std::strerror(err));
    }
    fd_ = fd;
    return;
  }
  throw std::runtime_error(path_ + ": cannot lock: it keeps changing (another run starting and ending?)");
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
}

} // namespace tessera::train
