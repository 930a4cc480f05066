// SpirvModule.cpp - see SpirvModule.h. Numbers are from the SPIR-V 1.6
// specification (section 3: binary form, opcodes, enumerants); the unit tests
// check them against modules assembled by spirv-as.
#include "runtime/plan/SpirvModule.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace tessera::plan {

namespace {

constexpr uint32_t kMagic = 0x07230203;

enum Op : uint32_t {
  OpLine = 8, OpExtension = 10, OpExtInst = 12, OpMemoryModel = 14, OpEntryPoint = 15, OpExecutionMode = 16,
  OpCapability = 17, OpTypeVoid = 19, OpTypeBool = 20, OpTypeInt = 21, OpTypeFloat = 22, OpTypeVector = 23,
  OpTypeMatrix = 24, OpTypeArray = 28, OpTypeRuntimeArray = 29, OpTypeStruct = 30, OpTypePointer = 32,
  OpConstant = 43, OpSpecConstant = 50, OpFunction = 54, OpFunctionEnd = 56, OpFunctionCall = 57,
  OpVariable = 59, OpLoad = 61, OpStore = 62, OpCopyMemory = 63, OpCopyMemorySized = 64, OpAccessChain = 65,
  OpInBoundsAccessChain = 66, OpPtrAccessChain = 67, OpInBoundsPtrAccessChain = 70, OpDecorate = 71,
  OpMemberDecorate = 72, OpVectorShuffle = 79, OpCompositeInsert = 82, OpCompositeExtract = 81, OpCopyObject = 83,
  OpSelect = 169, OpAtomicLoad = 227, OpAtomicStore = 228, OpPhi = 245, OpLoopMerge = 246,
  OpSelectionMerge = 247, OpSwitch = 251, OpExecutionModeId = 331, OpDecorateId = 332,
  OpCooperativeMatrixLoadKHR = 4457,
};

enum Decoration : uint32_t {
  Block = 2, BufferBlock = 3, ArrayStride = 6, BuiltIn = 11, Binding = 33, DescriptorSet = 34, Offset = 35,
};
enum StorageClass : uint32_t {
  UniformConstant = 0, Input = 1, Uniform = 2, Output = 3, Workgroup = 4, Private = 6, Function = 7,
  PushConstant = 9, StorageBuffer = 12,
};
constexpr uint32_t kLocalSize = 17, kLocalSizeId = 38, kBuiltInWorkgroupSize = 25;

struct Type {
  uint32_t op = 0;
  std::vector<uint32_t> operands; // the words after the result id
};

struct Decorations {
  bool hasBinding = false, hasSet = false, block = false, workgroupSize = false;
  uint32_t binding = 0, set = 0, stride = 0;
  std::unordered_map<uint32_t, uint32_t> memberOffset;
};

struct Instruction {
  uint32_t op, count;
  const uint32_t *w; // w[0] is the opcode word
};

class Reader {
public:
  Reader(const uint8_t *bytes, size_t size) {
    if (size < 20 || size % 4) fail("not a SPIR-V module (" + std::to_string(size) + " bytes)");
    words_.resize(size / 4);
    for (size_t i = 0; i < words_.size(); ++i)
      words_[i] = uint32_t(bytes[4 * i]) | uint32_t(bytes[4 * i + 1]) << 8 | uint32_t(bytes[4 * i + 2]) << 16 |
                  uint32_t(bytes[4 * i + 3]) << 24;
    if (words_[0] != kMagic) fail("not a SPIR-V module (magic " + std::to_string(words_[0]) + ")");
    for (size_t i = 5; i < words_.size();) {
      uint32_t count = words_[i] >> 16, op = words_[i] & 0xffff;
      if (count == 0 || i + count > words_.size())
        fail("instruction at word " + std::to_string(i) + " runs past the end of the module");
      insts_.push_back({op, count, &words_[i]});
      i += count;
    }
  }

  SpirvModule inspect() {
    SpirvModule m;
    m.version = words_[1];
    collectDeclarations(m);
    collectBuffers(m);
    traceAccesses(m);
    m.push_constant_bytes = pushConstantBytes_;
    return m;
  }

private:
  [[noreturn]] static void fail(const std::string &msg) { throw SpirvError(msg); }

