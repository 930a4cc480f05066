// Plan.cpp - reads and writes plan files. The byte layout is documented in
// docs/plan-format.md:
//   header (32 bytes): "TESSPLAN" | u32 version | u32 flags | u64 manifest_bytes | u64 checksum
//   manifest: UTF-8 JSON, manifest_bytes long
//   zero padding to a 16-byte file offset
//   blob section: every blob at a 16-byte aligned offset from the section start
// checksum = FNV-1a 64 over every byte after the header. Integers little-endian.
#include "runtime/plan/Plan.h"

#include "runtime/plan/KernelInterface.h"

#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include "runtime/plan/ContainerBytes.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

namespace tessera::plan {

using json = nlohmann::json;

namespace {

constexpr size_t kHeaderBytes = 32;
constexpr uint64_t kBlobAlign = 16;

using namespace ::tessera::plan::bytes;

const char *const kKindNames[] = {"input",    "weight",     "constant", "lora",  "optimizer_state",
                                  "gradient", "activation", "output",   "hparams"};
constexpr size_t kNumKinds = sizeof(kKindNames) / sizeof(kKindNames[0]);

std::string hexEncode(const std::vector<uint8_t> &bytes) {
  static const char *digits = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---------------------------------------------------------------------------
// Manifest reading with field paths in every error.
struct Reader {
  const std::string &origin;

  [[noreturn]] void fail(const std::string &msg) const { throw PlanError(util::oneLine(origin + ": " + msg)); }

  const json &field(const json &obj, const char *key, const std::string &path) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail("manifest field " + path + " is missing");
    return *it;
  }
  int64_t integer(const json &v, const std::string &path) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(path + " = " + util::describeJson(v) + " is too large");
      return int64_t(v.get<uint64_t>());
    }
    if (!v.is_number_integer()) fail(path + " must be an integer, not " + util::describeJson(v));
    return v.get<int64_t>();
  }
  int64_t i64(const json &obj, const char *key, const std::string &path) const {
    return integer(field(obj, key, path), path);
  }
  int64_t i64Or(const json &obj, const char *key, const std::string &path, int64_t def) const {
    auto it = obj.find(key);
    return it == obj.end() ? def : integer(*it, path);
  }
  int64_t nonNegative(const json &obj, const char *key, const std::string &path) const {
    int64_t v = i64(obj, key, path);
    if (v < 0) fail(path + " = " + std::to_string(v) + " must not be negative");
    return v;
  }
  uint32_t u32(const json &obj, const char *key, const std::string &path) const {
    int64_t v = nonNegative(obj, key, path);
    if (v > int64_t(std::numeric_limits<uint32_t>::max())) fail(path + " = " + std::to_string(v) + " is too large");
    return uint32_t(v);
  }
  uint64_t u64(const json &obj, const char *key, const std::string &path) const {
    const json &v = field(obj, key, path);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
    fail(path + " must be a non-negative integer, not " + util::describeJson(v));
  }
  double number(const json &obj, const char *key, const std::string &path) const {
    const json &v = field(obj, key, path);
    if (!v.is_number()) fail(path + " must be a number, not " + util::describeJson(v));
    return v.get<double>();
  }
  bool boolean(const json &obj, const char *key, const std::string &path) const {
    const json &v = field(obj, key, path);
    if (!v.is_boolean()) fail(path + " must be true or false, not " + util::describeJson(v));
    return v.get<bool>();
  }
  std::string string(const json &obj, const char *key, const std::string &path) const {
    const json &v = field(obj, key, path);
    if (!v.is_string()) fail(path + " must be a string, not " + util::describeJson(v));
    return v.get<std::string>();
  }
  const json &array(const json &obj, const char *key, const std::string &path) const {
    const json &v = field(obj, key, path);
    if (!v.is_array()) fail(path + " must be an array");
    return v;
  }
  const json &object(const json &v, const std::string &path) const {
    if (!v.is_object()) fail(path + " must be an object");
    return v;
  }
  template <size_t N> std::array<uint32_t, N> u32Array(const json &obj, const char *key, const std::string &path) const {
    const json &a = array(obj, key, path);
    if (a.size() != N) fail(path + " must have " + std::to_string(N) + " entries, not " + std::to_string(a.size()));
    std::array<uint32_t, N> out{};
    for (size_t i = 0; i < N; ++i) {
      std::string p = path + "[" + std::to_string(i) + "]";
      int64_t v = integer(a[i], p);
      if (v < 0 || v > int64_t(std::numeric_limits<uint32_t>::max())) fail(p + " = " + std::to_string(v) + " is out of range");
      out[i] = uint32_t(v);
    }
    return out;
  }
  // An index field: -1 (none) when allowed, else 0..count-1.
  int64_t index(int64_t v, const std::string &path, size_t count, const char *what, bool allowNone) const {
    if (allowNone && v == -1) return v;
    if (v < 0 || uint64_t(v) >= count)
      fail(path + " = " + std::to_string(v) + " is out of range (" + std::to_string(count) + " " + what + ")");
    return v;
  }
};

