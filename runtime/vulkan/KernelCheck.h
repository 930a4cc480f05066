// KernelCheck.h - what the device decides about a plan's kernel before its
// pipeline is created (the plan reader has already checked each module
// against its interface, device-free): the capabilities it declares are
// enabled on this device, its workgroup memory fits, and - in builds with
// the SPIR-V validator linked in (TESSERA_SPIRV_VALIDATOR, the default where
// Debian's static libSPIRV-Tools.a is installed) - the module is valid SPIR-V
// for the device's Vulkan version. A driver is entitled to crash on an
// invalid module; a plan is code, so it is validated like code.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/vulkan/Context.h"

#include <string>

namespace tessera::vk {

// Throws VulkanError naming the kernel (`kernelName`, e.g. "kernel 'k' (kernels[3])").
void checkKernelForDevice(const Context &ctx, const plan::Plan &plan, size_t kernel, const std::string &kernelName);

// Whether this build validates SPIR-V (spirv-tools linked statically).
bool spirvValidatorLinked();

} // namespace tessera::vk
