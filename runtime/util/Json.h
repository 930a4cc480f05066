// Json.h - JSON reading shared by every reader of untrusted files (plans,
// data lines, safetensors headers, checkpoints, adapter configs, profiles).
//
// nlohmann's parser is iterative, but printing a value (dump) and comparing
// or copying one recurse: a value nested 100k levels deep overflows the
// stack. parseJson rejects nesting deeper than kMaxJsonDepth before parsing,
// and describeJson prints any value in a bounded number of characters, so an
// error message never grows with the input.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tessera::util {

// Deeper than any file Tessera reads (plans nest 5 levels).
constexpr size_t kMaxJsonDepth = 64;

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses `text`. Throws JsonError with a one-line message (nlohmann's
// "[json.exception...]" prefix dropped) on invalid JSON or on nesting deeper
// than kMaxJsonDepth ("nested deeper than 64 levels at byte N").
nlohmann::json parseJson(std::string_view text);
inline nlohmann::json parseJson(const void *data, size_t size) {
  return parseJson(std::string_view(static_cast<const char *>(data), size));
}

// Where `text` nests arrays/objects deeper than maxDepth: the byte offset,
// or npos. Strings (and escapes in them) are skipped.
size_t findJsonTooDeep(std::string_view text, size_t maxDepth = kMaxJsonDepth);

// A short text for a JSON value in an error message: scalars as JSON (long
// strings cut), arrays and objects printed to a small depth and length
// ("[1,[2,[...]]]", "{\"a\":1,...}"). At most about 80 characters.
std::string describeJson(const nlohmann::json &value);

// nlohmann's exception text without its "[json.exception.x.y] " prefix.
std::string jsonMessage(const std::string &what);

} // namespace tessera::util
