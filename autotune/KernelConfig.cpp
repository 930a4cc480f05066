// KernelConfig.cpp - kernel configs, their JSON form, the matmul kinds.
#include "autotune/KernelConfig.h"

#include "autotune/Profile.h"

#include <nlohmann/json.hpp>
#include <optional>

namespace tessera::autotune {

using json = nlohmann::json;

namespace {

bool isPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

[[noreturn]] void fail(const std::string &where, const std::string &msg) {
  throw ProfileError(where + ": " + msg);
}

int64_t intField(const json &obj, const char *key, const std::string &where, bool required, int64_t def) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required)
      fail(where + "." + key, "is missing");
    return def;
  }
  if (!it->is_number_integer())
    fail(where + "." + key, std::string("expected an integer, got ") + it->type_name());
  int64_t v = it->get<int64_t>();
  if (v < 1 || v > (int64_t(1) << 30))
    fail(where + "." + key, "must be in [1, 2^30] (got " + std::to_string(v) + ")");
  return v;
}

void onlyKeys(const json &obj, const std::string &where, std::initializer_list<const char *> keys) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char *k : keys)
      ok |= it.key() == k;
    if (!ok)
      fail(where + "." + it.key(), "unknown field");
  }
}

std::vector<int64_t> intPair(const json &obj, const char *key, size_t n, const std::string &where) {
  auto it = obj.find(key);
  if (it == obj.end())
    fail(where + "." + key, "is missing");
  if (!it->is_array() || it->size() != n)
    fail(where + "." + key, "expected an array of " + std::to_string(n) + " integers");
  std::vector<int64_t> out;
  for (size_t i = 0; i < n; ++i) {
    const json &v = (*it)[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 4096)
      fail(where + "." + key + "[" + std::to_string(i) + "]", "expected an integer in [1, 4096]");
    out.push_back(v.get<int64_t>());
  }
  return out;
}

} // namespace

const char *configKindName(ConfigKind k) {
  switch (k) {
  case ConfigKind::Matmul: return "matmul";
  case ConfigKind::Reduction: return "reduction";
  case ConfigKind::Elementwise: return "elementwise";
  }
  return "?";
}

KernelConfig KernelConfig::ofMatmul(const MatmulConfig &m) {
  KernelConfig c;
  c.kind = ConfigKind::Matmul;
  c.matmul = m;
  return c;
}

const char *reductionStrategyName(ReductionStrategy s) {
  switch (s) {
  case ReductionStrategy::serial: return "serial";
  case ReductionStrategy::workgroup: return "workgroup";
  case ReductionStrategy::subgroup: return "subgroup";
  }
  return "?";
}

KernelConfig KernelConfig::ofReduction(ReductionStrategy strategy, int64_t wg) {
  KernelConfig c;
  c.kind = ConfigKind::Reduction;
  c.reduction = {strategy, wg};
  return c;
}

KernelConfig KernelConfig::ofReduction(bool serial, int64_t wg) {
  return ofReduction(serial ? ReductionStrategy::serial : ReductionStrategy::workgroup, wg);
}

KernelConfig KernelConfig::ofElementwise(int64_t wg) {
  KernelConfig c;
  c.kind = ConfigKind::Elementwise;
  c.workgroup_size = wg;
  return c;
}

int64_t KernelConfig::threads() const {
  switch (kind) {
  case ConfigKind::Matmul: return matmul.threads();
  case ConfigKind::Reduction: return reduction.workgroup_size;
  case ConfigKind::Elementwise: return workgroup_size;
  }
  return 0;
}

std::string KernelConfig::label() const {
  switch (kind) {
  case ConfigKind::Matmul: {
    const MatmulConfig &m = matmul;
    return m.kind + " " + std::to_string(m.tile_m) + "x" + std::to_string(m.tile_n) + "x" +
           std::to_string(m.tile_k) + " t" + std::to_string(m.thread_m) + "x" + std::to_string(m.thread_n) +
           " s" + std::to_string(m.split_k) +
           (m.coopmat() ? " sg" + std::to_string(m.subgroups_m) + "x" + std::to_string(m.subgroups_n) + " " + m.operands
                        : std::string());
  }
  case ConfigKind::Reduction:
    return std::string(reductionStrategyName(reduction.strategy)) + " " + std::to_string(reduction.workgroup_size);
  case ConfigKind::Elementwise: return "wg " + std::to_string(workgroup_size);
  }
  return "?";
}