  // Operand word k (1-based after the opcode word) or a malformed-module error.
  static uint32_t at(const Instruction &in, uint32_t k) {
    if (k >= in.count) fail("opcode " + std::to_string(in.op) + " has too few operands");
    return in.w[k];
  }

  static std::string literalString(const Instruction &in, uint32_t k) {
    std::string s;
    for (uint32_t i = k; i < in.count; ++i)
      for (int b = 0; b < 4; ++b) {
        char c = char((in.w[i] >> (8 * b)) & 0xff);
        if (!c) return s;
        s.push_back(c);
      }
    fail("a string operand is not terminated");
  }

  void collectDeclarations(SpirvModule &m) {
    std::unordered_map<uint32_t, size_t> entryOf; // function id -> first entry point
    for (const Instruction &in : insts_) {
      switch (in.op) {
      case OpCapability: m.capabilities.push_back(at(in, 1)); break;
      case OpEntryPoint: {
        SpirvEntryPoint e;
        e.model = at(in, 1);
        e.function = at(in, 2);
        e.name = literalString(in, 3);
        entryOf.emplace(e.function, m.entry_points.size());
        m.entry_points.push_back(std::move(e));
        break;
      }
      case OpExecutionMode:
        if (at(in, 2) == kLocalSize) {
          for (SpirvEntryPoint &e : m.entry_points)
            if (e.function == at(in, 1)) {
              e.has_local_size = true;
              e.local_size = {at(in, 3), at(in, 4), at(in, 5)};
            }
        } else if (at(in, 2) == kLocalSizeId) {
          note(m, "an entry point sets its workgroup size with LocalSizeId");
        }
        break;
      case OpExecutionModeId: note(m, "an entry point uses OpExecutionModeId"); break;
      case OpDecorateId: note(m, "the module uses OpDecorateId"); break;
      case OpDecorate: {
        Decorations &d = decorations_[at(in, 1)];
        uint32_t what = at(in, 2);
        if (what == Binding) d.hasBinding = true, d.binding = at(in, 3);
        else if (what == DescriptorSet) d.hasSet = true, d.set = at(in, 3);
        else if (what == ArrayStride) d.stride = at(in, 3);
        else if (what == Block || what == BufferBlock) d.block = true;
        else if (what == BuiltIn && at(in, 3) == kBuiltInWorkgroupSize) d.workgroupSize = true;
        break;
      }
      case OpMemberDecorate:
        if (at(in, 3) == Offset) decorations_[at(in, 1)].memberOffset[at(in, 2)] = at(in, 4);
        break;
      case OpTypeVoid: case OpTypeBool: case OpTypeInt: case OpTypeFloat: case OpTypeVector: case OpTypeMatrix:
      case OpTypeArray: case OpTypeRuntimeArray: case OpTypeStruct: case OpTypePointer: {
        Type t;
        t.op = in.op;
        t.operands.assign(in.w + 2, in.w + in.count);
        types_[at(in, 1)] = std::move(t);
        break;
      }
      case OpConstant:
        constants_[at(in, 2)] = at(in, 3); // low word: array lengths are 32-bit in practice
        if (in.count > 4 && in.w[4] != 0) constants_[at(in, 2)] = UINT32_MAX; // a 64-bit length beyond 2^32
        break;
      case OpSpecConstant: specConstants_.insert(at(in, 2)); break;
      case OpVariable: {
        uint32_t type = at(in, 1), id = at(in, 2), sc = at(in, 3);
        variables_.push_back({id, type, sc});
        break;
      }
      default: break;
      }
    }
    for (auto &[id, d] : decorations_)
      if (d.workgroupSize) note(m, "the module sets its workgroup size with the WorkgroupSize built-in");
  }

  static void note(SpirvModule &m, const std::string &why) {
    if (m.unsupported.empty()) m.unsupported = why;
  }

  // OpTypeFloat 16 with the BFloat16KHR encoding (SPV_KHR_bfloat16).
  static bool isBfloat(const Type &t) { return t.op == OpTypeFloat && t.operands.size() > 1 && t.operands[1] == 0; }

