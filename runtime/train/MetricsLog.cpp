#include "runtime/train/MetricsLog.h"

#include "runtime/util/Json.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace tessera::train {

namespace {

void writeAll(int fd, const char *p, size_t n, const std::string &path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error(path + ": write error: " + std::strerror(errno));
    p += w;
    n -= size_t(w);
  }
}

// The lines of `text` whose "step" is at most `step`.
std::string linesUpTo(const std::string &text, int64_t step) {
  std::string kept;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    try {
      nlohmann::json m = util::parseJson(line);
      if (m.is_object() && m.contains("step") && m["step"].is_number_integer() && m["step"].get<int64_t>() <= step)
        kept.append(line).push_back('\n');
    } catch (const util::JsonError &) { // a torn line of a killed run
    }
  }
  return kept;
}

} // namespace

MetricsLog::MetricsLog(const std::string &path, int64_t keepUpTo) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    // Nobody else writes the file: start it over, or keep the steps up to the checkpoint.
    std::string kept;
    if (keepUpTo >= 0) {
      std::string text;
      char buf[1 << 16];
      ssize_t n;
      off_t off = 0;
      while ((n = ::pread(fd_, buf, sizeof(buf), off)) > 0) text.append(buf, size_t(n)), off += n;
      kept = linesUpTo(text, keepUpTo);
    }
    if (::ftruncate(fd_, 0) != 0) throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
    writeAll(fd_, kept.data(), kept.size(), path);
    ::flock(fd_, LOCK_SH); // from now on others may append beside us
  } else {
    ::flock(fd_, LOCK_SH);
    std::fprintf(stderr, "note: %s is being written by another run: this run appends its lines to it\n", path.c_str());
  }
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::append(const std::string &line) {
  // One write(2) per line on an O_APPEND descriptor: atomic against other appenders.
  ssize_t w = ::write(fd_, line.data(), line.size());
  if (w == ssize_t(line.size())) return;
  if (w < 0) throw std::runtime_error(path_ + ": write error: " + std::strerror(errno));
  writeAll(fd_, line.data() + w, line.size() - size_t(w), path_); // a short write (disk full): finish it
}

} // namespace tessera::train
