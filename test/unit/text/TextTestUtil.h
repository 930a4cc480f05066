// TextTestUtil.h - what the text tests share: reading the oracles' JSON files.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>

namespace tessera::test {

// The file as JSON in its key order, or null when it cannot be opened.
inline nlohmann::ordered_json readJson(const std::string &path) {
  std::ifstream f(path);
  if (!f) return nullptr;
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::ordered_json::parse(ss.str());
}

} // namespace tessera::test