std::vector<uint8_t> hexDecode(const Reader &r, const std::string &s, const std::string &path) {
  if (s.size() % 2) r.fail(path + " must be an even number of hex digits");
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    r.fail(path + " contains a character that is not a hex digit");
  };
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(nibble(s[2 * i]) << 4 | nibble(s[2 * i + 1]));
  return out;
}

std::string bufferLabel(const Plan &p, int64_t i) {
  return "buffer " + std::to_string(i) + " ('" + p.buffers[size_t(i)].name + "')";
}

// Cross-field checks on a fully read plan.
void validate(const Plan &p, const Reader &r) {
  const size_t nb = p.buffers.size(), nk = p.kernels.size(), nblob = p.blobs.size();
  if (p.batch < 0 || p.seq < 0 || p.vocab < 0) r.fail("batch, seq and vocab must not be negative");

  // Buffers.
  for (size_t i = 0; i < nb; ++i) {
    const Buffer &b = p.buffers[i];
    std::string path = "buffers[" + std::to_string(i) + "]";
    uint64_t elems = 1;
    for (size_t d = 0; d < b.shape.size(); ++d) {
      if (b.shape[d] < 0) r.fail(path + ".shape[" + std::to_string(d) + "] = " + std::to_string(b.shape[d]) + " is negative");
      if (b.shape[d] != 0 && elems > (uint64_t(1) << 60) / uint64_t(b.shape[d])) r.fail(path + ".shape is too large");
      elems *= uint64_t(b.shape[d]);
    }
    if (isQuantized(b.dtype)) {
      // A frozen weight, or its streamed copy (an activation, in a reused slot).
      const bool weight = b.kind == BufferKind::Weight && b.alias_of < 0, copy = b.kind == BufferKind::Activation;
      if (!(weight || copy) || b.shape.size() != 2)
        r.fail(path + ": only a frozen 2-D weight (or its streamed copy) may be " + dtypeName(b.dtype));
      const int64_t row = b.shape.size() != 2 ? 0 : b.transposed ? b.shape[0] : b.shape[1];
      if (row % int64_t(blockElements(b.dtype)) != 0)
        r.fail(path + ": rows of " + std::to_string(row) + " values are not whole " + dtypeName(b.dtype) +
               " blocks of " + std::to_string(blockElements(b.dtype)));
    } else if (b.transposed) {
      r.fail(path + ".transposed: only block-quantised weights are stored transposed");
    }
    const uint64_t want = bufferBytes(b.dtype, elems);
    if (b.bytes != want)
      r.fail(path + ".bytes = " + std::to_string(b.bytes) + " does not match shape " + shapeText(b.shape) + " of " +
             dtypeName(b.dtype) + " (" + std::to_string(want) + " bytes)");
    r.index(b.alias_of, path + ".alias_of", nb, "buffers", true);
    if (b.alias_of == int64_t(i)) r.fail(path + ".alias_of = " + std::to_string(i) + " aliases itself");
    r.index(b.init_blob, path + ".init_blob", nblob, "blobs", true);
    if (b.kind == BufferKind::Constant) {
      if (b.init_blob < 0) r.fail(path + ".init_blob is missing: constant buffer '" + b.name + "' needs its data");
      if (p.blobs[size_t(b.init_blob)].size() != b.bytes)
        r.fail(path + ".init_blob = " + std::to_string(b.init_blob) + " holds " +
               std::to_string(p.blobs[size_t(b.init_blob)].size()) + " bytes, the buffer has " + std::to_string(b.bytes));
    } else if (b.init_blob >= 0) {
      r.fail(path + ".init_blob = " + std::to_string(b.init_blob) + " but only constant buffers have data");
    }
    if (b.alias_of >= 0 && b.kind == BufferKind::Constant)
      r.fail(path + ".alias_of: a constant buffer cannot alias another buffer");
    if (b.row_offset < -1) r.fail(path + ".row_offset = " + std::to_string(b.row_offset) + " is negative");
    if (b.row_offset >= 0 && (b.kind != BufferKind::Weight || b.alias_of >= 0 || b.shape.empty()))
      r.fail(path + ".row_offset: only a weight buffer with its own storage and a shape holds a row range");
    if (b.host && (b.kind != BufferKind::Weight || b.alias_of >= 0))
      r.fail(path + ".host: only a frozen weight with its own storage is kept in host memory");
    if (b.ternary != Ternary::None) {
      if (b.kind != BufferKind::Weight || b.alias_of >= 0 || b.row_offset >= 0 || !b.gguf.tensor.empty())
        r.fail(path + ".ternary: only a whole weight read from the model file has a ternary part");
      if (!(b.ternary_eps > 0)) r.fail(path + ".ternary.eps must be > 0");
      if (b.ternary == Ternary::Codes && b.shape.size() != 2) r.fail(path + ".ternary: codes are a 2-D weight");
      if (b.ternary == Ternary::Scale && (elems != 1 || b.dtype != DType::F32))
        r.fail(path + ".ternary: the scale is one f32 value");
    }
  }
  // alias_of chains: must end at a buffer that owns storage, no cycles, and the
  // alias must fit inside that storage.
  for (size_t i = 0; i < nb; ++i) {
    int64_t cur = int64_t(i);
    size_t hops = 0;
    while (p.buffers[size_t(cur)].alias_of >= 0) {
      cur = p.buffers[size_t(cur)].alias_of;
      if (++hops > nb) r.fail("buffers[" + std::to_string(i) + "].alias_of: the alias_of chain is a cycle");
    }
    if (p.buffers[i].bytes > p.buffers[size_t(cur)].bytes)
      r.fail("buffers[" + std::to_string(i) + "].bytes = " + std::to_string(p.buffers[i].bytes) + " is larger than " +
             bufferLabel(p, cur) + " whose storage it aliases (" + std::to_string(p.buffers[size_t(cur)].bytes) + " bytes)");
  }

  // Kernels.
  std::set<std::string> kernelNames;
  for (size_t i = 0; i < nk; ++i) {
    const Kernel &k = p.kernels[i];
    std::string path = "kernels[" + std::to_string(i) + "]";
    if (k.name.empty()) r.fail(path + ".name is empty");
    if (!kernelNames.insert(k.name).second) r.fail(path + ".name = '" + k.name + "' is used by another kernel");
    r.index(k.spirv_blob, path + ".spirv_blob", nblob, "blobs", false);
    const std::vector<uint8_t> &spv = p.blobs[k.spirv_blob];
    if (spv.size() < 20 || spv.size() % 4 != 0 || getU32(spv.data()) != 0x07230203u)
      r.fail(path + ".spirv_blob = " + std::to_string(k.spirv_blob) + " is not a SPIR-V module (" +
             std::to_string(spv.size()) + " bytes)");
    for (int d = 0; d < 3; ++d)
      if (k.local_size[d] == 0) r.fail(path + ".local_size[" + std::to_string(d) + "] = 0");
    if (k.push_constant_bytes % 4) r.fail(path + ".push_constant_bytes = " + std::to_string(k.push_constant_bytes) + " is not a multiple of 4");
  }

  // Programs.
  std::set<std::string> programNames;
  for (size_t pi = 0; pi < p.programs.size(); ++pi) {
    const Program &prog = p.programs[pi];
    std::string ppath = "programs[" + std::to_string(pi) + "]";
    if (prog.name.empty()) r.fail(ppath + ".name is empty");
    if (!programNames.insert(prog.name).second) r.fail(ppath + ".name = '" + prog.name + "' is used by another program");
    for (size_t di = 0; di < prog.dispatches.size(); ++di) {
      const Dispatch &d = prog.dispatches[di];
      std::string path = ppath + ".dispatches[" + std::to_string(di) + "]";
      r.index(d.kernel, path + ".kernel", nk, "kernels", false);
      const Kernel &k = p.kernels[d.kernel];
      if (d.bindings.size() != k.num_bindings)
        r.fail(path + ".bindings has " + std::to_string(d.bindings.size()) + " entries but kernel '" + k.name +
               "' has " + std::to_string(k.num_bindings) + " bindings");
      for (size_t bi = 0; bi < d.bindings.size(); ++bi)
        r.index(d.bindings[bi], path + ".bindings[" + std::to_string(bi) + "]", nb, "buffers", false);
      for (int g = 0; g < 3; ++g)
        if (d.groups[g] == 0) r.fail(path + ".groups[" + std::to_string(g) + "] = 0");
      if (d.push_constants.size() != k.push_constant_bytes)
        r.fail(path + ".push_constants has " + std::to_string(d.push_constants.size()) + " bytes but kernel '" + k.name +
               "' declares " + std::to_string(k.push_constant_bytes));
      if (d.copy) { // a streamed weight's copy: host weight -> an activation of its bytes and type
        const bool shape = d.bindings.size() == 2 && d.bindings[0] < nb && d.bindings[1] < nb;
        const Buffer *src = shape ? &p.buffers[d.bindings[0]] : nullptr, *dst = shape ? &p.buffers[d.bindings[1]] : nullptr;
        if (!shape || !src->host || src->kind != BufferKind::Weight || dst->kind != BufferKind::Activation ||
            dst->dtype != src->dtype || dst->bytes < src->bytes)
          r.fail(path + ".copy: a copy dispatch binds a host-resident weight and an activation of its type and size");
      }
    }
  }

  // Well-known buffers.
  auto wellKnown = [&](int64_t idx, const char *name, BufferKind kind, DType dtype, uint64_t minBytes, uint64_t exactBytes) {
    r.index(idx, name, nb, "buffers", true);
    if (idx < 0) return;
    const Buffer &b = p.buffers[size_t(idx)];
    if (b.kind != kind) r.fail(std::string(name) + " = " + std::to_string(idx) + ": " + bufferLabel(p, idx) + " has kind " + kKindNames[uint32_t(b.kind)] + ", expected " + kKindNames[uint32_t(kind)]);
    if (b.dtype != dtype) r.fail(std::string(name) + " = " + std::to_string(idx) + ": " + bufferLabel(p, idx) + " has the wrong dtype");
    if (b.bytes < minBytes || (exactBytes && b.bytes != exactBytes))
      r.fail(std::string(name) + " = " + std::to_string(idx) + ": " + bufferLabel(p, idx) + " has " + std::to_string(b.bytes) +
             " bytes, expected " + std::to_string(exactBytes ? exactBytes : minBytes));
  };
  uint64_t tokenBytes = uint64_t(p.batch) * uint64_t(p.seq) * 4;
  wellKnown(p.input_ids, "input_ids", BufferKind::Input, DType::I32, 4, tokenBytes);
  wellKnown(p.labels, "labels", BufferKind::Input, DType::I32, 4, tokenBytes);
  wellKnown(p.loss, "loss", BufferKind::Output, DType::F32, 4, 0);
  wellKnown(p.hparams, "hparams", BufferKind::HParams, DType::F32, 4 * kMinHParams, 0);

  // Adapters.
  std::set<std::string> modules;
  for (size_t ai = 0; ai < p.adapters.size(); ++ai) {
    const Adapter &a = p.adapters[ai];
    std::string path = "adapters[" + std::to_string(ai) + "]";
    if (a.module.empty()) r.fail(path + ".module is empty");
    if (!modules.insert(a.module).second) r.fail(path + ".module = '" + a.module + "' is adapted twice");
    if (a.in_features <= 0 || a.out_features <= 0 || a.rank <= 0)
      r.fail(path + ": in_features, out_features and rank must be positive");
    auto factor = [&](int64_t idx, const char *field, bool required, int64_t rows, int64_t cols) {
      std::string fpath = path + "." + field;
      r.index(idx, fpath, nb, "buffers", !required);
      if (idx < 0) return;
      uint64_t want = uint64_t(rows) * uint64_t(cols) * 4;
      if (p.buffers[size_t(idx)].bytes != want)
        r.fail(fpath + " = " + std::to_string(idx) + ": " + bufferLabel(p, idx) + " has " +
               std::to_string(p.buffers[size_t(idx)].bytes) + " bytes, expected [" + std::to_string(rows) + "," +
               std::to_string(cols) + "] f32 (" + std::to_string(want) + " bytes)");
    };
    factor(a.a, "a", true, a.rank, a.in_features);
    factor(a.b, "b", true, a.out_features, a.rank);
    factor(a.grad_a, "grad_a", false, a.rank, a.in_features);
    factor(a.grad_b, "grad_b", false, a.out_features, a.rank);
    factor(a.m_a, "m_a", false, a.rank, a.in_features);
    factor(a.v_a, "v_a", false, a.rank, a.in_features);
    factor(a.m_b, "m_b", false, a.out_features, a.rank);
    factor(a.v_b, "v_b", false, a.out_features, a.rank);
  }

  // Kernel interfaces: the SPIR-V and every dispatch against them (the trust model).
  detail::checkInterfaces(p, r.origin);
}

} // namespace

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::I32: return "i32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::Q8_0: return "q8_0";
  case DType::Q4_0: return "q4_0";
  case DType::TQ2_0: return "tq2_0";
  }
  return "?";
}

