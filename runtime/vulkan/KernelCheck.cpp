#include "runtime/vulkan/KernelCheck.h"

#include "runtime/plan/SpirvModule.h"

#include <cstring>

#if TESSERA_SPIRV_VALIDATOR
#include <spirv-tools/libspirv.h>
#endif

namespace tessera::vk {

namespace {

// Whether the device was created with what capability `c` needs.
bool capabilityEnabled(const Context &ctx, uint32_t c, std::string &needs) {
  const Context::Features &f = ctx.features();
  switch (c) {
  case 0: case 1: return true; // Matrix (implied by Shader), Shader
  case 9: needs = "shaderFloat16"; return f.float16;
  case 10: needs = "shaderFloat64"; return f.float64;
  case 11: needs = "shaderInt64"; return f.int64;
  case 22: needs = "shaderInt16"; return f.int16;
  case 39: needs = "shaderInt8"; return f.int8;
  case 4433: case 4434: needs = "storageBuffer16BitAccess"; return f.storage16;
  case 4448: case 4449: needs = "storageBuffer8BitAccess"; return f.storage8;
  case 5345: case 5346: needs = "vulkanMemoryModel"; return f.vulkanMemoryModel;
  case 6016: case 6017: case 6018: case 6019: needs = "shaderIntegerDotProduct"; return f.integerDot;
  case 6022: needs = "VK_KHR_cooperative_matrix"; return ctx.cooperativeMatrixEnabled();
  case 5116: case 5118: needs = "VK_KHR_shader_bfloat16 with cooperative matrices"; return ctx.info().bfloat16CoopMatEnabled;
  default: needs = "subgroup operations (Vulkan 1.1)"; return ctx.apiVersion() >= VK_API_VERSION_1_1;
  }
}

#if TESSERA_SPIRV_VALIDATOR
// The validator environment for a module of SPIR-V `version` on a device of Vulkan `api`.
spv_target_env targetEnv(uint32_t version, uint32_t api, std::string &error) {
  uint32_t minor = (version >> 8) & 0xff;
  uint32_t vkMinor = VK_API_VERSION_MINOR(api);
  uint32_t maxSpirv = vkMinor >= 3 ? 6 : vkMinor == 2 ? 5 : vkMinor == 1 ? 3 : 0;
  if ((version >> 16) != 1 || minor > maxSpirv) {
    error = "its SPIR-V version " + std::to_string(version >> 16) + "." + std::to_string(minor) +
            " is beyond what this device's Vulkan 1." + std::to_string(vkMinor) + " accepts (SPIR-V 1." +
            std::to_string(maxSpirv) + ")";
    return SPV_ENV_VULKAN_1_0;
  }
  if (vkMinor >= 3) return SPV_ENV_VULKAN_1_3;
  if (vkMinor == 2) return SPV_ENV_VULKAN_1_2;
  if (vkMinor == 1) return minor >= 4 ? SPV_ENV_VULKAN_1_1_SPIRV_1_4 : SPV_ENV_VULKAN_1_1;
  return SPV_ENV_VULKAN_1_0;
}
#endif

} // namespace

bool spirvValidatorLinked() { return TESSERA_SPIRV_VALIDATOR != 0; }

void checkKernelForDevice(const Context &ctx, const plan::Plan &plan, size_t k, const std::string &name) {
  const plan::Kernel &kernel = plan.kernels[k];
  const std::vector<uint8_t> &spv = plan.blobs[kernel.spirv_blob];
  plan::SpirvModule m = plan::inspectSpirv(spv.data(), spv.size()); // parsed by the plan reader already
  for (uint32_t c : m.capabilities) {
    std::string needs;
    if (!capabilityEnabled(ctx, c, needs))
      throw VulkanError(name + ": its SPIR-V needs " + plan::capabilityName(c) + " (" + needs + "), which " +
                        ctx.info().name + " does not support: compile the plan with a profile for this device");
  }
  const uint32_t shared = ctx.properties().limits.maxComputeSharedMemorySize;
  if (m.workgroup_bytes > shared)
    throw VulkanError(name + ": " + std::to_string(m.workgroup_bytes) + " bytes of workgroup memory, " +
                      ctx.info().name + " has " + std::to_string(shared) +
                      ": compile the plan with a profile for this device");
#if TESSERA_SPIRV_VALIDATOR
  // Debian 12's SPIRV-Tools predates cooperative matrices and bf16 (and no
  // release validates bf16 cooperative matrices yet): such modules are
  // checked by capability above and by the validator of the Debian 13 folder
  // in the tests (docs/kernel-checks.md), not here.
  for (uint32_t c : m.capabilities)
    if (c == 6022 || c == 5116 || c == 5118)
      return;
  std::string error;
  spv_target_env env = targetEnv(m.version, ctx.apiVersion(), error);
  if (!error.empty()) throw VulkanError(name + ": " + error);
  spv_context context = spvContextCreate(env);
  spv_validator_options options = spvValidatorOptionsCreate();
  std::vector<uint32_t> words(spv.size() / 4);
  std::memcpy(words.data(), spv.data(), spv.size());
  spv_const_binary_t binary{words.data(), words.size()};
  spv_diagnostic diagnostic = nullptr;
  spv_result_t result = spvValidateWithOptions(context, options, &binary, &diagnostic);
  std::string why = diagnostic && diagnostic->error ? diagnostic->error : "";
  spvDiagnosticDestroy(diagnostic);
  spvValidatorOptionsDestroy(options);
  spvContextDestroy(context);
  if (result != SPV_SUCCESS) {
    for (char &c : why)
      if (c == '\n' || c == '\r') c = ' ';
    if (why.size() > 300) why = why.substr(0, 300) + "...";
    throw VulkanError(name + ": its SPIR-V module is not valid (" + why + "): the plan is damaged or was not made by "
                      "tessera compile");
  }
#endif
}

} // namespace tessera::vk
