// TestUtil.h - helpers shared by the runtime tests.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/plan/SpirvModule.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tessera::test {

// A plan buffer of n f32 elements.
inline plan::Buffer f32(const std::string &name, plan::BufferKind kind, int64_t n) {
  plan::Buffer b;
  b.name = name;
  b.kind = kind;
  b.shape = {n};
  b.bytes = uint64_t(n) * 4;
  return b;
}

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

// Assembles kernels/<name>.spvasm with spirv-as after replacing each key of
// `substitutions` (e.g. "@N@") by its value, and checks it with spirv-val.
inline std::vector<uint8_t> kernel(const std::string &name, const std::map<std::string, std::string> &substitutions) {
  std::string text = readText(std::string(TESSERA_TEST_SOURCE_DIR) + "/kernels/" + name + ".spvasm");
  for (const auto &[key, value] : substitutions)
    for (size_t at; (at = text.find(key)) != std::string::npos;) text.replace(at, key.size(), value);
  TempDir dir;
  writeText(dir / "k.spvasm", text);
  RunResult r = run(std::string(TESSERA_TEST_SPIRV_AS) + " --target-env vulkan1.1 " + quote(dir / "k.spvasm") +
                        " -o " + quote(dir / "k.spv") + " && " + TESSERA_TEST_SPIRV_VAL + " --target-env vulkan1.1 " +
                        quote(dir / "k.spv"),
                    dir);
  if (r.code != 0) {
    std::fprintf(stderr, "assembling %s failed:\n%s\n", name.c_str(), r.err.c_str());
    std::abort();
  }
  return readBytes(dir / "k.spv");
}

// Fills each kernel's interface from its SPIR-V (element types, sizes, writes)
// and its dispatches (max_groups), as the compiler records it.
inline void finishInterfaces(plan::Plan &p) {
  for (plan::Kernel &k : p.kernels) {
    const std::vector<uint8_t> &blob = p.blobs[k.spirv_blob];
    plan::SpirvModule m = plan::inspectSpirv(blob.data(), blob.size());
    k.interface.bindings.assign(k.num_bindings, {});
    for (const plan::SpirvBuffer &b : m.buffers) {
      if (b.binding >= k.num_bindings) continue;
      plan::BindingInterface &bi = k.interface.bindings[b.binding];
      bi.dtype = b.is_float ? plan::DType::F32 : plan::DType::I32;
      bi.bytes = b.bytes;
      bi.access = b.written ? (b.read ? plan::Access::ReadWrite : plan::Access::Write) : plan::Access::Read;
    }
    k.interface.max_groups = {1, 1, 1};
  }
  for (const plan::Program &prog : p.programs)
    for (const plan::Dispatch &d : prog.dispatches)
      for (int g = 0; g < 3; ++g)
        p.kernels[d.kernel].interface.max_groups[g] = std::max(p.kernels[d.kernel].interface.max_groups[g], d.groups[g]);
}

// Reads a safetensors file with the independent python reader.
inline nlohmann::json pythonSafetensors(const std::string &path, const TempDir &dir) {
  RunResult r = run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/dump_safetensors.py " + quote(path), dir);
  if (r.code != 0) return nlohmann::json{{"python_error", r.err}};
  return nlohmann::json::parse(r.out);
}

} // namespace tessera::test
