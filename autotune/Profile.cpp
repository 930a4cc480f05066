// Profile.cpp - reading and validating device profiles.
#include "autotune/Profile.h"
#include "autotune/SearchSpace.h"

#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>
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

// An integer field within [lo, hi]; `note` follows the value in the error.
void readIntIn(const json &obj, const char *key, const std::string &origin, const std::string &where, int64_t &out,
               int64_t lo, int64_t hi, const char *note) {
  auto it = obj.find(key);
  if (it == obj.end())
    return;
  std::string field = where.empty() ? key : where + "." + key;
  if (!it->is_number_integer())
    fail(origin, field, std::string("expected an integer, got ") + typeName(*it));
  if ((it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(hi)) ||
      (!it->is_number_unsigned() && (it->get<int64_t>() > hi || it->get<int64_t>() < lo)))
    fail(origin, field, "out of range (got " + tessera::util::describeJson(*it) + note + ")");
  out = it->get<int64_t>();
}

// Sizes, counts and tiles: 32-bit, so that products of them cannot overflow.
void readInt(const json &obj, const char *key, const std::string &origin, const std::string &where,
             int64_t &out) {
  constexpr int64_t kLimit = int64_t(1) << 31;
  readIntIn(obj, key, origin, where, out, -kLimit, kLimit - 1, "");
}