// ---------------------------------------------------------------------------
std::vector<uint8_t> serialize(const Plan &plan) {
  // JSON has no nan/inf (nlohmann writes null): a plan the runtime could not read.
  for (auto [name, v] : {std::pair{"lora_alpha", plan.lora_alpha}, {"lora_scale", plan.lora_scale},
                         {"lora_dropout", plan.lora_dropout}, {"lr", plan.lr}, {"beta1", plan.beta1},
                         {"beta2", plan.beta2}, {"eps", plan.eps}, {"weight_decay", plan.weight_decay}})
    if (!std::isfinite(v)) throw PlanError(std::string("serialize: ") + name + " is not a finite number");
  json m;
  m["model_file"] = plan.model_file;
  m["batch"] = plan.batch;
  m["seq"] = plan.seq;
  m["vocab"] = plan.vocab;
  m["lora_rank"] = plan.lora_rank;
  m["lora_alpha"] = plan.lora_alpha;
  m["lora_scale"] = plan.lora_scale;
  m["rslora"] = plan.rslora;
  m["precision"] = plan.precision;
  m["features"] = plan.features;
  m["lora_dropout"] = plan.lora_dropout;
  m["lora_targets"] = plan.lora_targets;
  m["seed"] = plan.seed;
  m["lr"] = plan.lr;
  m["beta1"] = plan.beta1;
  m["beta2"] = plan.beta2;
  m["eps"] = plan.eps;
  m["weight_decay"] = plan.weight_decay;
  m["input_ids"] = plan.input_ids;
  m["labels"] = plan.labels;
  m["loss"] = plan.loss;
  m["hparams"] = plan.hparams;

  json buffers = json::array();
  for (const Buffer &b : plan.buffers) {
    uint32_t kind = uint32_t(b.kind);
    if (kind >= kNumKinds) throw PlanError("serialize: buffer '" + b.name + "' has an unknown kind " + std::to_string(kind));
    json j = {{"name", b.name},
              {"kind", kKindNames[kind]},
              {"dtype", dtypeName(b.dtype)},
              {"shape", b.shape},
              {"bytes", b.bytes}};
    if (b.init_blob >= 0) j["init_blob"] = b.init_blob;
    if (b.alias_of >= 0) j["alias_of"] = b.alias_of;
    if (b.row_offset >= 0) j["row_offset"] = b.row_offset;
    if (b.transposed) j["transposed"] = true;
    if (b.host) j["host"] = true;
    if (b.ternary != Ternary::None)
      j["ternary"] = {{"part", b.ternary == Ternary::Codes ? "codes" : "scale"}, {"eps", b.ternary_eps}};
    if (!b.gguf.tensor.empty())
      j["gguf"] = {{"tensor", b.gguf.tensor}, {"permute", b.gguf.permute}, {"transpose", b.gguf.transpose},
                   {"add", b.gguf.add}, {"mul", b.gguf.mul}};
    buffers.push_back(std::move(j));
  }
  m["buffers"] = std::move(buffers);

  json kernels = json::array();
  for (const Kernel &k : plan.kernels)
    kernels.push_back({{"name", k.name},
                       {"spirv_blob", k.spirv_blob},
                       {"num_bindings", k.num_bindings},
                       {"local_size", k.local_size},
                       {"push_constant_bytes", k.push_constant_bytes},
                       {"config", k.config},
                       {"interface", detail::interfaceToJson(k.interface)}});
  m["kernels"] = std::move(kernels);

  json programs = json::array();
  for (const Program &p : plan.programs) {
    json ds = json::array();
    for (const Dispatch &d : p.dispatches) {
      json j = {{"kernel", d.kernel}, {"bindings", d.bindings}, {"groups", d.groups}};
      if (!d.push_constants.empty()) j["push_constants"] = hexEncode(d.push_constants);
      if (d.copy) j["copy"] = true;
      ds.push_back(std::move(j));
    }
    programs.push_back({{"name", p.name}, {"dispatches", std::move(ds)}});
  }
  m["programs"] = std::move(programs);

  json adapters = json::array();
  for (const Adapter &a : plan.adapters)
    adapters.push_back({{"module", a.module}, {"in_features", a.in_features}, {"out_features", a.out_features},
                        {"rank", a.rank}, {"a", a.a}, {"b", a.b}, {"grad_a", a.grad_a}, {"grad_b", a.grad_b},
                        {"m_a", a.m_a}, {"v_a", a.v_a}, {"m_b", a.m_b}, {"v_b", a.v_b}});
  m["adapters"] = std::move(adapters);
  const MemorySummary &mem = plan.memory;
  m["memory"] = {{"total_bytes", mem.total},
                 {"weights_bytes", mem.weights},
                 {"host_weights_bytes", mem.host_weights},
                 {"activations_bytes", mem.activations},
                 {"activations_live_peak_bytes", mem.activations_live_peak},
                 {"activations_unshared_bytes", mem.activations_unshared},
                 {"adapters_bytes", mem.adapters},
                 {"optimizer_state_bytes", mem.optimizer_state},
                 {"gradients_bytes", mem.gradients},
                 {"workspace_bytes", mem.workspace},
                 {"largest_buffer_bytes", mem.largest_buffer},
                 {"largest_buffer", mem.largest_buffer_name}};

  if (!plan.model.arch.empty())
    m["model"] = {{"arch", plan.model.arch},         {"layers", plan.model.layers},
                  {"hidden", plan.model.hidden},     {"heads", plan.model.heads},
                  {"kv_heads", plan.model.kv_heads}, {"head_dim", plan.model.head_dim}};

  if (plan.target.max_buffer_bytes || plan.target.memory_budget || plan.target.grad_accum != 1 ||
      !plan.target.choices.empty())
    m["target"] = {{"max_buffer_bytes", plan.target.max_buffer_bytes},
                   {"memory_budget", plan.target.memory_budget},
                   {"grad_accum", plan.target.grad_accum},
                   {"choices", plan.target.choices}};

  json blobs = json::array();
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const auto &blob : plan.blobs) {
    blobs.push_back({{"offset", offset}, {"size", uint64_t(blob.size())}});
    offsets.push_back(offset);
    offset = alignUp(offset + blob.size(), kBlobAlign);
  }
  m["blobs"] = std::move(blobs);
  m["blob_section_bytes"] = offset;

  std::string manifest = m.dump();
  uint64_t blobStart = alignUp(kHeaderBytes + manifest.size(), kBlobAlign);
  std::vector<uint8_t> out(blobStart + offset, 0);
  std::memcpy(out.data(), kMagic, 8);
  putU32(out.data() + 8, kFormatVersion);
  putU32(out.data() + 12, 0);
  putU64(out.data() + 16, manifest.size());
  std::memcpy(out.data() + kHeaderBytes, manifest.data(), manifest.size());
  for (size_t i = 0; i < plan.blobs.size(); ++i) {
    uint64_t off = offsets[i];
    if (!plan.blobs[i].empty()) std::memcpy(out.data() + blobStart + off, plan.blobs[i].data(), plan.blobs[i].size());
  }
  putU64(out.data() + 24, fnv1a64(out.data() + kHeaderBytes, out.size() - kHeaderBytes));
  return out;
}

