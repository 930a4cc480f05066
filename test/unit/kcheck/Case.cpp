#include "test/unit/kcheck/Case.h"

#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;
using nlohmann::json;

namespace tessera::kcheck {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Reads fields of one JSON object, naming "<file>: <path>.<field>" in errors.
struct Reader {
  const std::string &file;
  std::string path;
  const json &j;

  [[noreturn]] void fail(const std::string &field, const std::string &why) const {
    throw CaseError(file + ": " + path + (path.empty() ? "" : ".") + field + ": " + why);
  }
  const json &at(const std::string &field) const {
    if (!j.is_object()) throw CaseError(file + ": " + (path.empty() ? "top level" : path) + ": not an object");
    auto it = j.find(field);
    if (it == j.end()) fail(field, "missing");
    return *it;
  }
  bool has(const std::string &field) const { return j.is_object() && j.contains(field); }
  std::string str(const std::string &field) const {
    const json &v = at(field);
    if (!v.is_string()) fail(field, "not a string");
    return v.get<std::string>();
  }
  std::string str(const std::string &field, const std::string &dflt) const { return has(field) ? str(field) : dflt; }
  int64_t integer(const std::string &field, int64_t min) const {
    const json &v = at(field);
    if (!v.is_number_integer()) fail(field, "not an integer");
    int64_t x = v.get<int64_t>();
    if (x < min) fail(field, std::to_string(x) + " is below " + std::to_string(min));
    return x;
  }
  uint64_t unsignedInt(const std::string &field) const {
    const json &v = at(field);
    if (!v.is_number_unsigned()) fail(field, "not a non-negative integer");
    return v.get<uint64_t>();
  }
  double number(const std::string &field) const {
    const json &v = at(field);
    if (!v.is_number()) fail(field, "not a number");
    return v.get<double>();
  }
  const json &array(const std::string &field) const {
    const json &v = at(field);
    if (!v.is_array()) fail(field, "not an array");
    return v;
  }
  Reader child(const std::string &field, size_t i, const json &v) const {
    return Reader{file, path + (path.empty() ? "" : ".") + field + "[" + std::to_string(i) + "]", v};
  }
};

// A relative file name inside the case folder.
std::string relativeFile(const Reader &r, const std::string &field) {
  std::string f = r.str(field);
  if (f.empty() || f[0] == '/' || f.find("..") != std::string::npos)
    r.fail(field, "'" + f + "' is not a file name inside the case folder");
  return f;
}

} // namespace

std::vector<float> uniformFloats(uint64_t seed, int64_t n, double lo, double hi) {
  std::vector<float> v(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) {
    double u = double(splitmix64((seed << 32) + uint64_t(i)) >> 11) * 0x1p-53;
    v[size_t(i)] = float(lo + (hi - lo) * u);
  }
  return v;
}

