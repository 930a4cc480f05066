// TestUtil.h - helpers shared by the runtime tests.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tessera::test {

// A fresh directory under the system temp dir, removed at destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tessera-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    char *p = mkdtemp(buf.data());
    if (!p) std::abort();
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string &name) const { return (path / name).string(); }
};

inline std::string readText(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void writeText(const std::string &path, const std::string &text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::vector<std::string> lines(const std::string &text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

struct RunResult {
  int code = -1;
  std::string out, err;
};

// Runs a shell command, capturing stdout and stderr into files under dir.
inline RunResult run(const std::string &command, const TempDir &dir) {
  std::string out = dir / "cmd.stdout", err = dir / "cmd.stderr";
  int status = std::system((command + " >" + out + " 2>" + err).c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = readText(out);
  r.err = readText(err);
  return r;
}

inline std::string quote(const std::string &s) { return "'" + s + "'"; }

inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::string s = readText(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

inline std::vector<uint8_t> kernel(const std::string &name) {
  return readBytes(std::string(TESSERA_TEST_KERNEL_DIR) + "/" + name + ".spv");
}

// Reads a safetensors file with the independent python reader.
inline nlohmann::json pythonSafetensors(const std::string &path, const TempDir &dir) {
  RunResult r = run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/dump_safetensors.py " + quote(path), dir);
  if (r.code != 0) return nlohmann::json{{"python_error", r.err}};
  return nlohmann::json::parse(r.out);
}

} // namespace tessera::test
