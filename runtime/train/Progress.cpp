// Progress.cpp - the progress display of `tessera train` (Progress.h).
#include "runtime/train/Progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#if defined(_WIN32)
#include <io.h>
#define TESSERA_ISATTY _isatty
#else
#include <unistd.h>
#define TESSERA_ISATTY isatty
#endif

namespace tessera::train {

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  return buf;
}

Progress::Progress(int64_t done, int64_t total, int64_t tokensPerStep)
    : done_(done), total_(total), tokensPerStep_(tokensPerStep), tty_(TESSERA_ISATTY(2) != 0),
      start_(Clock::now()) {
  every_ = std::max<int64_t>(1, std::min<int64_t>(50, total / 20));
}

void Progress::update(int64_t step, double loss) {
  double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  int64_t ran = step - done_;
  double tokensPerS = elapsed > 0 ? double(ran * tokensPerStep_) / elapsed : 0;
  double eta = ran > 0 ? elapsed / double(ran) * double(total_ - step) : 0;
  bool last = step == total_;
  if (tty_) {
    double sinceDraw = std::chrono::duration<double>(Clock::now() - lastDraw_).count();
    if (!last && ran > 1 && sinceDraw < 0.1) return;
    lastDraw_ = Clock::now();
    const int width = 24;
    int filled = int(double(width) * double(step) / double(total_));
    std::string bar(size_t(filled), '=');
    if (filled < width) bar += '>' + std::string(size_t(width - filled - 1), ' ');
    char evalText[32] = "";
    if (hasEval_) std::snprintf(evalText, sizeof(evalText), " eval %.4f", evalLoss_);
    std::fprintf(stderr, "\rstep %lld/%lld [%s] loss %.4f%s | %.0f tok/s | ETA %s   ", (long long)step,
                 (long long)total_, bar.c_str(), loss, evalText, tokensPerS, formatDuration(eta).c_str());
    if (last) std::fputc('\n', stderr);
  } else if (ran == 1 || last || step % every_ == 0) {
    char evalText[32] = "";
    if (hasEval_) std::snprintf(evalText, sizeof(evalText), " eval %.4f", evalLoss_);
    std::fprintf(stderr, "step %lld/%lld loss %.4f%s tok/s %.0f eta %s\n", (long long)step, (long long)total_, loss,
                 evalText, tokensPerS, formatDuration(eta).c_str());
  }
  std::fflush(stderr);
}

} // namespace tessera::train