bool KernelConfig::operator==(const KernelConfig &o) const {
  if (kind != o.kind)
    return false;
  switch (kind) {
  case ConfigKind::Matmul: return matmul == o.matmul;
  case ConfigKind::Reduction: return reduction == o.reduction;
  case ConfigKind::Elementwise: return workgroup_size == o.workgroup_size;
  }
  return false;
}

std::string configJson(const KernelConfig &c) {
  nlohmann::ordered_json j;
  switch (c.kind) {
  case ConfigKind::Matmul:
    j["matmul"] = {{"kind", c.matmul.kind},
                   {"tile", {c.matmul.tile_m, c.matmul.tile_n, c.matmul.tile_k}},
                   {"thread", {c.matmul.thread_m, c.matmul.thread_n}},
                   {"split_k", c.matmul.split_k}};
    if (c.matmul.coopmat()) {
      j["matmul"]["mma"] = {c.matmul.mma_m, c.matmul.mma_n, c.matmul.mma_k};
      j["matmul"]["subgroups"] = {c.matmul.subgroups_m, c.matmul.subgroups_n};
      j["matmul"]["operands"] = c.matmul.operands;
    }
    break;
  case ConfigKind::Reduction:
    j["reduction"] = {{"strategy", reductionStrategyName(c.reduction.strategy)},
                      {"workgroup_size", c.reduction.workgroup_size}};
    break;
  case ConfigKind::Elementwise: j["elementwise"] = {{"workgroup_size", c.workgroup_size}}; break;
  }
  return j.dump();
}

KernelConfig parseConfigJson(const std::string &text, const std::string &where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception &e) {
    fail(where, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object() || j.size() != 1)
    fail(where, "expected {\"matmul\": {...}}, {\"reduction\": {...}} or {\"elementwise\": {...}}");
  auto it = j.begin();
  const std::string w = where + "." + it.key();
  if (!it->is_object())
    fail(w, "expected an object");
  const json &o = *it;
  if (it.key() == "matmul") {
    onlyKeys(o, w, {"kind", "tile", "thread", "split_k", "mma", "subgroups", "operands"});
    MatmulConfig m;
    auto k = o.find("kind");
    if (k == o.end() || !k->is_string())
      fail(w + ".kind", "expected a string (" + matmulKindList() + ")");
    m.kind = k->get<std::string>();
    if (!findMatmulKind(m.kind))
      fail(w + ".kind", "unknown kind '" + m.kind + "' (this version knows " + matmulKindList() + ")");
    std::vector<int64_t> tile = intPair(o, "tile", 3, w), thread = intPair(o, "thread", 2, w);
    m.tile_m = tile[0], m.tile_n = tile[1], m.tile_k = tile[2];
    m.thread_m = thread[0], m.thread_n = thread[1];
    m.split_k = intField(o, "split_k", w, false, 1);
    if (m.coopmat()) {
      std::vector<int64_t> mma = intPair(o, "mma", 3, w), sg = intPair(o, "subgroups", 2, w);
      m.mma_m = mma[0], m.mma_n = mma[1], m.mma_k = mma[2];
      m.subgroups_m = sg[0], m.subgroups_n = sg[1];
      auto op = o.find("operands");
      if (op == o.end() || !op->is_string() || (*op != "f16" && *op != "bf16"))
        fail(w + ".operands", "expected \"f16\" or \"bf16\"");
      m.operands = op->get<std::string>();
    } else if (o.contains("mma") || o.contains("subgroups") || o.contains("operands")) {
      fail(w, "mma, subgroups and operands belong to coopmat configs");
    }
    return KernelConfig::ofMatmul(m);
  }
  if (it.key() == "reduction") {
    onlyKeys(o, w, {"strategy", "workgroup_size"});
    auto s = o.find("strategy");
    std::optional<ReductionStrategy> strategy;
    for (ReductionStrategy r : {ReductionStrategy::serial, ReductionStrategy::workgroup, ReductionStrategy::subgroup})
      if (s != o.end() && s->is_string() && *s == reductionStrategyName(r))
        strategy = r;
    if (!strategy)
      fail(w + ".strategy", "expected \"serial\", \"workgroup\" or \"subgroup\"");
    return KernelConfig::ofReduction(*strategy, intField(o, "workgroup_size", w, true, 0));
  }
  if (it.key() == "elementwise") {
    onlyKeys(o, w, {"workgroup_size"});
    return KernelConfig::ofElementwise(intField(o, "workgroup_size", w, true, 0));
  }
  fail(w, "unknown config kind (matmul, reduction or elementwise)");
}

