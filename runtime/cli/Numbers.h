// Numbers.h - strict number options for CLI11. CLI11 2.1 clamps an integer
// beyond int64 to its maximum (strtoll) and reads "3e9" as an integer; these
// validators run on the text before that conversion, so out-of-range values
// are one clear usage error instead of a silently different number.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace tessera::cli {

// A decimal integer in [lo, hi].
inline CLI::Validator integerIn(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string &text) -> std::string {
        int64_t v = 0;
        const char *b = text.data(), *e = text.data() + text.size();
        if (b != e && *b == '+') ++b;
        auto [end, ec] = std::from_chars(b, e, v);
        bool digits = end == e && b != e;
        if (ec == std::errc::result_out_of_range || (digits && ec == std::errc() && (v < lo || v > hi)))
          return "'" + text + "' is out of range: expected an integer in [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]";
        if (!digits || ec != std::errc()) return "'" + text + "' is not an integer";
        return std::string();
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", "INTEGER_IN");
}

// An unsigned decimal integer (a seed): 0 .. 2^64-1.
inline CLI::Validator unsignedInteger() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        uint64_t v = 0;
        const char *b = text.data(), *e = text.data() + text.size();
        auto [end, ec] = std::from_chars(b, e, v);
        if (ec == std::errc::result_out_of_range) return "'" + text + "' is out of range: expected 0 .. 2^64-1";
        if (end != e || b == e || ec != std::errc()) return "'" + text + "' is not a non-negative integer";
        return std::string();
      },
      "UINT", "UNSIGNED");
}

// A finite number (no nan, no inf, no overflow to inf such as 1e999).
inline CLI::Validator finiteNumber() {
  return CLI::Validator(
      [](std::string &text) -> std::string {
        char *end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a number";
        if (!std::isfinite(v)) return "'" + text + "' is not a finite number";
        return std::string();
      },
      "NUMBER", "FINITE");
}

} // namespace tessera::cli