  const Type &type(uint32_t id) const {
    auto it = types_.find(id);
    if (it == types_.end()) fail("id " + std::to_string(id) + " is used as a type but is not declared as one");
    return it->second;
  }
  static uint32_t operand(const Type &t, size_t k) {
    if (k >= t.operands.size()) fail("a type declaration has too few operands");
    return t.operands[k];
  }

  // Bytes of a type laid out as declared (explicit Offset/ArrayStride when
  // present, else packed); 0 when it has no fixed size.
  uint64_t sizeOf(uint32_t id, int depth = 0) const {
    if (depth > 16) fail("types nest deeper than 16 levels");
    const Type &t = type(id);
    switch (t.op) {
    case OpTypeBool: return 4;
    case OpTypeInt:
    case OpTypeFloat: return operand(t, 0) / 8;
    case OpTypeVector:
    case OpTypeMatrix: return uint64_t(operand(t, 1)) * sizeOf(operand(t, 0), depth + 1);
    case OpTypeArray: {
      uint64_t len = arrayLength(operand(t, 1));
      if (!len) return 0;
      auto d = decorations_.find(id);
      uint64_t stride = d != decorations_.end() && d->second.stride ? d->second.stride : sizeOf(operand(t, 0), depth + 1);
      return len * stride;
    }
    case OpTypeStruct: {
      uint64_t end = 0, packed = 0;
      auto d = decorations_.find(id);
      for (size_t k = 0; k < t.operands.size(); ++k) {
        uint64_t s = sizeOf(t.operands[k], depth + 1);
        if (!s) return 0;
        uint64_t off = packed;
        if (d != decorations_.end())
          if (auto o = d->second.memberOffset.find(uint32_t(k)); o != d->second.memberOffset.end()) off = o->second;
        end = std::max(end, off + s);
        packed = off + s;
      }
      return end;
    }
    default: return 0; // runtime arrays, pointers, void
    }
  }
  // A constant array length, or 0 (a spec constant or unknown).
  uint64_t arrayLength(uint32_t id) const {
    if (specConstants_.count(id)) return 0;
    auto c = constants_.find(id);
    return c == constants_.end() || c->second == UINT32_MAX ? 0 : c->second;
  }

  void collectBuffers(SpirvModule &m) {
    for (const Variable &v : variables_) {
      const Type &ptr = type(v.type);
      if (ptr.op != OpTypePointer) fail("variable " + std::to_string(v.id) + " does not have a pointer type");
      uint32_t pointee = operand(ptr, 1);
      auto d = decorations_.find(v.id);
      bool bound = d != decorations_.end() && (d->second.hasBinding || d->second.hasSet);
      switch (v.storage) {
      case Input: case Output: case Private: case Function: break;
      case Workgroup: {
        uint64_t s = sizeOf(pointee);
        if (!s) note(m, "a workgroup variable has no fixed size");
        m.workgroup_bytes += s;
        break;
      }
      case PushConstant: ++m.push_constant_blocks; pushConstantBytes_ = std::max(pushConstantBytes_, sizeOf(pointee)); break;
      case StorageBuffer: break;
      default:
        note(m, "a variable of storage class " + std::to_string(v.storage) +
                    " (only StorageBuffer buffers, workgroup, private and function memory are allowed)");
      }
      if (!bound) {
        if (v.storage == StorageBuffer) note(m, "a storage buffer has no DescriptorSet/Binding");
        continue;
      }
      SpirvBuffer b;
      b.id = v.id;
      b.set = d->second.set;
      b.binding = d->second.binding;
      b.storage_class = v.storage;
      const Type &st = type(pointee);
      if (st.op == OpTypeStruct) {
        auto sd = decorations_.find(pointee);
        b.block = sd != decorations_.end() && sd->second.block;
        if (st.operands.size() == 1) {
          uint32_t member = st.operands[0];
          const Type &arr = type(member);
          uint32_t offset = 0;
          if (sd != decorations_.end())
            if (auto o = sd->second.memberOffset.find(0); o != sd->second.memberOffset.end()) offset = o->second;
          if ((arr.op == OpTypeArray || arr.op == OpTypeRuntimeArray) && offset == 0) {
            const Type &elem = type(operand(arr, 0));
            auto ad = decorations_.find(member);
            uint32_t stride = ad != decorations_.end() ? ad->second.stride : 0;
            // Vectors (the vector loads of cooperative-matrix kernels): of
            // 16-bit scalars, or of 32-bit integers packing two halves each.
            bool vector = false;
            if (elem.op == OpTypeVector) {
              const Type &comp = type(operand(elem, 0));
              uint32_t n = operand(elem, 1), bits = (comp.op == OpTypeInt || comp.op == OpTypeFloat) ? operand(comp, 0) : 0;
              if (n >= 1 && n <= 4 && stride * 8 == n * bits && (bits == 16 || (bits == 32 && comp.op == OpTypeInt))) {
                vector = true;
                b.packed16 = bits == 32;
                b.is_float = comp.op == OpTypeFloat;
              }
            }
            if (vector) {
              b.element_bits = 16;
              b.bfloat = !b.packed16 && isBfloat(type(operand(elem, 0)));
              if (arr.op == OpTypeArray) {
                uint64_t len = arrayLength(operand(arr, 1));
                b.sized = len > 0;
                b.bytes = len * stride;
              }
            } else if ((elem.op == OpTypeFloat || elem.op == OpTypeInt) && stride * 8 == operand(elem, 0)) {
              b.is_float = elem.op == OpTypeFloat;
              b.element_bits = operand(elem, 0);
              b.bfloat = isBfloat(elem);
              if (arr.op == OpTypeArray) {
                uint64_t len = arrayLength(operand(arr, 1));
                b.sized = len > 0;
                b.bytes = len * stride;
              }
            }
          }
        }
      }
      m.buffers.push_back(b);
    }
    std::sort(m.buffers.begin(), m.buffers.end(), [](const SpirvBuffer &a, const SpirvBuffer &b) { return a.id < b.id; });
  }