// Device sizes in bytes (a buffer range of 4 GiB, a heap of 141 GiB): up to 2^50.
void readBytes(const json &obj, const char *key, const std::string &origin, const std::string &where,
               int64_t &out) {
  readIntIn(obj, key, origin, where, out, 0, int64_t(1) << 50, "; bytes, at most 2^50");
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
  workgroup("grad_norm.workgroup_size", p.grad_norm_workgroup, true);
  workgroup("cross_entropy.workgroup_size", p.cross_entropy_workgroup, true);
  workgroup("adamw.workgroup_size", p.adamw_workgroup, false);
  if (p.reduce_serial_max < 0)
    fail(o, "reduce.serial_max", "must be >= 0");
  if (p.reduce_serial_min_outputs < 0)
    fail(o, "reduce.serial_min_outputs", "must be >= 0");
  if (p.reduce_subgroup_max < 0)
    fail(o, "reduce.subgroup_max", "must be >= 0");
  if (p.softmax_serial_max < 0)
    fail(o, "softmax.serial_max", "must be >= 0");
  // Shared memory of the tree reductions (2 arrays of f32 per thread at most).
  for (auto [field, wg] : {std::pair{"reduce.workgroup_size", p.reduce_workgroup},
                           std::pair{"softmax.workgroup_size", p.softmax_workgroup},
                           std::pair{"grad_norm.workgroup_size", p.grad_norm_workgroup},
                           std::pair{"cross_entropy.workgroup_size", p.cross_entropy_workgroup}})
    if (wg * 8 > p.shared_memory_bytes)
      fail(o, field, "needs " + std::to_string(wg * 8) +
                         " bytes of shared memory, more than device.shared_memory_bytes");

  // What every cooperative-matrix variant needs of the device.
  auto checkCoopMat = [&](const MatmulVariant &v, const std::string &f) {
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
    if (v.scope != "subgroup" && v.scope != "workgroup")
      fail(o, f + ".scope", "must be subgroup or workgroup (got '" + v.scope + "')");
    if (v.workgroupScope() && !p.features.workgroup_cooperative_matrix)
      fail(o, f + ".scope", "workgroup-scope variants need device.features.workgroup_cooperative_matrix "
                            "(VK_NV_cooperative_matrix2)");
    if (v.workgroupScope() && (v.tile_m % v.mma_m || v.tile_n % v.mma_n || v.tile_k % v.mma_k))
      fail(o, f, "a workgroup-scope tile must be a multiple of the granularity mma_m x mma_n x mma_k");
  };
  if (p.matmul.empty())
    fail(o, "matmul.variants", "needs at least one variant");
  for (size_t i = 0; i < p.matmul.size(); ++i) {
    const MatmulVariant &v = p.matmul[i];
    std::string f = "matmul.variants[" + std::to_string(i) + "]";
    const MatmulKindInfo *kind = findMatmulKind(v.kind);
    if (!kind)
      fail(o, f + ".kind", "unsupported kind '" + v.kind + "' (supported: " + matmulKindList() + ")");
    if (v.kind == "coopmat") {
      checkCoopMat(v, f);
      if (v.workgroupScope()) // the driver stages workgroup-scope matrices
        continue;
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
    // skinny: thread_m is the workgroup's thread count (whyInvalid checks it).
    if (v.kind != "skinny" && v.tile_m % v.thread_m)
      fail(o, f + ".thread_m", "must divide tile_m (" + std::to_string(v.tile_m) + ")");
    if (v.kind != "skinny" && v.tile_n % v.thread_n)
      fail(o, f + ".thread_n", "must divide tile_n (" + std::to_string(v.tile_n) + ")");
    if (v.kind != "skinny" && v.thread_m * v.thread_n > 256)
      fail(o, f, "register tile thread_m*thread_n must be <= 256");
    if (v.threads() > p.max_workgroup_invocations)
      fail(o, f, std::to_string(v.threads()) +
                     (v.kind == "skinny" ? " threads per workgroup (thread_m)"
                                         : " threads per workgroup ((tile_m/thread_m)*(tile_n/thread_n))") +
                     " exceed device.max_workgroup_invocations (" + std::to_string(p.max_workgroup_invocations) + ")");
    if (std::string why = whyInvalid(v.config(), p); !why.empty())
      fail(o, f, why); // shared memory, the kind's own constraints
  }
  // Fused attention on cooperative matrices (kernels/AttentionCoopMat.cpp):
  // tile_m query (key) rows per workgroup, blocks of tile_n keys (queries);
  // a problem whose head dim or shared memory does not fit runs the SIMT
  // kernels.
  for (size_t i = 0; i < p.attention.size(); ++i) {
    const MatmulVariant &v = p.attention[i];
    std::string f = "attention.variants[" + std::to_string(i) + "]";
    if (v.kind != "coopmat")
      fail(o, f + ".kind", "attention variants are of kind coopmat (the SIMT kernels need none)");
    checkCoopMat(v, f);
    if (!isPow2(v.tile_m) || !isPow2(v.threads(p.subgroup_size)))
      fail(o, f, "tile_m and subgroups_m*subgroups_n*subgroup_size must be powers of two");
  }
  positive("device.max_buffer_bytes", p.max_buffer_bytes);
  if (p.max_allocation_bytes < 0)
    fail(o, "device.max_allocation_bytes", "must be >= 0 (0: unknown)");
  if (p.memory_heap_bytes < 0)
    fail(o, "device.memory_heap_bytes", "must be >= 0 (0: unknown)");
  for (size_t i = 0; i < p.exact.size(); ++i) {
    const ExactEntry &e = p.exact[i];
    std::string f = "exact[" + std::to_string(i) + "]";
    if (std::string why = whyInvalid(e.config, p); !why.empty())
      fail(o, f + ".config", why + " (key '" + e.key + "')");
    // The key names the op: its config must be of that op's kind.
    std::string op = e.key.substr(0, e.key.find(' '));
    ConfigKind want = configKindOf(ruleFamilyOf(op)); // act_quant: rows, as softmax
    bool coopAttention = ruleFamilyOf(op) == RuleFamily::Attention && e.config.kind == ConfigKind::Matmul &&
                         e.config.matmul.coopmat();
    if (e.config.kind != want && !coopAttention)
      fail(o, f + ".config", std::string("a ") + configKindName(e.config.kind) + " config for a '" + op +
                                 "' kernel (expected " + configKindName(want) + ")");
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
            {"name", "description", "device", "precision", "fused_attention", "lora_products", "elementwise", "copy", "reduce",
             "grad_norm", "softmax", "cross_entropy", "adamw", "matmul", "attention", "exact", "tuning"});
  p.origin = origin;
  readString(root, "name", origin, "", p.name);
  readString(root, "description", origin, "", p.description);
  if (auto it = root.find("fused_attention"); it != root.end()) {
    if (!it->is_boolean())
      fail(origin, "fused_attention", "must be true or false");
    p.fused_attention = it->get<bool>();
  }
  if (auto it = root.find("lora_products"); it != root.end()) {
    if (!it->is_string() || (*it != "f32" && *it != "half"))
      fail(origin, "lora_products", "must be \"f32\" or \"half\"");
    p.lora_products = it->get<std::string>();
  }
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
               "max_workgroup_count", "max_buffer_bytes", "max_allocation_bytes", "memory_heap_bytes", "copy_queue",
               "features", "match"});
    readBytes(*d, "max_buffer_bytes", origin, "device", p.max_buffer_bytes);
    readBytes(*d, "max_allocation_bytes", origin, "device", p.max_allocation_bytes);
    readBytes(*d, "memory_heap_bytes", origin, "device", p.memory_heap_bytes);
    if (auto it = d->find("copy_queue"); it != d->end()) {
      if (!it->is_boolean())
        fail(origin, "device.copy_queue", "must be true or false");
      p.copy_queue = it->get<bool>();
    }
    if (const json *m = section(*d, "match", origin)) {
      checkKeys(*m, origin, "device.match", {"vendor_id", "device_id", "driver_version", "name", "type", "driver"});
      DeviceMatch dm;
      // Vulkan's IDs and driver versions are 32-bit unsigned.
      for (auto [field, out] : {std::pair{"vendor_id", &dm.vendor_id}, std::pair{"device_id", &dm.device_id},
                                std::pair{"driver_version", &dm.driver_version}})
        if (auto v = m->find(field); v != m->end()) {
          if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > int64_t(UINT32_MAX))
            fail(origin, std::string("device.match.") + field, "expected a 32-bit unsigned integer");
          *out = v->get<int64_t>();
        }
      readString(*m, "name", origin, "device.match", dm.name);
      readString(*m, "type", origin, "device.match", dm.type);
      readString(*m, "driver", origin, "device.match", dm.driver);
      p.match = dm;
    }
    readInt(*d, "subgroup_size", origin, "device", p.subgroup_size);
    readInt(*d, "max_workgroup_invocations", origin, "device", p.max_workgroup_invocations);
    readInt(*d, "shared_memory_bytes", origin, "device", p.shared_memory_bytes);
    readInt(*d, "max_workgroup_count", origin, "device", p.max_workgroup_count);
    if (const json *f = section(*d, "features", origin)) {
      checkKeys(*f, origin, "device.features",
                {"float16", "int16", "storage16", "bfloat16", "int8", "integer_dot_product", "cooperative_matrix",
                 "workgroup_cooperative_matrix"});
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
      readBool(*f, "integer_dot_product", origin, "device.features", p.features.integer_dot_product);
      readBool(*f, "workgroup_cooperative_matrix", origin, "device.features", p.features.workgroup_cooperative_matrix);
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
    checkKeys(*s, origin, "reduce", {"workgroup_size", "serial_max", "serial_min_outputs", "subgroup_max"});
    readInt(*s, "workgroup_size", origin, "reduce", p.reduce_workgroup);
    readInt(*s, "serial_max", origin, "reduce", p.reduce_serial_max);
    readInt(*s, "serial_min_outputs", origin, "reduce", p.reduce_serial_min_outputs);
    readInt(*s, "subgroup_max", origin, "reduce", p.reduce_subgroup_max);
  }
  if (root.contains("grad_norm"))
    simple("grad_norm", p.grad_norm_workgroup);
  else
    p.grad_norm_workgroup = p.reduce_workgroup;
  if (const json *s = section(root, "softmax", origin)) {
    checkKeys(*s, origin, "softmax", {"workgroup_size", "serial_max"});
    readInt(*s, "workgroup_size", origin, "softmax", p.softmax_workgroup);
    readInt(*s, "serial_max", origin, "softmax", p.softmax_serial_max);
  }
  // A list of variants (matmul.variants, attention.variants).
  auto readVariants = [&](const json &s, const std::string &field, std::vector<MatmulVariant> &out) {
    checkKeys(s, origin, field, {"variants"});
    auto it = s.find("variants");
    if (it == s.end())
      return;
    if (!it->is_array())
      fail(origin, field + ".variants", std::string("expected an array, got ") + typeName(*it));
    out.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      const json &v = (*it)[i];
      std::string where = field + ".variants[" + std::to_string(i) + "]";
      if (!v.is_object())
        fail(origin, where, std::string("expected an object, got ") + typeName(v));
      checkKeys(v, origin, where,
                {"name", "kind", "precision", "max_m", "max_n", "max_k", "min_k", "min_tiles",
                 "tile_m", "tile_n", "tile_k", "thread_m", "thread_n", "split_k", "mma_m", "mma_n",
                 "mma_k", "subgroups_m", "subgroups_n", "vector_width", "scope"});
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
      readString(v, "scope", origin, where, mv.scope);
      out.push_back(mv);
    }
  };
  if (const json *s = section(root, "matmul", origin))
    readVariants(*s, "matmul", p.matmul);
  if (const json *s = section(root, "attention", origin))
    readVariants(*s, "attention", p.attention);
  if (auto it = root.find("exact"); it != root.end()) {
    if (!it->is_array())
      fail(origin, "exact", std::string("expected an array, got ") + typeName(*it));
    p.exact.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      const json &e = (*it)[i];
      std::string where = "exact[" + std::to_string(i) + "]";
      if (!e.is_object())
        fail(origin, where, std::string("expected an object, got ") + typeName(e));
      checkKeys(e, origin, where, {"key", "config", "count", "us", "rule_us", "rule"});
      ExactEntry x;
      readString(e, "key", origin, where, x.key);
      if (x.key.empty())
        fail(origin, where + ".key", "is missing");
      auto c = e.find("config");
      if (c == e.end())
        fail(origin, where + ".config", "is missing");
      x.config = parseConfigJson(c->dump(), origin + ": " + where + ".config");
      readInt(e, "count", origin, where, x.count);
      readString(e, "rule", origin, where, x.rule);
      for (auto [key, out] : {std::pair{"us", &x.us}, std::pair{"rule_us", &x.rule_us}})
        if (auto t = e.find(key); t != e.end()) {
          if (!t->is_number())
            fail(origin, where + "." + key, std::string("expected a number, got ") + typeName(*t));
          *out = t->get<double>();
        }
      p.exact.push_back(std::move(x));
    }
  }
  p.indexExact();
  if (p.exact_index.size() != p.exact.size())
    for (size_t i = 0; i < p.exact.size(); ++i)
      if (p.exact_index.at(p.exact[i].key) != i)
        fail(origin, "exact[" + std::to_string(i) + "].key", "'" + p.exact[i].key + "' is listed twice");
  if (auto it = root.find("tuning"); it != root.end()) {
    if (!it->is_object())
      fail(origin, "tuning", std::string("expected an object, got ") + typeName(*it));
    p.tuning = it->dump();
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

MatmulConfig MatmulVariant::config(int64_t subgroupSize) const {
  MatmulConfig c{kind, tile_m, tile_n, tile_k, thread_m, thread_n, split_k};
  if (kind == "coopmat") {
    c.thread_m = subgroupSize, c.thread_n = vector_width;
    c.mma_m = mma_m, c.mma_n = mma_n, c.mma_k = mma_k;
    if (workgroupScope())
      c.mma_m = tile_m, c.mma_n = tile_n, c.mma_k = tile_k;
    c.subgroups_m = subgroups_m, c.subgroups_n = subgroups_n;
    c.operands = precision;
  }
  return c;
}

const ExactEntry *DeviceProfile::findExact(const std::string &key) const {
  auto it = exact_index.find(key);
  return it == exact_index.end() ? nullptr : &exact[it->second];
}

void DeviceProfile::indexExact() {
  exact_index.clear();
  for (size_t i = 0; i < exact.size(); ++i)
    exact_index.emplace(exact[i].key, i); // the first of duplicates
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
  if (path.empty())
    return defaultProfile();
  // A bare name is a bundled profile unless a file of that name is here (a
  // folder of that name, e.g. build/default, is not a profile).
  std::error_code ec;
  if (path.find('/') == std::string::npos && !std::filesystem::is_regular_file(path, ec))
    for (const BundledProfile &b : bundledProfiles())
      if (b.profile.name == path || b.file == path)
        return b.profile;
  return loadProfile(path);
}

std::string describeIdentity(const DeviceIdentity &d) {
  char ids[64];
  std::snprintf(ids, sizeof ids, "vendor 0x%x device 0x%x", d.vendor_id, d.device_id);
  return "'" + d.name + "' (" + ids + ")";
}

int DeviceMatch::score(const DeviceIdentity &d) const {
  if (otherDevice(d))
    return -1;
  // Vendor, device and type must be equal; name and driver only add to the
  // score (a tuned profile still serves its GPU after a driver update).
  return (vendor_id >= 0) + (device_id >= 0) + !type.empty() + (!name.empty() && name == d.name) +
         (!driver.empty() && driver == d.driver) + (driver_version >= 0 && driver_version == int64_t(d.driver_version));
}

bool DeviceMatch::exact(const DeviceIdentity &d) const {
  return !otherDevice(d) && (name.empty() || name == d.name) && (driver.empty() || driver == d.driver) &&
         (driver_version < 0 || driver_version == int64_t(d.driver_version));
}

bool DeviceMatch::otherDevice(const DeviceIdentity &d) const {
  return (vendor_id >= 0 && vendor_id != int64_t(d.vendor_id)) ||
         (device_id >= 0 && device_id != int64_t(d.device_id)) || (!type.empty() && type != d.type);
}

void checkProfileForDevice(const DeviceProfile &p, const DeviceIdentity &d) {
  if (!p.match.otherDevice(d))
    return;
  std::string of;
  char ids[64] = "";
  if (p.match.vendor_id >= 0)
    std::snprintf(ids, sizeof ids, "vendor 0x%llx", (unsigned long long)p.match.vendor_id);
  of = ids;
  if (p.match.device_id >= 0) {
    std::snprintf(ids, sizeof ids, " device 0x%llx", (unsigned long long)p.match.device_id);
    of += ids;
  }
  if (!p.match.type.empty())
    of += (of.empty() ? "type " : ", type ") + p.match.type;
  std::string name = p.match.name.empty() ? p.name : p.match.name;
  throw ProfileError(p.origin + ": a profile of '" + name + "' (" + of + "), not of device " + describeIdentity(d) +
                     ": use this device's profile (tessera devices lists them) or tune it (tessera tune)");
}

namespace {

#include "BundledProfiles.inc"

nlohmann::ordered_json variantJson(const MatmulVariant &v) {
  nlohmann::ordered_json j = {{"name", v.name}, {"kind", v.kind}, {"precision", v.precision}};
  for (auto [key, val] : {std::pair{"max_m", v.max_m}, std::pair{"max_n", v.max_n}, std::pair{"max_k", v.max_k},
                          std::pair{"min_k", v.min_k}, std::pair{"min_tiles", v.min_tiles}})
    if (val)
      j[key] = val;
  if (v.split_k != 1)
    j["split_k"] = v.split_k;
  j["tile_m"] = v.tile_m, j["tile_n"] = v.tile_n, j["tile_k"] = v.tile_k;
  if (v.kind == "coopmat") {
    j["mma_m"] = v.mma_m, j["mma_n"] = v.mma_n, j["mma_k"] = v.mma_k;
    j["subgroups_m"] = v.subgroups_m, j["subgroups_n"] = v.subgroups_n;
    j["vector_width"] = v.vector_width;
    if (v.workgroupScope())
      j["scope"] = v.scope;
  } else {
    j["thread_m"] = v.thread_m, j["thread_n"] = v.thread_n;
  }
  return j;
}

} // namespace

std::string profileToJson(const DeviceProfile &p) {
  using ojson = nlohmann::ordered_json;
  ojson j = ojson::object();
  j["name"] = p.name;
  if (!p.description.empty())
    j["description"] = p.description;
  j["precision"] = precisionName(p.default_precision);
  if (!p.fused_attention)
    j["fused_attention"] = false;
  if (p.lora_products != "f32")
    j["lora_products"] = p.lora_products;
  ojson d = {{"subgroup_size", p.subgroup_size},
            {"max_workgroup_invocations", p.max_workgroup_invocations},
            {"shared_memory_bytes", p.shared_memory_bytes},
            {"max_workgroup_count", p.max_workgroup_count},
            {"max_buffer_bytes", p.max_buffer_bytes},
            {"max_allocation_bytes", p.max_allocation_bytes},
            {"memory_heap_bytes", p.memory_heap_bytes},
            {"copy_queue", p.copy_queue},
            {"features",
             {{"float16", p.features.float16},
              {"int16", p.features.int16},
              {"storage16", p.features.storage16},
              {"bfloat16", p.features.bfloat16},
              {"int8", p.features.int8},
              {"integer_dot_product", p.features.integer_dot_product},
              {"workgroup_cooperative_matrix", p.features.workgroup_cooperative_matrix}}}};
  if (!p.features.cooperative_matrix.empty()) {
    ojson shapes = ojson::array();
    for (const CoopMatShape &c : p.features.cooperative_matrix)
      shapes.push_back({{"m", c.m}, {"n", c.n}, {"k", c.k}, {"a", c.a}, {"b", c.b}, {"c", c.c}, {"result", c.result}});
    d["features"]["cooperative_matrix"] = shapes;
  }
  if (!p.match.empty()) {
    ojson m = ojson::object();
    if (p.match.vendor_id >= 0) m["vendor_id"] = p.match.vendor_id;
    if (p.match.device_id >= 0) m["device_id"] = p.match.device_id;
    if (!p.match.type.empty()) m["type"] = p.match.type;
    if (!p.match.name.empty()) m["name"] = p.match.name;
    if (!p.match.driver.empty()) m["driver"] = p.match.driver;
    if (p.match.driver_version >= 0) m["driver_version"] = p.match.driver_version;
    d["match"] = m;
  }
  j["device"] = d;
  j["elementwise"] = {{"workgroup_size", p.elementwise_workgroup}};
  j["copy"] = {{"workgroup_size", p.copy_workgroup}};
  j["reduce"] = {{"workgroup_size", p.reduce_workgroup},
                 {"serial_max", p.reduce_serial_max},
                 {"serial_min_outputs", p.reduce_serial_min_outputs}};
  if (p.reduce_subgroup_max)
    j["reduce"]["subgroup_max"] = p.reduce_subgroup_max;
  j["grad_norm"] = {{"workgroup_size", p.grad_norm_workgroup}};
  j["softmax"] = {{"workgroup_size", p.softmax_workgroup}, {"serial_max", p.softmax_serial_max}};
  j["cross_entropy"] = {{"workgroup_size", p.cross_entropy_workgroup}};
  j["adamw"] = {{"workgroup_size", p.adamw_workgroup}};
  ojson variants = ojson::array();
  for (const MatmulVariant &v : p.matmul)
    variants.push_back(variantJson(v));
  j["matmul"] = {{"variants", variants}};
  if (!p.attention.empty()) {
    ojson att = ojson::array();
    for (const MatmulVariant &v : p.attention)
      att.push_back(variantJson(v));
    j["attention"] = {{"variants", att}};
  }
  if (!p.exact.empty()) {
    ojson ex = ojson::array();
    for (const ExactEntry &e : p.exact) {
      ojson x = {{"key", e.key}, {"config", ojson::parse(configJson(e.config))}};
      if (e.count) x["count"] = e.count;
      if (e.us > 0) x["us"] = std::round(e.us * 100) / 100;
      if (e.rule_us > 0) x["rule_us"] = std::round(e.rule_us * 100) / 100;
      if (!e.rule.empty()) x["rule"] = e.rule;
      ex.push_back(std::move(x));
    }
    j["exact"] = std::move(ex);
  }
  if (!p.tuning.empty())
    j["tuning"] = ojson::parse(p.tuning);
  // One exact entry per line keeps tuned profiles readable and diffable.
  std::string out = "{\n";
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    out += first ? "" : ",\n";
    first = false;
    out += "  " + ojson(it.key()).dump() + ": ";
    if (it.key() == "exact" || it.key() == "matmul" || it.key() == "attention") {
      const ojson &arr = it.key() == "exact" ? *it : (*it)["variants"];
      std::string items;
      for (size_t i = 0; i < arr.size(); ++i)
        items += (i ? ",\n    " : "\n    ") + arr[i].dump();
      out += it.key() == "exact" ? "[" + items + "\n  ]" : "{\"variants\": [" + items + "\n  ]}";
    } else {
      out += it->dump();
    }
  }
  return out + "\n}\n";
}