void writePlanFile(const Plan &plan, const std::string &path) {
  std::vector<uint8_t> bytes = serialize(plan);
  try {
    util::writeFileAtomic(path, bytes.data(), bytes.size());
  } catch (const std::runtime_error &e) {
    throw PlanError(e.what());
  }
}

Plan parse(const std::vector<uint8_t> &bytes, const std::string &origin) {
  Reader r{origin};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 8) != 0)
    r.fail("not a Tessera plan (the file does not start with \"TESSPLAN\")");
  if (bytes.size() < kHeaderBytes)
    r.fail("the file is truncated (" + std::to_string(bytes.size()) + " bytes, the header alone is 32)");
  uint32_t version = getU32(bytes.data() + 8);
  if (version != kFormatVersion)
    r.fail("plan format version " + std::to_string(version) + ", this runtime reads version " +
           std::to_string(kFormatVersion) + ": recompile the plan with this version (tessera compile)" +
           (version > kFormatVersion ? " or use the newer runtime that wrote it" : ""));
  uint32_t flags = getU32(bytes.data() + 12);
  if (flags != 0) r.fail("header flags = " + std::to_string(flags) + ", this runtime knows none");
  uint64_t manifestBytes = getU64(bytes.data() + 16);
  uint64_t checksum = getU64(bytes.data() + 24);
  if (fnv1a64(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes) != checksum)
    r.fail("checksum mismatch: the file is corrupt or truncated");
  if (manifestBytes > bytes.size() - kHeaderBytes)
    r.fail("header manifest_bytes = " + std::to_string(manifestBytes) + " is beyond the end of the file (" +
           std::to_string(bytes.size()) + " bytes)");

  json m;
  try {
    m = util::parseJson(bytes.data() + kHeaderBytes, size_t(manifestBytes));
  } catch (const util::JsonError &e) {
    r.fail(std::string("the manifest is not valid JSON: ") + e.what());
  }
  r.object(m, "manifest");

  Plan p;
  p.version = version;
  p.model_file = r.string(m, "model_file", "model_file");
  p.precision = r.string(m, "precision", "precision");
  if (p.precision != "fp32" && p.precision != "f16" && p.precision != "bf16")
    r.fail("precision = '" + p.precision + "' is not fp32, f16 or bf16");
  {
    const json &f = r.array(m, "features", "features");
    for (size_t i = 0; i < f.size(); ++i) {
      std::string name = f[i].is_string() ? f[i].get<std::string>() : "";
      if (name != kFeatureFloat16 && name != kFeatureInt16 && name != kFeatureStorage16 && name != kFeatureInt8 &&
          name != kFeatureIntegerDot && name != kFeatureCoopMat && name != kFeatureBf16CoopMat &&
          name != kFeatureWorkgroupCoopMat)
        r.fail("features[" + std::to_string(i) + "] = " + f[i].dump() + " is not a device feature this runtime knows");
      p.features.push_back(name);
    }
  }
  p.batch = r.i64(m, "batch", "batch");
  p.seq = r.i64(m, "seq", "seq");
  p.vocab = r.i64(m, "vocab", "vocab");
  p.lora_rank = r.i64(m, "lora_rank", "lora_rank");
  p.lora_alpha = r.number(m, "lora_alpha", "lora_alpha");
  p.lora_scale = r.number(m, "lora_scale", "lora_scale");
  p.rslora = r.boolean(m, "rslora", "rslora");
  // Optional: plans written before LoRA dropout existed have none.
  p.lora_dropout = m.contains("lora_dropout") ? r.number(m, "lora_dropout", "lora_dropout") : 0.0;
  if (!(p.lora_dropout >= 0.0 && p.lora_dropout < 1.0))
    r.fail("lora_dropout must be in [0, 1)");
  {
    const json &t = r.array(m, "lora_targets", "lora_targets");
    for (size_t i = 0; i < t.size(); ++i) {
      if (!t[i].is_string()) r.fail("lora_targets[" + std::to_string(i) + "] must be a string");
      p.lora_targets.push_back(t[i].get<std::string>());
    }
  }
  p.seed = r.u64(m, "seed", "seed");
  p.lr = r.number(m, "lr", "lr");
  p.beta1 = r.number(m, "beta1", "beta1");
  p.beta2 = r.number(m, "beta2", "beta2");
  p.eps = r.number(m, "eps", "eps");
  p.weight_decay = r.number(m, "weight_decay", "weight_decay");
  p.input_ids = r.i64(m, "input_ids", "input_ids");
  p.labels = r.i64(m, "labels", "labels");
  p.loss = r.i64(m, "loss", "loss");
  p.hparams = r.i64(m, "hparams", "hparams");
  if (auto mem = m.find("memory"); mem != m.end() && mem->is_object()) { // optional, informational
    auto bytes = [&](const char *key) -> uint64_t {
      auto it = mem->find(key);
      return it != mem->end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
    };
    p.memory.total = bytes("total_bytes");
    p.memory.weights = bytes("weights_bytes");
    p.memory.host_weights = bytes("host_weights_bytes");
    p.memory.activations = bytes("activations_bytes");
    p.memory.activations_live_peak = bytes("activations_live_peak_bytes");
    p.memory.activations_unshared = bytes("activations_unshared_bytes");
    p.memory.adapters = bytes("adapters_bytes");
    p.memory.optimizer_state = bytes("optimizer_state_bytes");
    p.memory.gradients = bytes("gradients_bytes");
    p.memory.workspace = bytes("workspace_bytes");
    p.memory.largest_buffer = bytes("largest_buffer_bytes");
    if (auto it = mem->find("largest_buffer"); it != mem->end() && it->is_string())
      p.memory.largest_buffer_name = it->get<std::string>();
  }

  if (auto mi = m.find("model"); mi != m.end() && mi->is_object()) { // optional
    if (auto it = mi->find("arch"); it != mi->end() && it->is_string()) p.model.arch = it->get<std::string>();
    auto count = [&](const char *key) -> int64_t {
      auto it = mi->find(key);
      if (it == mi->end()) return 0;
      if (!it->is_number_integer() || it->get<int64_t>() < 0) r.fail(std::string("model.") + key + " must be an integer >= 0");
      return it->get<int64_t>();
    };
    p.model.layers = count("layers");
    p.model.hidden = count("hidden");
    p.model.heads = count("heads");
    p.model.kv_heads = count("kv_heads");
    p.model.head_dim = count("head_dim");
  }

  if (auto ti = m.find("target"); ti != m.end() && ti->is_object()) { // optional
    auto limit = [&](const char *key) -> uint64_t {
      auto it = ti->find(key);
      if (it == ti->end()) return 0;
      if (!it->is_number_unsigned()) r.fail(std::string("target.") + key + " must be an integer >= 0");
      return it->get<uint64_t>();
    };
    p.target.max_buffer_bytes = limit("max_buffer_bytes");
    p.target.memory_budget = limit("memory_budget");
    if (auto it = ti->find("grad_accum"); it != ti->end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 65536)
        r.fail("target.grad_accum must be an integer in [1, 65536]");
      p.target.grad_accum = it->get<int64_t>();
    }
    if (auto it = ti->find("choices"); it != ti->end() && it->is_string()) p.target.choices = it->get<std::string>();
  }

  // Blobs first: other sections refer to them.
  uint64_t blobStart = alignUp(kHeaderBytes + manifestBytes, kBlobAlign);
  uint64_t sectionBytes = r.u64(m, "blob_section_bytes", "blob_section_bytes");
  if (blobStart > bytes.size() || sectionBytes != bytes.size() - blobStart)
    r.fail("blob_section_bytes = " + std::to_string(sectionBytes) + " does not match the file size (" +
           std::to_string(bytes.size() > blobStart ? bytes.size() - blobStart : 0) + " bytes after the manifest)");
  const json &blobs = r.array(m, "blobs", "blobs");
  for (size_t i = 0; i < blobs.size(); ++i) {
    std::string path = "blobs[" + std::to_string(i) + "]";
    const json &b = r.object(blobs[i], path);
    uint64_t off = r.u64(b, "offset", path + ".offset");
    uint64_t size = r.u64(b, "size", path + ".size");
    if (off % kBlobAlign) r.fail(path + ".offset = " + std::to_string(off) + " is not 16-byte aligned");
    if (off > sectionBytes || size > sectionBytes - off)
      r.fail(path + " = {offset " + std::to_string(off) + ", size " + std::to_string(size) +
             "} is beyond the end of the blob section (" + std::to_string(sectionBytes) + " bytes)");
    const uint8_t *start = bytes.data() + blobStart + off;
    p.blobs.emplace_back(start, start + size);
  }

  const json &buffers = r.array(m, "buffers", "buffers");
  p.buffers.reserve(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    std::string path = "buffers[" + std::to_string(i) + "]";
    const json &j = r.object(buffers[i], path);
    Buffer b;
    b.name = r.string(j, "name", path + ".name");
    std::string kind = r.string(j, "kind", path + ".kind");
    size_t k = 0;
    while (k < kNumKinds && kind != kKindNames[k]) ++k;
    if (k == kNumKinds) r.fail(path + ".kind = '" + kind + "' is not a buffer kind");
    b.kind = BufferKind(k);
    std::string dtype = r.string(j, "dtype", path + ".dtype");
    bool known = false;
    for (DType t : {DType::F32, DType::I32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::TQ2_0})
      if (dtype == dtypeName(t)) b.dtype = t, known = true;
    if (!known) r.fail(path + ".dtype = '" + dtype + "' is not f32, i32, f16, bf16, q8_0, q4_0 or tq2_0");
    const json &shape = r.array(j, "shape", path + ".shape");
    for (size_t d = 0; d < shape.size(); ++d) b.shape.push_back(r.integer(shape[d], path + ".shape[" + std::to_string(d) + "]"));
    b.bytes = r.u64(j, "bytes", path + ".bytes");
    b.init_blob = r.i64Or(j, "init_blob", path + ".init_blob", -1);
    b.alias_of = r.i64Or(j, "alias_of", path + ".alias_of", -1);
    b.row_offset = r.i64Or(j, "row_offset", path + ".row_offset", -1);
    if (j.contains("transposed")) b.transposed = r.boolean(j, "transposed", path + ".transposed");
    if (j.contains("host")) b.host = r.boolean(j, "host", path + ".host");
    if (j.contains("ternary")) {
      const json &t = r.object(j["ternary"], path + ".ternary");
      std::string part = r.string(t, "part", path + ".ternary.part");
      if (part == "codes") b.ternary = Ternary::Codes;
      else if (part == "scale") b.ternary = Ternary::Scale;
      else r.fail(path + ".ternary.part = '" + part + "' is not codes or scale");
      b.ternary_eps = r.number(t, "eps", path + ".ternary.eps");
    }
    if (j.contains("gguf")) {
      const json &g = r.object(j["gguf"], path + ".gguf");
      b.gguf.tensor = r.string(g, "tensor", path + ".gguf.tensor");
      b.gguf.permute = r.nonNegative(g, "permute", path + ".gguf.permute");
      b.gguf.transpose = r.boolean(g, "transpose", path + ".gguf.transpose");
      b.gguf.add = r.number(g, "add", path + ".gguf.add");
      b.gguf.mul = r.number(g, "mul", path + ".gguf.mul");
      if (b.kind != BufferKind::Weight || b.gguf.tensor.empty() || b.gguf.mul == 0)
        r.fail(path + ".gguf: only a frozen weight has a GGUF source (a tensor name, mul != 0)");
    }
    p.buffers.push_back(std::move(b));
  }

  const json &kernels = r.array(m, "kernels", "kernels");
  for (size_t i = 0; i < kernels.size(); ++i) {
    std::string path = "kernels[" + std::to_string(i) + "]";
    const json &j = r.object(kernels[i], path);
    Kernel k;
    k.name = r.string(j, "name", path + ".name");
    k.spirv_blob = r.u32(j, "spirv_blob", path + ".spirv_blob");
    k.num_bindings = r.u32(j, "num_bindings", path + ".num_bindings");
    k.local_size = r.u32Array<3>(j, "local_size", path + ".local_size");
    k.push_constant_bytes = r.u32(j, "push_constant_bytes", path + ".push_constant_bytes");
    k.config = r.string(j, "config", path + ".config");
    k.interface = detail::interfaceFromJson(j, path, origin);
    p.kernels.push_back(std::move(k));
  }

  const json &programs = r.array(m, "programs", "programs");
  for (size_t pi = 0; pi < programs.size(); ++pi) {
    std::string ppath = "programs[" + std::to_string(pi) + "]";
    const json &jp = r.object(programs[pi], ppath);
    Program prog;
    prog.name = r.string(jp, "name", ppath + ".name");
    const json &ds = r.array(jp, "dispatches", ppath + ".dispatches");
    prog.dispatches.reserve(ds.size());
    for (size_t di = 0; di < ds.size(); ++di) {
      std::string path = ppath + ".dispatches[" + std::to_string(di) + "]";
      const json &j = r.object(ds[di], path);
      Dispatch d;
      d.kernel = r.u32(j, "kernel", path + ".kernel");
      const json &bs = r.array(j, "bindings", path + ".bindings");
      for (size_t bi = 0; bi < bs.size(); ++bi) {
        std::string bpath = path + ".bindings[" + std::to_string(bi) + "]";
        int64_t v = r.integer(bs[bi], bpath);
        r.index(v, bpath, p.buffers.size(), "buffers", false);
        d.bindings.push_back(uint32_t(v));
      }
      d.groups = r.u32Array<3>(j, "groups", path + ".groups");
      auto pc = j.find("push_constants");
      if (pc != j.end()) {
        if (!pc->is_string()) r.fail(path + ".push_constants must be a hex string");
        d.push_constants = hexDecode(r, pc->get<std::string>(), path + ".push_constants");
      }
      if (j.contains("copy")) d.copy = r.boolean(j, "copy", path + ".copy");
      prog.dispatches.push_back(std::move(d));
    }
    p.programs.push_back(std::move(prog));
  }

  const json &adapters = r.array(m, "adapters", "adapters");
  for (size_t i = 0; i < adapters.size(); ++i) {
    std::string path = "adapters[" + std::to_string(i) + "]";
    const json &j = r.object(adapters[i], path);
    Adapter a;
    a.module = r.string(j, "module", path + ".module");
    a.in_features = r.i64(j, "in_features", path + ".in_features");
    a.out_features = r.i64(j, "out_features", path + ".out_features");
    a.rank = r.i64(j, "rank", path + ".rank");
    a.a = r.i64(j, "a", path + ".a");
    a.b = r.i64(j, "b", path + ".b");
    a.grad_a = r.i64Or(j, "grad_a", path + ".grad_a", -1);
    a.grad_b = r.i64Or(j, "grad_b", path + ".grad_b", -1);
    a.m_a = r.i64Or(j, "m_a", path + ".m_a", -1);
    a.v_a = r.i64Or(j, "v_a", path + ".v_a", -1);
    a.m_b = r.i64Or(j, "m_b", path + ".m_b", -1);
    a.v_b = r.i64Or(j, "v_b", path + ".v_b", -1);
    p.adapters.push_back(std::move(a));
  }

  validate(p, r);
  return p;
}

Plan readPlanFile(const std::string &path) {
  std::vector<uint8_t> bytes;
  try {
    bytes = util::readFile(path);
  } catch (const std::runtime_error &e) {
    throw PlanError(e.what());
  }
  return parse(bytes, path);
}

} // namespace tessera::plan
