// SpirvModule.h - what a kernel's SPIR-V module declares about the memory
// it may touch, read from the binary without a SPIR-V library: capabilities,
// compute entry points and their workgroup size, every descriptor-bound
// buffer (set, binding, element type, declared size, whether the module
// reads or writes through it) and the workgroup memory it uses.
//
// The plan reader compares this with the interface the compiler recorded
// (Plan.h KernelInterface): a plan is code, and its modules must declare
// exactly the buffers the runtime binds, each no larger than the buffer
// bound to it (docs/plan-format.md, "Trust model").
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::plan {

struct SpirvError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SpirvBuffer {
  uint32_t id = 0;                  // the OpVariable's result id
  uint32_t set = 0, binding = 0;
  uint32_t storage_class = 0;       // 12 = StorageBuffer
  bool block = false;               // its struct is decorated Block
  // The struct's single member: an array of scalars.
  bool is_float = false;            // OpTypeFloat, else OpTypeInt
  uint32_t element_bits = 0;        // 32 (f32/i32), 16
  // The array's elements are vectors of 32-bit integers holding packed
  // 16-bit values (the vector loads of cooperative-matrix kernels): f16 or
  // bf16 data, which the SPIR-V alone does not tell apart. (Vectors of f16
  // or i16 count as their scalars.)
  bool packed16 = false;
  bool bfloat = false;              // OpTypeFloat 16 with the BFloat16KHR encoding
  bool sized = false;               // OpTypeArray with a constant length (false: runtime array)
  uint64_t bytes = 0;               // length * ArrayStride, when sized
  bool read = false, written = false; // through OpLoad/OpStore/atomics/copies/calls of derived pointers
};

struct SpirvEntryPoint {
  uint32_t model = 0;               // 5 = GLCompute
  uint32_t function = 0;
  std::string name;
  bool has_local_size = false;      // OpExecutionMode LocalSize
  std::array<uint32_t, 3> local_size{0, 0, 0};
};

struct SpirvModule {
  uint32_t version = 0;             // 0x00010300 = SPIR-V 1.3
  std::vector<uint32_t> capabilities;
  std::vector<SpirvEntryPoint> entry_points;
  std::vector<SpirvBuffer> buffers; // every variable with a DescriptorSet or Binding, in id order
  uint64_t workgroup_bytes = 0;     // Workgroup (shared) variables, laid out without padding
  uint32_t push_constant_blocks = 0;
  uint64_t push_constant_bytes = 0; // the largest push-constant block
  // Why a feature the runtime does not allow appears (empty: none): storage
  // classes other than StorageBuffer/Workgroup/Input/Private/Function,
  // LocalSizeId, a WorkgroupSize built-in, spec-constant array lengths.
  std::string unsupported;
};

// Parses the module's declarations. Throws SpirvError naming the problem
// (and the word offset) when the binary is malformed: bad magic, an
// instruction running past the end, a reference to an undeclared type.
SpirvModule inspectSpirv(const uint8_t *bytes, size_t size);

// Capabilities a plan's kernels may declare (the rest, e.g. physical
// pointers, could reach memory outside the bound buffers).
bool allowedCapability(uint32_t capability);
// "Shader", "Int64", ... or the number.
std::string capabilityName(uint32_t capability);

} // namespace tessera::plan
