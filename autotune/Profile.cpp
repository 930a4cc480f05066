// Profile.cpp - reading and validating device profiles.
#include "autotune/Profile.h"

#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace tessera::autotune {
namespace {

#include "DefaultProfile.inc"

using json = nlohmann::json;

[[noreturn]] void fail(const std::string &origin, const std::string &field, const std::string &msg) {
  throw ProfileError(tessera::util::oneLine(origin + ": " + (field.empty() ? "" : field + ": ") + msg));
}

const char *typeName(const json &j) { return j.type_name(); }

void checkKeys(const json &obj, const std::string &origin, const std::string &where,
               const std::set<std::string> &allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!allowed.count(it.key()))
      fail(origin, where.empty() ? it.key() : where + "." + it.key(), "unknown field");
}

const json *section(const json &root, const char *key, const std::string &origin) {
  auto it = root.find(key);
  if (it == root.end())
    return nullptr;
  if (!it->is_object())
    fail(origin, key, std::string("expected an object, got ") + typeName(*it));
  return &*it;
}

void readInt(const json &obj, const char *key, const std::string &origin, const std::string &where,
             int64_t &out) {
  auto it = obj.find(key);
  if (it == obj.end())
    return;
  std::string field = where.empty() ? key : where + "." + key;
  if (!it->is_number_integer())
    fail(origin, field, std::string("expected an integer, got ") + typeName(*it));
  // Sizes, counts and tiles: 32-bit, so that products of them cannot overflow.
  constexpr int64_t kLimit = int64_t(1) << 31;
  if ((it->is_number_unsigned() && it->get<uint64_t>() >= uint64_t(kLimit)) ||
      (!it->is_number_unsigned() && (it->get<int64_t>() >= kLimit || it->get<int64_t>() < -kLimit)))
    fail(origin, field, "out of range (got " + tessera::util::describeJson(*it) + ")");
  out = it->get<int64_t>();
}

void readString(const json &obj, const char *key, const std::string &origin,
                const std::string &where, std::string &out) {
  auto it = obj.find(key);
  if (it == obj.end())
    return;
  std::string field = where.empty() ? key : where + "." + key;
  if (!it->is_string())
    fail(origin, field, std::string("expected a string, got ") + typeName(*it));
  out = it->get<std::string>();
}

void readBool(const json &obj, const char *key, const std::string &origin, const std::string &where,
              bool &out) {
  auto it = obj.find(key);
  if (it == obj.end())
    return;
  if (!it->is_boolean())
    fail(origin, where + "." + key, std::string("expected true or false, got ") + typeName(*it));
  out = it->get<bool>();
}

bool isPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