const std::vector<BundledProfile> &bundledProfiles() {
  static const std::vector<BundledProfile> all = [] {
    std::vector<BundledProfile> out;
    for (const auto &[file, text] : kBundledProfiles)
      out.push_back({file, parseProfile(text, "autotune/profiles/" + std::string(file))});
    return out;
  }();
  return all;
}

std::string describeProfileMatch(const DeviceIdentity &d) {
  const BundledProfile *b = matchBundledProfile(d);
  if (!b)
    return "none names this device: rules from its properties (tessera tune writes a tuned one)";
  std::string s = b->profile.name + " (autotune/profiles/" + b->file;
  const DeviceMatch &m = b->profile.match;
  std::string date;
  if (!b->profile.tuning.empty())
    date = json::parse(b->profile.tuning).value("date", "");
  if (!b->profile.tuning.empty() && m.exact(d))
    s += ", tuned for this device and driver" + (date.empty() ? "" : " on " + date);
  else if (!b->profile.tuning.empty())
    s += ", tuned for this GPU with driver '" + m.driver + "' " + std::to_string(m.driver_version) +
         ": tessera tune would tune it for this driver";
  else
    s += ", written by hand for " + (m.vendor_id >= 0 ? "its vendor" : std::string("devices like it"));
  return s + ")";
}

