#include "runtime/plan/KernelInterface.h"

#include "runtime/plan/SpirvModule.h"
#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include <algorithm>
#include <limits>

namespace tessera::plan::detail {

using json = nlohmann::json;

namespace {

const char *accessName(Access a) { return a == Access::Read ? "read" : a == Access::Write ? "write" : "read_write"; }
bool writes(Access a) { return a == Access::Write || a == Access::ReadWrite; }

// Whether a SPIR-V buffer's element is this dtype.
bool sameElement(const SpirvBuffer &b, DType d) {
  if (b.packed16)
    return d == DType::F16 || d == DType::BF16;
  switch (d) {
  case DType::F32: return b.is_float && b.element_bits == 32;
  case DType::I32: return !b.is_float && b.element_bits == 32;
  case DType::F16: return b.is_float && !b.bfloat && b.element_bits == 16;
  // bf16: its 16-bit pattern (SIMT kernels) or the SPV_KHR_bfloat16 type
  case DType::BF16: return (!b.is_float || b.bfloat) && b.element_bits == 16;
  // block-quantised weights: read as 32-bit words
  case DType::Q8_0: case DType::Q4_0: case DType::TQ2_0: return !b.is_float && b.element_bits == 32;
  }
  return false;
}

std::string groupsText(const std::array<uint32_t, 3> &g) {
  return "[" + std::to_string(g[0]) + "," + std::to_string(g[1]) + "," + std::to_string(g[2]) + "]";
}

} // namespace

uint64_t dtypeBytes(DType d) { return bytesPerElement(d); }

json interfaceToJson(const KernelInterface &ki) {
  json bindings = json::array();
  for (const BindingInterface &b : ki.bindings)
    bindings.push_back({{"dtype", dtypeName(b.dtype)}, {"access", accessName(b.access)}, {"bytes", b.bytes}});
  return {{"bindings", std::move(bindings)}, {"max_groups", ki.max_groups}};
}

KernelInterface interfaceFromJson(const json &kernel, const std::string &kpath, const std::string &origin) {
  auto fail = [&](const std::string &msg) { throw PlanError(util::oneLine(origin + ": " + msg)); };
  std::string path = kpath + ".interface";
  auto it = kernel.find("interface");
  if (it == kernel.end())
    fail("manifest field " + path + " is missing (the plan was compiled by an older tessera: recompile it)");
  if (!it->is_object()) fail(path + " must be an object");
  KernelInterface ki;
  auto bs = it->find("bindings");
  if (bs == it->end() || !bs->is_array()) fail(path + ".bindings must be an array");
  for (size_t i = 0; i < bs->size(); ++i) {
    std::string bpath = path + ".bindings[" + std::to_string(i) + "]";
    const json &b = (*bs)[i];
    if (!b.is_object()) fail(bpath + " must be an object");
    BindingInterface bi;
    auto str = [&](const char *key) {
      auto f = b.find(key);
      if (f == b.end() || !f->is_string()) fail(bpath + "." + key + " must be a string");
      return f->get<std::string>();
    };
    std::string dtype = str("dtype"), access = str("access");
    if (dtype == "f32") bi.dtype = DType::F32;
    else if (dtype == "i32") bi.dtype = DType::I32;
    else if (dtype == "f16") bi.dtype = DType::F16;
    else if (dtype == "bf16") bi.dtype = DType::BF16;
    else if (dtype == "q8_0") bi.dtype = DType::Q8_0;
    else if (dtype == "q4_0") bi.dtype = DType::Q4_0;
    else if (dtype == "tq2_0") bi.dtype = DType::TQ2_0;
    else fail(bpath + ".dtype = '" + dtype + "' is not f32, i32, f16, bf16, q8_0, q4_0 or tq2_0");
    if (access == "read") bi.access = Access::Read;
    else if (access == "write") bi.access = Access::Write;
    else if (access == "read_write") bi.access = Access::ReadWrite;
    else fail(bpath + ".access = '" + access + "' is not read, write or read_write");
    auto bytes = b.find("bytes");
    if (bytes == b.end() || !bytes->is_number_unsigned())
      fail(bpath + ".bytes must be a non-negative integer" +
           (bytes == b.end() ? std::string() : ", not " + util::describeJson(*bytes)));
    bi.bytes = bytes->get<uint64_t>();
    ki.bindings.push_back(bi);
  }
  auto mg = it->find("max_groups");
  if (mg == it->end() || !mg->is_array() || mg->size() != 3) fail(path + ".max_groups must be 3 integers");
  for (size_t d = 0; d < 3; ++d) {
    const json &v = (*mg)[d];
    if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > std::numeric_limits<uint32_t>::max())
      fail(path + ".max_groups[" + std::to_string(d) + "] = " + util::describeJson(v) + " is not in [1, 2^32)");
    ki.max_groups[d] = v.get<uint32_t>();
  }
  return ki;
}