void validate(const DeviceProfile &p, const std::string &o) {
  auto positive = [&](const char *field, int64_t v) {
    if (v <= 0)
      fail(o, field, "must be a positive integer (got " + std::to_string(v) + ")");
  };
  positive("device.subgroup_size", p.subgroup_size);
  positive("device.max_workgroup_invocations", p.max_workgroup_invocations);
  positive("device.shared_memory_bytes", p.shared_memory_bytes);
  positive("device.max_workgroup_count", p.max_workgroup_count);
  auto workgroup = [&](const char *field, int64_t v, bool pow2) {
    positive(field, v);
    if (v > p.max_workgroup_invocations)
      fail(o, field, std::to_string(v) + " exceeds device.max_workgroup_invocations (" +
                         std::to_string(p.max_workgroup_invocations) + ")");
    if (pow2 && !isPow2(v))
      fail(o, field, "must be a power of two (got " + std::to_string(v) + ")");
  };
  workgroup("elementwise.workgroup_size", p.elementwise_workgroup, false);
  workgroup("copy.workgroup_size", p.copy_workgroup, false);
  workgroup("reduce.workgroup_size", p.reduce_workgroup, true);
  workgroup("softmax.workgroup_size", p.softmax_workgroup, true);
  workgroup("cross_entropy.workgroup_size", p.cross_entropy_workgroup, true);
  workgroup("adamw.workgroup_size", p.adamw_workgroup, false);
  if (p.reduce_serial_max < 0)
    fail(o, "reduce.serial_max", "must be >= 0");
  if (p.reduce_serial_min_outputs < 0)
    fail(o, "reduce.serial_min_outputs", "must be >= 0");
  if (p.softmax_serial_max < 0)
    fail(o, "softmax.serial_max", "must be >= 0");
  // Shared memory of the tree reductions (2 arrays of f32 per thread at most).
  for (auto [field, wg] : {std::pair{"reduce.workgroup_size", p.reduce_workgroup},
                           std::pair{"softmax.workgroup_size", p.softmax_workgroup},
                           std::pair{"cross_entropy.workgroup_size", p.cross_entropy_workgroup}})
    if (wg * 8 > p.shared_memory_bytes)
      fail(o, field, "needs " + std::to_string(wg * 8) +
                         " bytes of shared memory, more than device.shared_memory_bytes");

  if (p.matmul.empty())
    fail(o, "matmul.variants", "needs at least one variant");
  for (size_t i = 0; i < p.matmul.size(); ++i) {
    const MatmulVariant &v = p.matmul[i];
    std::string f = "matmul.variants[" + std::to_string(i) + "]";
    if (v.kind != "tiled" && v.kind != "direct" && v.kind != "coopmat")
      fail(o, f + ".kind", "unsupported kind '" + v.kind + "' (supported: tiled, direct, coopmat)");
    if (v.kind == "coopmat") {
      if (v.precision != "f16" && v.precision != "bf16")
        fail(o, f + ".precision", "coopmat variants multiply f16 or bf16 operands: precision must be f16 or bf16");
      bool offered = false;
      for (const CoopMatShape &s : p.features.cooperative_matrix)
        offered |= s.m == v.mma_m && s.n == v.mma_n && s.k == v.mma_k && s.a == v.precision &&
                   s.b == v.precision && s.c == "f32" && s.result == "f32";
      if (!offered)
        fail(o, f, "cooperative-matrix shape " + std::to_string(v.mma_m) + "x" + std::to_string(v.mma_n) + "x" +
                       std::to_string(v.mma_k) + " " + v.precision + "*" + v.precision +
                       "+f32 is not in device.features.cooperative_matrix");
      if (!p.features.float16 || !p.features.storage16)
        fail(o, f, "coopmat variants need device.features float16 and storage16");
      if (v.precision == "bf16" && !p.features.bfloat16)
        fail(o, f, "bf16 coopmat variants need device.features.bfloat16 (VK_KHR_shader_bfloat16)");
      if (v.subgroups_m < 1 || v.subgroups_n < 1 || v.tile_m % (v.subgroups_m * v.mma_m) ||
          v.tile_n % (v.subgroups_n * v.mma_n) || v.tile_k % v.mma_k)
        fail(o, f, "tile_m/tile_n/tile_k must be multiples of subgroups_m*mma_m, subgroups_n*mma_n and mma_k");
      if (v.vector_width != 1 && v.vector_width != 2 && v.vector_width != 4 && v.vector_width != 8)
        fail(o, f + ".vector_width", "must be 1, 2, 4 or 8");
      if (v.threads(p.subgroup_size) > p.max_workgroup_invocations)
        fail(o, f, "subgroups_m*subgroups_n*subgroup_size threads exceed device.max_workgroup_invocations");
      // Two stages of f16 A and B tiles (rows padded by 8) and a 16x16 f32
      // scratch fragment per subgroup.
      int64_t shared = 2 * (v.tile_m + v.tile_n) * (v.tile_k + 8) * 2 +
                       v.subgroups_m * v.subgroups_n * v.mma_m * v.mma_n * 4;
      if (shared > p.shared_memory_bytes)
        fail(o, f, "tiles need " + std::to_string(shared) + " bytes of shared memory, more than device.shared_memory_bytes (" +
                       std::to_string(p.shared_memory_bytes) + ")");
      continue;
    }
    if (v.precision != "f32")
      fail(o, f + ".precision", "unsupported precision '" + v.precision + "' for kind " + v.kind + " (supported: f32)");
    for (auto [name, val] : {std::pair{"tile_m", v.tile_m}, std::pair{"tile_n", v.tile_n},
                             std::pair{"tile_k", v.tile_k}, std::pair{"thread_m", v.thread_m},
                             std::pair{"thread_n", v.thread_n}})
      if (val <= 0)
        fail(o, f + "." + name, "must be a positive integer (got " + std::to_string(val) + ")");
    if (v.max_m < 0 || v.max_n < 0 || v.max_k < 0 || v.min_k < 0 || v.min_tiles < 0)
      fail(o, f, "max_m/max_n/max_k/min_k/min_tiles must be >= 0 (0: unbounded)");
    if (v.split_k < 1 || v.split_k > 1024)
      fail(o, f + ".split_k", "must be in [1, 1024] (got " + std::to_string(v.split_k) + ")");
    if (v.tile_m % v.thread_m)
      fail(o, f + ".thread_m", "must divide tile_m (" + std::to_string(v.tile_m) + ")");
    if (v.tile_n % v.thread_n)
      fail(o, f + ".thread_n", "must divide tile_n (" + std::to_string(v.tile_n) + ")");
    if (v.thread_m * v.thread_n > 256)
      fail(o, f, "register tile thread_m*thread_n must be <= 256");
    if (v.threads() > p.max_workgroup_invocations)
      fail(o, f, std::to_string(v.threads()) +
                     " threads per workgroup ((tile_m/thread_m)*(tile_n/thread_n)) exceed "
                     "device.max_workgroup_invocations (" +
                     std::to_string(p.max_workgroup_invocations) + ")");
    int64_t shared = ((v.tile_m + 1) + (v.tile_n + 1)) * v.tile_k * 4;
    if (shared > p.shared_memory_bytes)
      fail(o, f, "tiles need " + std::to_string(shared) +
                     " bytes of shared memory, more than device.shared_memory_bytes (" +
                     std::to_string(p.shared_memory_bytes) + ")");
  }
  if (std::string why = p.unsupportedPrecision(p.default_precision); !why.empty())
    fail(o, "precision", why);
  const MatmulVariant &last = p.matmul.back();
  if (last.constrained())
    fail(o, "matmul.variants[" + std::to_string(p.matmul.size() - 1) + "]",
         "the last variant must have no max_m/max_n/max_k/min_k/min_tiles (it is the fallback)");
}

