// FuzzCheck.h - what every harness asserts about a reader's errors: one
// line, of a bounded length (a message must not grow with the input, e.g.
// by printing a 50k-level nested value). Anything else a reader lets
// escape - another exception type, a crash, a sanitizer report, a hang -
// is a finding.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tessera::fuzz {

constexpr size_t kMaxMessage = 4096;

inline void checkMessage(const std::string &message) {
  if (message.empty() || message.size() > kMaxMessage || message.find('\n') != std::string::npos) {
    std::fprintf(stderr, "bad error message (%zu bytes, must be one line of at most %zu): %.400s\n", message.size(),
                 kMaxMessage, message.c_str());
    std::abort();
  }
}

[[noreturn]] inline void finding(const std::string &what) {
  std::fprintf(stderr, "finding: %s\n", what.c_str());
  std::abort();
}

} // namespace tessera::fuzz
