#include "runtime/util/Json.h"

namespace tessera::util {

using json = nlohmann::json;

std::string jsonMessage(const std::string &what) {
  if (!what.empty() && what[0] == '[') {
    size_t close = what.find("] ");
    if (close != std::string::npos) return what.substr(close + 2);
  }
  return what;
}

size_t findJsonTooDeep(std::string_view text, size_t maxDepth) {
  size_t depth = 0;
  bool inString = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
      continue;
    }
    if (c == '"') inString = true;
    else if (c == '[' || c == '{') {
      if (++depth > maxDepth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

json parseJson(std::string_view text) {
  size_t deep = findJsonTooDeep(text);
  if (deep != std::string_view::npos)
    throw JsonError("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " + std::to_string(deep));
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception &e) {
    throw JsonError(jsonMessage(e.what()));
  }
}

namespace {

constexpr size_t kBudget = 80;

// Appends v to out, at most `depth` levels of arrays/objects deep, stopping
// (with "...") once out passes kBudget characters.
void describe(const json &v, int depth, std::string &out) {
  if (out.size() > kBudget) return;
  if (v.is_array() || v.is_object()) {
    bool array = v.is_array();
    out += array ? '[' : '{';
    if (depth == 0 && !v.empty()) {
      out += "...";
    } else {
      size_t i = 0;
      for (auto it = v.begin(); it != v.end(); ++it, ++i) {
        if (out.size() > kBudget) {
          out += "...";
          break;
        }
        if (i) out += ',';
        if (!array) {
          std::string key = json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace);
          out += key.size() > 24 ? key.substr(0, 20) + "...\"" : key;
          out += ':';
        }
        describe(*it, depth - 1, out);
      }
    }
    out += array ? ']' : '}';
    return;
  }
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 36) + (v.is_string() ? "...\"" : "...");
  out += s;
}

} // namespace

std::string describeJson(const json &value) {
  std::string out;
  describe(value, 3, out);
  return out;
}

} // namespace tessera::util
