// Kernels.cpp - the kernel cache shared by the generators.
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/AsmParser/AsmParser.h"

using namespace mlir;

namespace tessera::lowering {

namespace {
// SPIR-V target of every kernel: Vulkan 1.1 (SPIR-V 1.3), storage buffers,
// limits from the profile. tessera-kernels-to-spirv trims the capability
// list to what each kernel uses (spirv-update-vce).
Attribute targetEnvFor(MLIRContext *ctx, const autotune::DeviceProfile &p) {
  std::string s =
      "#spirv.target_env<#spirv.vce<v1.3, [Shader, GroupNonUniform, "
      "GroupNonUniformArithmetic, GroupNonUniformBallot, GroupNonUniformShuffle], "
      "[SPV_KHR_storage_buffer_storage_class]>, api=Vulkan, #spirv.resource_limits<"
      "max_compute_shared_memory_size = " +
      std::to_string(p.shared_memory_bytes) +
      ", max_compute_workgroup_invocations = " + std::to_string(p.max_workgroup_invocations) +
      ", max_compute_workgroup_size = [" + std::to_string(p.max_workgroup_invocations) + ", " +
      std::to_string(p.max_workgroup_invocations) + ", 64], subgroup_size = " +
      std::to_string(p.subgroup_size) + ">>";
  return parseAttribute(s, ctx);
}
} // namespace

LoweringContext::LoweringContext(ModuleOp m, const autotune::DeviceProfile &p)
    : module(m), profile(p), targetEnv(targetEnvFor(m.getContext(), p)) {}

void LoweringContext::reserveName(llvm::StringRef name) { usedNames.insert(name); }

std::string LoweringContext::uniqueName(llvm::StringRef base) {
  std::string name = base.str();
  for (unsigned n = 1; usedNames.contains(name); ++n)
    name = base.str() + "_" + std::to_string(n);
  usedNames.insert(name);
  return name;
}

KernelHandle LoweringContext::getOrCreate(
    StringRef family, StringRef key, ArrayRef<Type> args, std::array<int64_t, 3> localSize,
    const std::function<std::array<int64_t, 3>(KernelBuilder &)> &build) {
  std::string fullKey = key.str();
  auto it = kernels.find(fullKey);
  if (it != kernels.end())
    return it->second;
  unsigned &count = familyCount[family];
  std::string name;
  do
    name = family.str() + "_" + std::to_string(count++);
  while (usedNames.contains(name));
  usedNames.insert(name);
  KernelBuilder kb(module, name, args, localSize, targetEnv);
  KernelHandle handle{name, build(kb)};
  kb.finish();
  kernels[fullKey] = handle;
  return handle;
}

void workgroupLoop(KernelBuilder &kb, int64_t n, int64_t groups,
                   const std::function<void(Value)> &body) {
  Value bid = kb.blockId();
  if (groups >= n) {
    body(bid); // exactly one item per workgroup (groups == n)
    return;
  }
  kb.forLoop(bid, kb.idx(n), kb.idx(groups), body);
}

} // namespace tessera::lowering