  // Marks each buffer read and/or written through the pointers derived from
  // it. Unknown uses of such a pointer count as both.
  void traceAccesses(SpirvModule &m) {
    std::unordered_map<uint32_t, std::vector<size_t>> derived; // pointer id -> buffers it may point into
    for (size_t i = 0; i < m.buffers.size(); ++i) derived[m.buffers[i].id].push_back(i);
    auto mark = [&](uint32_t ptr, bool read, bool write) {
      auto it = derived.find(ptr);
      if (it == derived.end()) return;
      for (size_t b : it->second) {
        m.buffers[b].read |= read;
        m.buffers[b].written |= write;
      }
    };
    // Repeat until nothing new is derived (a malformed module may use an id before defining it).
    for (bool grew = true; grew;) {
      grew = false;
      bool inFunction = false;
      for (const Instruction &in : insts_) {
        if (in.op == OpFunction) inFunction = true;
        if (in.op == OpFunctionEnd) inFunction = false;
        if (!inFunction) continue;
        auto derive = [&](uint32_t result, size_t firstSource, size_t lastSource) {
          std::vector<size_t> from;
          for (size_t k = firstSource; k <= lastSource && k < in.count; ++k)
            if (auto it = derived.find(in.w[k]); it != derived.end()) from.insert(from.end(), it->second.begin(), it->second.end());
          if (from.empty()) return;
          std::vector<size_t> &to = derived[result];
          for (size_t b : from)
            if (std::find(to.begin(), to.end(), b) == to.end()) to.push_back(b), grew = true;
        };
        switch (in.op) {
        case OpAccessChain: case OpInBoundsAccessChain: case OpPtrAccessChain: case OpInBoundsPtrAccessChain:
        case OpCopyObject:
          derive(at(in, 2), 3, 3);
          break;
        case OpSelect: derive(at(in, 2), 4, 5); break;
        case OpPhi:
          for (uint32_t k = 3; k < in.count; k += 2) derive(at(in, 2), k, k);
          break;
        default: break;
        }
      }
    }
    bool inFunction = false;
    for (const Instruction &in : insts_) {
      if (in.op == OpFunction) inFunction = true;
      if (in.op == OpFunctionEnd) inFunction = false;
      if (!inFunction) continue;
      switch (in.op) {
      case OpLoad: mark(at(in, 3), true, false); break;
      case OpStore: mark(at(in, 1), false, true); break;
      case OpAtomicLoad: mark(at(in, 3), true, false); break;
      case OpCooperativeMatrixLoadKHR: mark(at(in, 3), true, false); break;
      case OpAtomicStore: mark(at(in, 1), false, true); break;
      case OpCopyMemory: case OpCopyMemorySized:
        mark(at(in, 1), false, true);
        mark(at(in, 2), true, false);
        break;
      case OpAccessChain: case OpInBoundsAccessChain: case OpPtrAccessChain: case OpInBoundsPtrAccessChain:
      case OpCopyObject: case OpSelect: case OpPhi:
        break; // derivations, traced above
      default: {
        // Any other instruction that mentions a derived pointer: read and write.
        uint32_t skipFrom = in.count; // literal operands are not ids
        switch (in.op) {
        case OpExtInst: skipFrom = 4; break;
        case OpCompositeExtract: skipFrom = 4; break;
        case OpCompositeInsert: skipFrom = 5; break;
        case OpVectorShuffle: skipFrom = 5; break;
        case OpLoopMerge: skipFrom = 3; break;
        case OpSelectionMerge: skipFrom = 2; break;
        case OpSwitch: skipFrom = 2; break;
        case OpLine: skipFrom = 1; break;
        default: break;
        }
        for (uint32_t k = 1; k < in.count; ++k) {
          if (k == skipFrom && in.op == OpExtInst) continue; // the instruction number; operands follow
          if (k >= skipFrom && in.op != OpExtInst) break;
          mark(in.w[k], true, true);
        }
      }
      }
    }
  }