const BundledProfile *matchBundledProfile(const DeviceIdentity &d) {
  const BundledProfile *best = nullptr;
  int bestScore = 0;
  for (const BundledProfile &b : bundledProfiles()) {
    int s = b.profile.match.score(d);
    if (s > bestScore)
      best = &b, bestScore = s;
  }
  return best;
}

DeviceProfile profileFromProperties(const DeviceIdentity &d, const DeviceLimits &l) {
  DeviceProfile p = defaultProfile();
  p.name = "rules for " + d.name;
  p.origin = "<rules from the properties of " + d.name + ">";
  p.description = "Derived from the device's reported limits (no profile names this device): the default rules "
                  "within them.";
  p.match = {};
  p.match.vendor_id = d.vendor_id;
  p.match.device_id = d.device_id;
  p.subgroup_size = std::max<int64_t>(1, l.subgroup_size);
  p.max_workgroup_invocations = std::min<int64_t>(1024, std::max<int64_t>(64, l.max_workgroup_invocations));
  p.shared_memory_bytes = std::min<int64_t>(49152, std::max<int64_t>(1024, l.shared_memory_bytes));
  p.max_workgroup_count = std::min<int64_t>(65535, std::max<int64_t>(1, l.max_workgroup_count));
  p.max_buffer_bytes = std::max<int64_t>(1 << 20, l.max_buffer_bytes);
  p.max_allocation_bytes = std::max<int64_t>(0, l.max_allocation_bytes);
  p.memory_heap_bytes = std::max<int64_t>(0, l.memory_heap_bytes);
  p.copy_queue = l.copy_queue;
  p.features = l.features;
  // Wider workgroups where the device allows them (the default stays within
  // Vulkan's minimum of 128).
  int64_t wg = p.max_workgroup_invocations >= 256 ? 256 : 128;
  p.elementwise_workgroup = p.copy_workgroup = p.adamw_workgroup = wg;
  p.reduce_workgroup = p.softmax_workgroup = p.cross_entropy_workgroup = wg;
  while (p.reduce_workgroup * 8 > p.shared_memory_bytes && p.reduce_workgroup > 1)
    p.reduce_workgroup /= 2, p.softmax_workgroup /= 2, p.cross_entropy_workgroup /= 2;
  p.grad_norm_workgroup = p.reduce_workgroup;
  // On a CPU barriers are expensive and caches stage the tiles: register
  // tiles straight from memory (the "direct" kind).
  for (MatmulVariant &v : p.matmul)
    if (d.type == "CPU")
      v.kind = "direct", v.split_k = 1;
    else if (!whyInvalid(v.config(), p).empty())
      v.kind = "direct"; // too little shared memory for the tiles

  p.indexExact();
  validate(p, p.origin);
  return p;
}

} // namespace tessera::autotune