Case readCase(const std::string &dir) {
  std::string file = (fs::path(dir) / kCaseFile).string();
  std::vector<uint8_t> bytes;
  try {
    bytes = util::readFile(file);
  } catch (const std::exception &e) {
    throw CaseError(e.what());
  }
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded()) throw CaseError(file + ": not valid JSON");
  Reader top{file, "", j};
  int64_t format = top.integer("format", 0);
  if (format != kCaseFormat)
    top.fail("format", std::to_string(format) + " is not " + std::to_string(kCaseFormat) +
                           " (re-export the cases with this version)");
  Case c;
  c.name = top.str("name");
  c.plan = relativeFile(top, "plan");
  c.profile = top.str("profile", "");
  if (top.has("configs"))
    for (const json &s : top.array("configs"))
      if (s.is_string()) c.configs.push_back(s.get<std::string>());
  const json &steps = top.array("steps");
  if (steps.empty()) top.fail("steps", "empty");
  for (size_t si = 0; si < steps.size(); ++si) {
    Reader sr = top.child("steps", si, steps[si]);
    Step step;
    step.program = sr.str("program");
    const json &inputs = sr.array("inputs");
    for (size_t ii = 0; ii < inputs.size(); ++ii) {
      Reader ir = sr.child("inputs", ii, inputs[ii]);
      Input in;
      in.buffer = ir.integer("buffer", 0);
      in.name = ir.str("name");
      if (ir.has("file")) {
        in.file = relativeFile(ir, "file");
      } else if (ir.has("uniform")) {
        Reader ur{file, ir.path + ".uniform", ir.at("uniform")};
        in.uniform = true;
        in.seed = ur.unsignedInt("seed");
        in.count = ur.integer("count", 0);
        in.lo = ur.number("lo");
        in.hi = ur.number("hi");
      } else {
        ir.fail("file", "missing (an input has a 'file' or a 'uniform' generator)");
      }
      step.inputs.push_back(in);
    }
    const json &checks = sr.array("checks");
    for (size_t ci = 0; ci < checks.size(); ++ci) {
      Reader cr = sr.child("checks", ci, checks[ci]);
      Check ch;
      ch.buffer = cr.integer("buffer", 0);
      ch.name = cr.str("name");
      ch.offset = cr.integer("offset", 0);
      ch.count = cr.integer("count", 1);
      ch.expected = relativeFile(cr, "expected");
      if (cr.has("scale")) ch.scale = relativeFile(cr, "scale");
      ch.rel = cr.number("rel");
      ch.abs = cr.number("abs");
      if (ch.rel < 0 || ch.abs < 0) cr.fail(ch.rel < 0 ? "rel" : "abs", "negative");
      ch.what = cr.str("what", ch.name);
      step.checks.push_back(ch);
    }
    c.steps.push_back(step);
  }
  return c;
}

void writeCase(const Case &c, const std::string &dir) {
  json steps = json::array();
  for (const Step &s : c.steps) {
    json inputs = json::array(), checks = json::array();
    for (const Input &in : s.inputs) {
      json i = {{"buffer", in.buffer}, {"name", in.name}};
      if (in.uniform)
        i["uniform"] = {{"seed", in.seed}, {"count", in.count}, {"lo", in.lo}, {"hi", in.hi}};
      else
        i["file"] = in.file;
      inputs.push_back(i);
    }
    for (const Check &ch : s.checks) {
      json k = {{"buffer", ch.buffer}, {"name", ch.name}, {"offset", ch.offset}, {"count", ch.count},
                {"expected", ch.expected}, {"rel", ch.rel}, {"abs", ch.abs}, {"what", ch.what}};
      if (!ch.scale.empty()) k["scale"] = ch.scale;
      checks.push_back(k);
    }
    steps.push_back({{"inputs", inputs}, {"program", s.program}, {"checks", checks}});
  }
  json j = {{"format", kCaseFormat}, {"name", c.name}, {"plan", c.plan}, {"profile", c.profile},
            {"configs", c.configs}, {"steps", steps}};
  util::writeFileAtomic((fs::path(dir) / kCaseFile).string(), j.dump(1) + "\n");
}

std::vector<double> readDoubles(const std::string &path, int64_t count) {
  std::vector<uint8_t> bytes;
  try {
    bytes = util::readFile(path);
  } catch (const std::exception &e) {
    throw CaseError(e.what());
  }
  if (bytes.size() != size_t(count) * 8)
    throw CaseError(path + ": " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(count) +
                    " float64 (" + std::to_string(count * 8) + " bytes)");
  std::vector<double> v(static_cast<size_t>(count));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

std::vector<std::string> findCases(const std::string &root) {
  if (fs::exists(fs::path(root) / kCaseFile)) return {root};
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw CaseError(root + ": not a folder");
  for (const auto &e : fs::directory_iterator(root, ec))
    if (e.is_directory() && fs::exists(e.path() / kCaseFile)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace tessera::kcheck