  struct Variable {
    uint32_t id, type, storage;
  };
  std::vector<uint32_t> words_;
  std::vector<Instruction> insts_;
  std::unordered_map<uint32_t, Type> types_;
  std::unordered_map<uint32_t, Decorations> decorations_;
  std::unordered_map<uint32_t, uint32_t> constants_;
  std::unordered_set<uint32_t> specConstants_;
  std::vector<Variable> variables_;
  uint64_t pushConstantBytes_ = 0;
};

} // namespace

SpirvModule inspectSpirv(const uint8_t *bytes, size_t size) { return Reader(bytes, size).inspect(); }

bool allowedCapability(uint32_t c) {
  switch (c) {
  case 0:    // Matrix (implied by Shader; cooperative-matrix kernels scale fragments with OpMatrixTimesScalar)
  case 1:    // Shader
  case 9:    // Float16
  case 10:   // Float64
  case 11:   // Int64
  case 22:   // Int16
  case 39:   // Int8
  case 61: case 62: case 63: case 64: case 65: case 66: case 67: case 68: // GroupNonUniform*
  case 4433: // StorageBuffer16BitAccess
  case 4434: // UniformAndStorageBuffer16BitAccess
  case 4448: // StorageBuffer8BitAccess
  case 4449: // UniformAndStorageBuffer8BitAccess
  case 5345: // VulkanMemoryModel
  case 5346: // VulkanMemoryModelDeviceScope
  case 6022: // CooperativeMatrixKHR (checked against the device: runtime/vulkan/KernelCheck.cpp)
  case 5116: // BFloat16TypeKHR
  case 5118: // BFloat16CooperativeMatrixKHR
  case 6018: // DotProductInput4x8BitPacked (checked against the device: shaderIntegerDotProduct)
  case 6019: // DotProduct
    return true;
  default: return false;
  }
}

std::string capabilityName(uint32_t c) {
  switch (c) {
  case 0: return "Matrix";
  case 1: return "Shader";
  case 4: return "Addresses";
  case 5: return "Linkage";
  case 6: return "Kernel";
  case 9: return "Float16";
  case 10: return "Float64";
  case 11: return "Int64";
  case 22: return "Int16";
  case 39: return "Int8";
  case 4433: return "StorageBuffer16BitAccess";
  case 4441: return "VariablePointersStorageBuffer";
  case 4442: return "VariablePointers";
  case 4448: return "StorageBuffer8BitAccess";
  case 5116: return "BFloat16TypeKHR";
  case 5118: return "BFloat16CooperativeMatrixKHR";
  case 5345: return "VulkanMemoryModel";
  case 6018: return "DotProductInput4x8BitPacked";
  case 6019: return "DotProduct";
  case 6022: return "CooperativeMatrixKHR";
  case 5347: return "PhysicalStorageBufferAddresses";
  default: return "capability " + std::to_string(c);
  }
}

} // namespace tessera::plan