DeviceProfile parseOnto(DeviceProfile p, const std::string &text, const std::string &origin) {
  json root;
  try {
    root = tessera::util::parseJson(text);
  } catch (const tessera::util::JsonError &e) {
    fail(origin, "", std::string("invalid JSON: ") + e.what());
  }
  if (!root.is_object())
    fail(origin, "", "the profile must be a JSON object");
  checkKeys(root, origin, "",
            {"name", "description", "device", "precision", "elementwise", "copy", "reduce", "softmax",
             "cross_entropy", "adamw", "matmul"});
  p.origin = origin;
  readString(root, "name", origin, "", p.name);
  if (root.contains("precision")) {
    std::string prec;
    readString(root, "precision", origin, "", prec);
    p.default_precision = parsePrecision(prec, origin + ": precision");
  }
  if (auto it = root.find("description"); it != root.end() && !it->is_string())
    fail(origin, "description", "expected a string");
  if (const json *d = section(root, "device", origin)) {
    checkKeys(*d, origin, "device",
              {"subgroup_size", "max_workgroup_invocations", "shared_memory_bytes",
               "max_workgroup_count", "features"});
    readInt(*d, "subgroup_size", origin, "device", p.subgroup_size);
    readInt(*d, "max_workgroup_invocations", origin, "device", p.max_workgroup_invocations);
    readInt(*d, "shared_memory_bytes", origin, "device", p.shared_memory_bytes);
    readInt(*d, "max_workgroup_count", origin, "device", p.max_workgroup_count);
    if (const json *f = section(*d, "features", origin)) {
      checkKeys(*f, origin, "device.features",
                {"float16", "int16", "storage16", "bfloat16", "int8", "cooperative_matrix"});
      if (auto cm = f->find("cooperative_matrix"); cm != f->end()) {
        if (!cm->is_array())
          fail(origin, "device.features.cooperative_matrix", "expected an array of {m, n, k, a, b, c, result}");
        p.features.cooperative_matrix.clear();
        for (size_t i = 0; i < cm->size(); ++i) {
          const json &e = (*cm)[i];
          std::string where = "device.features.cooperative_matrix[" + std::to_string(i) + "]";
          if (!e.is_object())
            fail(origin, where, std::string("expected an object, got ") + typeName(e));
          checkKeys(e, origin, where, {"m", "n", "k", "a", "b", "c", "result"});
          CoopMatShape s;
          readInt(e, "m", origin, where, s.m);
          readInt(e, "n", origin, where, s.n);
          readInt(e, "k", origin, where, s.k);
          readString(e, "a", origin, where, s.a);
          readString(e, "b", origin, where, s.b);
          readString(e, "c", origin, where, s.c);
          readString(e, "result", origin, where, s.result);
          if (s.m <= 0 || s.n <= 0 || s.k <= 0)
            fail(origin, where, "m, n and k must be positive");
          p.features.cooperative_matrix.push_back(s);
        }
      }
      readBool(*f, "float16", origin, "device.features", p.features.float16);
      readBool(*f, "int16", origin, "device.features", p.features.int16);
      readBool(*f, "storage16", origin, "device.features", p.features.storage16);
      readBool(*f, "bfloat16", origin, "device.features", p.features.bfloat16);
      readBool(*f, "int8", origin, "device.features", p.features.int8);
    }
  }
  auto simple = [&](const char *key, int64_t &wg) {
    if (const json *s = section(root, key, origin)) {
      checkKeys(*s, origin, key, {"workgroup_size"});
      readInt(*s, "workgroup_size", origin, key, wg);
    }
  };
  simple("elementwise", p.elementwise_workgroup);
  simple("copy", p.copy_workgroup);
  simple("cross_entropy", p.cross_entropy_workgroup);
  simple("adamw", p.adamw_workgroup);
  if (const json *s = section(root, "reduce", origin)) {
    checkKeys(*s, origin, "reduce", {"workgroup_size", "serial_max", "serial_min_outputs"});
    readInt(*s, "workgroup_size", origin, "reduce", p.reduce_workgroup);
    readInt(*s, "serial_max", origin, "reduce", p.reduce_serial_max);
    readInt(*s, "serial_min_outputs", origin, "reduce", p.reduce_serial_min_outputs);
  }
  if (const json *s = section(root, "softmax", origin)) {
    checkKeys(*s, origin, "softmax", {"workgroup_size", "serial_max"});
    readInt(*s, "workgroup_size", origin, "softmax", p.softmax_workgroup);
    readInt(*s, "serial_max", origin, "softmax", p.softmax_serial_max);
  }
  if (const json *s = section(root, "matmul", origin)) {
    checkKeys(*s, origin, "matmul", {"variants"});
    if (auto it = s->find("variants"); it != s->end()) {
      if (!it->is_array())
        fail(origin, "matmul.variants", std::string("expected an array, got ") + typeName(*it));
      p.matmul.clear();
      for (size_t i = 0; i < it->size(); ++i) {
        const json &v = (*it)[i];
        std::string where = "matmul.variants[" + std::to_string(i) + "]";
        if (!v.is_object())
          fail(origin, where, std::string("expected an object, got ") + typeName(v));
        checkKeys(v, origin, where,
                  {"name", "kind", "precision", "max_m", "max_n", "max_k", "min_k", "min_tiles",
                   "tile_m", "tile_n", "tile_k", "thread_m", "thread_n", "split_k", "mma_m", "mma_n",
                   "mma_k", "subgroups_m", "subgroups_n", "vector_width"});
        MatmulVariant mv;
        mv.name = "variant" + std::to_string(i);
        readString(v, "name", origin, where, mv.name);
        readString(v, "kind", origin, where, mv.kind);
        readString(v, "precision", origin, where, mv.precision);
        readInt(v, "max_m", origin, where, mv.max_m);
        readInt(v, "max_n", origin, where, mv.max_n);
        readInt(v, "max_k", origin, where, mv.max_k);
        readInt(v, "min_k", origin, where, mv.min_k);
        readInt(v, "min_tiles", origin, where, mv.min_tiles);
        readInt(v, "split_k", origin, where, mv.split_k);
        readInt(v, "tile_m", origin, where, mv.tile_m);
        readInt(v, "tile_n", origin, where, mv.tile_n);
        readInt(v, "tile_k", origin, where, mv.tile_k);
        readInt(v, "thread_m", origin, where, mv.thread_m);
        readInt(v, "thread_n", origin, where, mv.thread_n);
        readInt(v, "mma_m", origin, where, mv.mma_m);
        readInt(v, "mma_n", origin, where, mv.mma_n);
        readInt(v, "mma_k", origin, where, mv.mma_k);
        readInt(v, "subgroups_m", origin, where, mv.subgroups_m);
        readInt(v, "subgroups_n", origin, where, mv.subgroups_n);
        readInt(v, "vector_width", origin, where, mv.vector_width);
        p.matmul.push_back(mv);
      }
    }
  }
  validate(p, origin);
  return p;
}

} // namespace