const std::vector<MatmulKindInfo> &matmulKinds() {
  static const std::vector<MatmulKindInfo> kinds = {
      {"tiled",
       "shared-memory A/B tiles and per-thread register tiles",
       {8, 16, 32},
       [](const MatmulConfig &c) { return ((c.tile_m + 1) + (c.tile_n + 1)) * c.tile_k * 4; },
       [](const MatmulConfig &c) {
         int64_t nt = c.threads();
         return ceilDiv(c.tile_m * c.tile_k, nt) + 1 + ceilDiv(c.tile_k * c.tile_n, nt) + 1 + c.tile_k + 1 + 1;
       },
       [](const DeviceProfile &) { return true; },
       [](const MatmulConfig &, const DeviceProfile &) { return std::string(); }},
      {"direct",
       "register tiles read straight from memory, no shared memory or barriers (CPU devices)",
       {16},
       [](const MatmulConfig &) { return int64_t(0); },
       [](const MatmulConfig &c) { return c.tile_k; },
       [](const DeviceProfile &) { return true; },
       [](const MatmulConfig &, const DeviceProfile &) { return std::string(); }},
      {"skinny",
       "products with a side <= 64 (LoRA rank): the workgroup's threads split K, each accumulates the whole "
       "tile, subgroup reductions (compiler/lowering/kernels/MatmulSkinny.cpp)",
       {16},
       // One partial tile per subgroup (subgroups of at least 4 lanes).
       [](const MatmulConfig &c) { return ceilDiv(c.thread_m, 4) * c.tile_m * c.tile_n * 4; },
       [](const MatmulConfig &c) { return ceilDiv(c.tile_k, std::max<int64_t>(1, c.thread_m)) + 1; },
       [](const DeviceProfile &) { return true; },
       [](const MatmulConfig &c, const DeviceProfile &) -> std::string {
         if (c.thread_n != 1)
           return "a skinny config's thread is [threads, 1]";
         if (c.tile_m * c.tile_n > 128)
           return "a skinny config's tile_m * tile_n (the accumulators of each thread) must be <= 128";
         return "";
       }},
      {"coopmat",
       "cooperative-matrix fragments per subgroup (tensor cores), double-buffered f16/bf16 tiles "
       "(compiler/lowering/kernels/MatmulCoopMat.cpp)",
       {16, 32}, // 16: K = a LoRA rank of 16 in one step
       // Two stages of A and B tiles (rows padded by 8 halves) and a scratch
       // fragment per subgroup for the edge tiles.
       [](const MatmulConfig &c) -> int64_t {
         if (c.workgroupScope()) // staged by the driver
           return 0;
         return 2 * (c.tile_m + c.tile_n) * (c.tile_k + 8) * 2 + c.subgroups_m * c.subgroups_n * c.mma_m * c.mma_n * 4;
       },
       [](const MatmulConfig &c) {
         int64_t nt = std::max<int64_t>(1, c.threads()), vw = std::max<int64_t>(1, c.thread_n);
         return 2 * (ceilDiv(c.tile_m * c.tile_k, nt * vw) + ceilDiv(c.tile_n * c.tile_k, nt * vw) + 2) +
                c.tile_k / std::max<int64_t>(1, c.mma_k) + 1;
       },
       [](const DeviceProfile &p) { return !p.features.cooperative_matrix.empty(); },
       [](const MatmulConfig &c, const DeviceProfile &p) -> std::string {
         if (c.operands != "f16" && c.operands != "bf16")
           return "coopmat configs multiply f16 or bf16 operands (operands = " + c.operands + ")";
         if (c.thread_m != p.subgroup_size)
           return "a coopmat config's thread[0] is the subgroup size (" + std::to_string(p.subgroup_size) + ")";
         if (c.thread_n != 1 && c.thread_n != 2 && c.thread_n != 4 && c.thread_n != 8)
           return "a coopmat config's vector width thread[1] must be 1, 2, 4 or 8";
         if (c.workgroupScope()) // one matrix per workgroup: the profile's granularity was checked
           return c.subgroups_m < 1 || c.subgroups_n < 1 ? "subgroups must be >= 1" : "";
         if (c.subgroups_m < 1 || c.subgroups_n < 1 || c.mma_m < 1 || c.mma_n < 1 || c.mma_k < 1 ||
             c.tile_m % (c.subgroups_m * c.mma_m) || c.tile_n % (c.subgroups_n * c.mma_n) || c.tile_k % c.mma_k)
           return "tile must be a multiple of subgroups x mma";
         for (const CoopMatShape &s : p.features.cooperative_matrix)
           if (s.m == c.mma_m && s.n == c.mma_n && s.k == c.mma_k && s.a == c.operands && s.b == c.operands &&
               s.c == "f32" && s.result == "f32")
             return "";
         return "the device offers no " + std::to_string(c.mma_m) + "x" + std::to_string(c.mma_n) + "x" +
                std::to_string(c.mma_k) + " " + c.operands + " cooperative matrix with f32 accumulation";
       }},
  };
  return kinds;
}

