// TestSpirv.h - minimal compute modules for the plan and interface tests:
// each binding is a StorageBuffer block of one array the kernel reads and/or
// writes at element 0. SpirvTest checks every shape of module built here with
// spirv-val (the independent reference), so the tests of the plan reader
// feed it modules a real toolchain accepts.
#pragma once

#include "runtime/plan/Plan.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::test {

struct SpirvBinding {
  plan::DType dtype = plan::DType::F32;
  uint32_t elements = 1;
  bool read = true, write = false;
  bool runtimeArray = false; // OpTypeRuntimeArray instead of a sized array
  uint32_t set = 0;
  int binding = -1;          // default: its index
};

struct SpirvKernel {
  std::string name = "k";
  std::array<uint32_t, 3> localSize{1, 1, 1};
  std::vector<SpirvBinding> bindings;
  uint32_t pushConstantBytes = 0; // a block of that many bytes of u32, member 0 read
  std::vector<uint32_t> extraCapabilities;
};

class SpirvWriter {
public:
  std::vector<uint8_t> build(const SpirvKernel &k) {
    std::vector<uint32_t> caps = {1}; // Shader
    caps.insert(caps.end(), k.extraCapabilities.begin(), k.extraCapabilities.end());
    for (uint32_t c : caps) emit(head_, 17, {c});
    emit(head_, 10, str("SPV_KHR_storage_buffer_storage_class"));
    emit(head_, 14, {0, 1}); // Logical GLSL450
    uint32_t main = id();
    std::vector<uint32_t> ep = {5, main};
    for (uint32_t w : str(k.name)) ep.push_back(w);
    emit(head_, 15, ep);
    emit(head_, 16, {main, 17, k.localSize[0], k.localSize[1], k.localSize[2]});

    uint32_t tVoid = id(), tFn = id(), tUint = id(), tInt = id(), tFloat = id();
    emit(types_, 19, {tVoid});
    emit(types_, 33, {tFn, tVoid});
    emit(types_, 21, {tUint, 32, 0});
    emit(types_, 21, {tInt, 32, 1});
    emit(types_, 22, {tFloat, 32});
    uint32_t c0 = constant(tUint, 0);
    std::map<int, uint32_t> elemPtr;
    std::vector<uint32_t> body;
    for (size_t i = 0; i < k.bindings.size(); ++i) {
      const SpirvBinding &b = k.bindings[i];
      uint32_t elem = b.dtype == plan::DType::I32 ? tInt : tFloat;
      uint32_t arr = id(), st = id(), ptr = id(), var = id();
      if (b.runtimeArray) emit(types_, 29, {arr, elem});
      else emit(types_, 28, {arr, elem, constant(tUint, b.elements)});
      emit(types_, 30, {st, arr});
      emit(types_, 32, {ptr, 12, st});
      emit(types_, 59, {ptr, var, 12});
      emit(decos_, 71, {arr, 6, 4});       // ArrayStride 4
      emit(decos_, 72, {st, 0, 35, 0});    // Offset 0
      emit(decos_, 71, {st, 2});           // Block
      emit(decos_, 71, {var, 34, b.set});  // DescriptorSet
      emit(decos_, 71, {var, 33, uint32_t(b.binding >= 0 ? b.binding : int(i))});
      if (!elemPtr.count(int(elem))) {
        elemPtr[int(elem)] = id();
        emit(types_, 32, {elemPtr[int(elem)], 12, elem});
      }
      uint32_t value = constant(elem, 0);
      if (b.read) {
        uint32_t p = id(), v = id();
        emit(body, 65, {elemPtr[int(elem)], p, var, c0, c0});
        emit(body, 61, {elem, v, p});
        value = v;
      }
      if (b.write) {
        uint32_t p = id();
        emit(body, 65, {elemPtr[int(elem)], p, var, c0, c0});
        emit(body, 62, {p, value});
      }
    }
    if (k.pushConstantBytes) {
      uint32_t st = id(), ptr = id(), var = id(), memberPtr = id(), p = id(), v = id();
      std::vector<uint32_t> members = {st};
      for (uint32_t m = 0; m < k.pushConstantBytes / 4; ++m) {
        members.push_back(tUint);
        emit(decos_, 72, {st, m, 35, 4 * m});
      }
      emit(decos_, 71, {st, 2});
      emit(types_, 30, members);
      emit(types_, 32, {ptr, 9, st});
      emit(types_, 59, {ptr, var, 9});
      emit(types_, 32, {memberPtr, 9, tUint});
      emit(body, 65, {memberPtr, p, var, c0});
      emit(body, 61, {tUint, v, p});
    }
    std::vector<uint32_t> fn;
    emit(fn, 54, {tVoid, main, 0, tFn});
    emit(fn, 248, {id()}); // OpLabel
    fn.insert(fn.end(), body.begin(), body.end());
    emit(fn, 253, {}); // OpReturn
    emit(fn, 56, {});  // OpFunctionEnd

    std::vector<uint32_t> words = {0x07230203, 0x00010000, 0, next_, 0};
    for (auto *part : {&head_, &decos_, &types_, &fn}) words.insert(words.end(), part->begin(), part->end());
    std::vector<uint8_t> bytes(words.size() * 4);
    for (size_t i = 0; i < words.size(); ++i)
      for (int b = 0; b < 4; ++b) bytes[4 * i + b] = uint8_t(words[i] >> (8 * b));
    return bytes;
  }

private:
  uint32_t id() { return next_++; }
  static void emit(std::vector<uint32_t> &out, uint32_t op, const std::vector<uint32_t> &operands) {
    out.push_back(uint32_t(operands.size() + 1) << 16 | op);
    out.insert(out.end(), operands.begin(), operands.end());
  }
  static std::vector<uint32_t> str(const std::string &s) {
    std::vector<uint32_t> w((s.size() + 4) / 4, 0);
    for (size_t i = 0; i < s.size(); ++i) w[i / 4] |= uint32_t(uint8_t(s[i])) << (8 * (i % 4));
    return w;
  }
  uint32_t constant(uint32_t type, uint32_t value) {
    auto key = std::make_pair(type, value);
    auto it = constants_.find(key);
    if (it != constants_.end()) return it->second;
    uint32_t c = id();
    emit(types_, 43, {type, c, value});
    return constants_[key] = c;
  }
  uint32_t next_ = 1;
  std::vector<uint32_t> head_, decos_, types_;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> constants_;
};

inline std::vector<uint8_t> spirvKernel(const SpirvKernel &k) { return SpirvWriter().build(k); }

// The interface a plan records for a module built from `k` (max_groups 1).
inline plan::KernelInterface interfaceOf(const SpirvKernel &k) {
  plan::KernelInterface ki;
  for (const SpirvBinding &b : k.bindings)
    ki.bindings.push_back({b.dtype, b.write ? (b.read ? plan::Access::ReadWrite : plan::Access::Write) : plan::Access::Read,
                           uint64_t(b.elements) * 4});
  return ki;
}

} // namespace tessera::test