const char *precisionName(Precision p) {
  switch (p) {
  case Precision::fp32: return "fp32";
  case Precision::f16: return "f16";
  case Precision::bf16: return "bf16";
  }
  return "?";
}

Precision parsePrecision(const std::string &s, const std::string &where) {
  if (s == "fp32" || s == "f32")
    return Precision::fp32;
  if (s == "f16" || s == "fp16")
    return Precision::f16;
  if (s == "bf16")
    return Precision::bf16;
  throw ProfileError(where + ": unknown precision '" + s + "' (fp32, f16 or bf16)");
}

std::string DeviceProfile::unsupportedPrecision(Precision p) const {
  auto lacks = [&](const char *what) {
    return std::string("precision ") + precisionName(p) + " needs " + what + ", which profile '" + name +
           "' does not list in device.features (use the profile of a device that has it, see autotune/profiles, or --precision fp32)";
  };
  if (p == Precision::fp32)
    return "";
  if (!features.storage16)
    return lacks("16-bit storage buffers (storage16)");
  if (p == Precision::f16 && !features.float16)
    return lacks("f16 arithmetic (float16)");
  if (p == Precision::bf16 && !features.int16)
    return lacks("16-bit integers (int16), which hold bf16 in the kernels");
  return "";
}

const MatmulVariant &DeviceProfile::selectMatmul(int64_t m, int64_t n, int64_t k, int64_t batch,
                                                const std::string &operands) const {
  for (const MatmulVariant &v : matmul)
    if (v.admits(m, n, k, batch, operands))
      return v;
  throw ProfileError(origin + ": matmul.variants: no variant admits M=" + std::to_string(m) +
                     " N=" + std::to_string(n) + " K=" + std::to_string(k));
}

const std::string &defaultProfileJson() {
  static const std::string text = kDefaultProfileJson;
  return text;
}

const DeviceProfile &defaultProfile() {
  static const DeviceProfile p = parseOnto(DeviceProfile{}, defaultProfileJson(),
                                           "<built-in default>");
  return p;
}

DeviceProfile parseProfile(const std::string &text, const std::string &origin) {
  return parseOnto(defaultProfile(), text, origin);
}

DeviceProfile loadProfile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ProfileError(path + ": cannot open device profile");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parseProfile(ss.str(), path);
}

DeviceProfile loadProfileOrDefault(const std::string &path) {
  return path.empty() ? defaultProfile() : loadProfile(path);
}

} // namespace tessera::autotune