void checkInterfaces(const Plan &p, const std::string &origin) {
  auto fail = [&](const std::string &msg) { throw PlanError(util::oneLine(origin + ": " + msg)); };

  // Kernels: the SPIR-V must declare what the interface records, no more.
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    const Kernel &kernel = p.kernels[k];
    const KernelInterface &ki = kernel.interface;
    std::string path = "kernels[" + std::to_string(k) + "] ('" + kernel.name + "')";
    if (ki.bindings.size() != kernel.num_bindings)
      fail(path + ".interface.bindings has " + std::to_string(ki.bindings.size()) + " entries, the kernel " +
           std::to_string(kernel.num_bindings) + " bindings");
    const std::vector<uint8_t> &blob = p.blobs[kernel.spirv_blob];
    SpirvModule m;
    try {
      m = inspectSpirv(blob.data(), blob.size());
    } catch (const SpirvError &e) {
      fail(path + ": its SPIR-V module is malformed: " + e.what());
    }
    for (uint32_t c : m.capabilities)
      if (!allowedCapability(c))
        fail(path + ": its SPIR-V declares the capability " + capabilityName(c) + ", which plans may not use");
    if (!m.unsupported.empty()) fail(path + ": its SPIR-V uses what plans may not: " + m.unsupported);
    if (m.push_constant_blocks > 1 || m.push_constant_bytes > kernel.push_constant_bytes)
      fail(path + ": its SPIR-V declares " + std::to_string(m.push_constant_bytes) +
           " bytes of push constants, the kernel " + std::to_string(kernel.push_constant_bytes));
    const SpirvEntryPoint *entry = nullptr;
    for (const SpirvEntryPoint &e : m.entry_points)
      if (e.model == 5 && e.name == kernel.name) entry = &e;
    if (entry) { // (a missing entry point is reported with the device's checks)
      if (!entry->has_local_size || entry->local_size != kernel.local_size)
        fail(path + ": its SPIR-V entry point's workgroup size " +
             (entry->has_local_size ? groupsText(entry->local_size) : std::string("(not declared)")) +
             " differs from local_size " + groupsText(kernel.local_size));
    }
    std::vector<const SpirvBuffer *> byBinding(kernel.num_bindings, nullptr);
    for (const SpirvBuffer &b : m.buffers) {
      if (b.set != 0 || b.binding >= kernel.num_bindings)
        fail(path + ": its SPIR-V declares a buffer at set " + std::to_string(b.set) + " binding " +
             std::to_string(b.binding) + ", the plan binds set 0 bindings 0.." +
             std::to_string(int64_t(kernel.num_bindings) - 1));
      if (byBinding[b.binding]) fail(path + ": its SPIR-V declares binding " + std::to_string(b.binding) + " twice");
      byBinding[b.binding] = &b;
    }
    for (uint32_t i = 0; i < kernel.num_bindings; ++i) {
      const BindingInterface &bi = ki.bindings[i];
      std::string bpath = path + ".interface.bindings[" + std::to_string(i) + "]";
      const SpirvBuffer *b = byBinding[i];
      if (!b) {
        if (bi.bytes == 0) continue; // declared but unused by the module: it touches nothing
        fail(path + ": its SPIR-V has no buffer at binding " + std::to_string(i) + " but the interface records " +
             std::to_string(bi.bytes) + " bytes");
      }
      if (b->storage_class != 12 || !b->block)
        fail(path + ": binding " + std::to_string(i) + " of its SPIR-V is not a StorageBuffer block");
      if (!b->element_bits || !sameElement(*b, bi.dtype))
        fail(path + ": binding " + std::to_string(i) + " of its SPIR-V is not an array of " + dtypeName(bi.dtype) +
             " (" + bpath + ".dtype)");
      if (!b->sized)
        fail(path + ": binding " + std::to_string(i) + " of its SPIR-V is a runtime-sized array: its extent is not declared");
      if (b->bytes != bi.bytes)
        fail(path + ": binding " + std::to_string(i) + " is declared as " + std::to_string(b->bytes) +
             " bytes in its SPIR-V but as " + std::to_string(bi.bytes) + " in " + bpath + ".bytes");
      if (b->written && !writes(bi.access))
        fail(path + ": its SPIR-V writes binding " + std::to_string(i) + " but " + bpath + ".access is read");
    }
  }

  // Dispatches: the bound buffers cover what the kernel may touch.
  for (size_t pi = 0; pi < p.programs.size(); ++pi) {
    const Program &prog = p.programs[pi];
    for (size_t di = 0; di < prog.dispatches.size(); ++di) {
      const Dispatch &d = prog.dispatches[di];
      const Kernel &kernel = p.kernels[d.kernel];
      const KernelInterface &ki = kernel.interface;
      std::string path = "programs[" + std::to_string(pi) + "].dispatches[" + std::to_string(di) + "]";
      uint64_t largest = 0; // elements of the largest binding
      for (size_t bi = 0; bi < d.bindings.size(); ++bi) {
        const Buffer &buf = p.buffers[d.bindings[bi]];
        const BindingInterface &want = ki.bindings[bi];
        std::string what = path + ".bindings[" + std::to_string(bi) + "] = " + std::to_string(d.bindings[bi]) +
                           ": buffer '" + buf.name + "'";
        if (buf.bytes < want.bytes)
          fail(what + " has " + std::to_string(buf.bytes) + " bytes, kernel '" + kernel.name + "' may touch " +
               std::to_string(want.bytes) + " (kernels[" + std::to_string(d.kernel) + "].interface)");
        if (buf.dtype != want.dtype)
          fail(what + " is " + dtypeName(buf.dtype) + ", kernel '" + kernel.name + "' reads it as " + dtypeName(want.dtype));
        size_t root = d.bindings[bi];
        for (size_t hops = 0; p.buffers[root].alias_of >= 0 && hops <= p.buffers.size(); ++hops)
          root = size_t(p.buffers[root].alias_of);
        BufferKind kind = p.buffers[root].kind;
        if (writes(want.access) && (kind == BufferKind::Weight || kind == BufferKind::Constant || kind == BufferKind::Input))
          fail(what + " holds " + (kind == BufferKind::Weight ? "a frozen weight" : kind == BufferKind::Constant ? "a constant" : "an input") +
               ", which kernel '" + kernel.name + "' would write (binding " + std::to_string(bi) + " is " +
               accessName(want.access) + ")");
        largest = std::max(largest, want.bytes / dtypeBytes(want.dtype));
      }
      // Group counts: never more than the compiler dispatched, and never more
      // workgroups than the kernel's largest buffer has elements (a bound on
      // the work of a dispatch by the memory it touches).
      uint64_t total = 1;
      for (int g = 0; g < 3; ++g) {
        if (d.groups[g] > ki.max_groups[g])
          fail(path + ".groups[" + std::to_string(g) + "] = " + std::to_string(d.groups[g]) + " is more than the " +
               std::to_string(ki.max_groups[g]) + " the compiler dispatches kernel '" + kernel.name +
               "' with (kernels[" + std::to_string(d.kernel) + "].interface.max_groups)");
        if (__builtin_mul_overflow(total, uint64_t(d.groups[g]), &total)) total = UINT64_MAX;
      }
      if (total > std::max<uint64_t>(1, largest))
        fail(path + ": " + std::to_string(total) + " workgroups, more than the " + std::to_string(largest) +
             " elements of the largest buffer kernel '" + kernel.name + "' touches");
    }
  }
}

} // namespace tessera::plan::detail
