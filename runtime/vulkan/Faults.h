// Faults.h - fault injection for tests: TESSERA_FAULT=<kind>:<n> makes the
// n-th call (1-based, counted per site over the process) fail the way a
// driver reports it, so that the handling of lost devices and exhausted
// memory can be tested on any machine:
//   device-lost:N  the fence wait of the N-th queue submission returns VK_ERROR_DEVICE_LOST
//   oom-submit:N   the N-th vkQueueSubmit returns VK_ERROR_OUT_OF_DEVICE_MEMORY
//   oom-alloc:N    the N-th vkAllocateMemory returns VK_ERROR_OUT_OF_DEVICE_MEMORY
//   small-heap:N   the device-local heap reports N bytes (the runtime's load-time limit check)
// and two mistakes in recording, the negative controls of the validation-layer
// test (test/e2e/test_validation.py: the layers must report them):
//   no-barriers       no memory barrier between dispatches (a hazard for synchronization validation)
//   short-descriptor  the first binding of each program's first dispatch is the plan's smallest buffer
//                     (what a plan redirecting a binding did; for GPU-assisted validation)
// Unset (the default), nothing is injected and the cost is one comparison.
#pragma once

#include <vulkan/vulkan.h>

namespace tessera::vk {

enum class FaultSite { Allocate, Submit, Wait };

// VK_SUCCESS, or the result to report instead of calling Vulkan at this call
// of `site`. Throws VulkanError when TESSERA_FAULT is malformed.
VkResult injectedFault(FaultSite site);

// >0: the size the device-local heap reports instead of its own (small-heap:N).
unsigned long long injectedHeapBytes();

enum class RecordingFault { NoBarriers, ShortDescriptor };
bool injectedFault(RecordingFault fault);

} // namespace tessera::vk