const MatmulKindInfo *findMatmulKind(const std::string &name) {
  for (const MatmulKindInfo &k : matmulKinds())
    if (k.name == name)
      return &k;
  return nullptr;
}

std::string matmulKindList() {
  std::string s;
  for (const MatmulKindInfo &k : matmulKinds())
    s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

std::string whyInvalid(const MatmulConfig &c, const DeviceProfile &p) {
  const MatmulKindInfo *kind = findMatmulKind(c.kind);
  if (!kind)
    return "unsupported kind '" + c.kind + "' (supported: " + matmulKindList() + ")";
  for (auto [name, v] : {std::pair{"tile_m", c.tile_m}, std::pair{"tile_n", c.tile_n}, std::pair{"tile_k", c.tile_k},
                         std::pair{"thread_m", c.thread_m}, std::pair{"thread_n", c.thread_n}})
    if (v <= 0)
      return std::string(name) + " must be a positive integer (got " + std::to_string(v) + ")";
  if (c.split_k < 1 || c.split_k > 1024)
    return "split_k must be in [1, 1024] (got " + std::to_string(c.split_k) + ")";
  if (!c.coopmat() && !c.skinny() && c.tile_m % c.thread_m)
    return "thread_m (" + std::to_string(c.thread_m) + ") must divide tile_m (" + std::to_string(c.tile_m) + ")";
  if (!c.coopmat() && !c.skinny() && c.tile_n % c.thread_n)
    return "thread_n (" + std::to_string(c.thread_n) + ") must divide tile_n (" + std::to_string(c.tile_n) + ")";
  if (!c.coopmat() && !c.skinny() && c.thread_m * c.thread_n > 256)
    return "register tile thread_m*thread_n must be <= 256";
  if (c.threads() > p.max_workgroup_invocations)
    return std::to_string(c.threads()) +
           " threads per workgroup ((tile_m/thread_m)*(tile_n/thread_n)) exceed device.max_workgroup_invocations (" +
           std::to_string(p.max_workgroup_invocations) + ")";
  int64_t shared = kind->shared_bytes(c);
  if (shared > p.shared_memory_bytes)
    return "tiles need " + std::to_string(shared) +
           " bytes of shared memory, more than device.shared_memory_bytes (" + std::to_string(p.shared_memory_bytes) +
           ")";
  if (!kind->available(p))
    return "kind '" + c.kind + "' is not available on devices of profile '" + p.name + "'";
  return kind->check(c, p);
}

std::string whyInvalid(const KernelConfig &c, const DeviceProfile &p) {
  switch (c.kind) {
  case ConfigKind::Matmul: return whyInvalid(c.matmul, p);
  case ConfigKind::Reduction: {
    int64_t wg = c.reduction.workgroup_size;
    if (wg < 1 || wg > p.max_workgroup_invocations)
      return "workgroup_size " + std::to_string(wg) + " is not in [1, device.max_workgroup_invocations = " +
             std::to_string(p.max_workgroup_invocations) + "]";
    if (c.reduction.strategy == ReductionStrategy::subgroup)
      return wg % p.subgroup_size ? "the subgroup strategy needs a workgroup_size that is a multiple of "
                                    "device.subgroup_size = " + std::to_string(p.subgroup_size) + " (got " +
                                        std::to_string(wg) + ")"
                                  : "";
    if (!c.reduction.serial() && !isPow2(wg))
      return "the workgroup strategy needs a power-of-two workgroup_size (got " + std::to_string(wg) + ")";
    if (!c.reduction.serial() && wg * 8 > p.shared_memory_bytes)
      return "needs " + std::to_string(wg * 8) + " bytes of shared memory, more than device.shared_memory_bytes";
    return "";
  }
  case ConfigKind::Elementwise:
    if (c.workgroup_size < 1 || c.workgroup_size > p.max_workgroup_invocations)
      return "workgroup_size " + std::to_string(c.workgroup_size) +
             " is not in [1, device.max_workgroup_invocations = " + std::to_string(p.max_workgroup_invocations) + "]";
    return "";
  }
  return "unknown config";
}

} // namespace tessera::autotune
