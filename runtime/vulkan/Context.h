// Context.h - Vulkan instance, device selection and the compute queue.
//
// No layers are enabled unless TESSERA_VALIDATION=1 is set in the
// environment, which enables VK_LAYER_KHRONOS_validation when installed and
// prints its messages on stderr.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::vk {

struct VulkanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" etc.
const char *resultName(VkResult r);
// Throws VulkanError("<what> failed: <result>") unless r == VK_SUCCESS.
void check(VkResult r, const std::string &what);

// One matrix shape VK_KHR_cooperative_matrix offers (component types named
// "f16", "f32", "bf16", "s8", "s32", ...; scope "subgroup" etc.).
struct CooperativeMatrixShape {
  uint32_t m = 0, n = 0, k = 0;
  std::string a, b, c, result, scope;
};

struct DeviceInfo {
  uint32_t index = 0;
  std::string name;
  std::string type;   // "discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"
  std::string driver; // driver name and version
  std::string api;    // "1.3.230"
  uint32_t vendorID = 0, deviceID = 0, driverVersion = 0; // VkPhysicalDeviceProperties (profiles match on them)
  uint32_t maxWorkgroupInvocations = 0; // maxComputeWorkGroupInvocations
  uint32_t maxWorkgroupCount = 0;       // maxComputeWorkGroupCount[0]
  uint32_t subgroupSize = 0;
  uint32_t maxSharedMemory = 0;        // maxComputeSharedMemorySize, bytes
  uint64_t maxStorageBufferRange = 0;  // bytes
  uint64_t maxMemoryAllocationSize = 0; // bytes (Vulkan 1.1; 0: not reported)
  uint64_t deviceLocalHeap = 0;        // bytes of the largest device-local memory heap
  bool copyQueue = false;              // a transfer-only queue family (copy engines; profiles' device.copy_queue)
  bool timestamps = false;             // the chosen compute queue supports timestamps
  // Optional shader features (what a plan's `features` may ask for).
  bool float16 = false;   // shaderFloat16
  bool int16 = false;     // shaderInt16
  bool storage16 = false; // storageBuffer16BitAccess
  bool int8 = false;      // shaderInt8 + storageBuffer8BitAccess
  bool bfloat16 = false;  // VK_KHR_shader_bfloat16
  bool integerDot = false; // shaderIntegerDotProduct (Vulkan 1.3 or VK_KHR_shader_integer_dot_product)
  bool integerDot4x8Accelerated = false; // integerDotProduct4x8BitPackedSignedAccelerated (informational)
  std::vector<CooperativeMatrixShape> cooperativeMatrix; // VK_KHR_cooperative_matrix, when present
  bool bfloat16CoopMatEnabled = false; // a device opened with bf16 cooperative matrices (Context only)
  // VK_NV_cooperative_matrix2: a device opened with workgroup-scope matrices of
  // flexible dimensions (Context only), and the shapes it offers, e.g.
  // "workgroup 16x16x16 granularity bf16*bf16+f32 256 invocations".
  bool workgroupCoopMatEnabled = false;
  std::vector<std::string> workgroupMatrices;

  // Whether the device has plan feature `name` (plan::kFeature*).
  bool hasFeature(const std::string &name) const;
};

// What a run asks of the device beyond the defaults.
struct ContextOptions {
  // Enable robustBufferAccess (core) and, where the device has
  // VK_EXT_robustness2, robustBufferAccess2: accesses outside a bound
  // buffer's range are discarded (writes) or read zeros, whatever the kernel
  // computes. Defence in depth against a hostile plan (docs/plan-format.md);
  // an error on a device that has neither.
  bool robust_access = false;
};

class Context {
public:
  // Lists every Vulkan device. Throws VulkanError("no Vulkan device found: ...") when there is none.
  static std::vector<DeviceInfo> listDevices();

  // Opens device `index` (the order of listDevices / `tessera devices`).
  explicit Context(int index = 0, ContextOptions options = {});
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  const DeviceInfo &info() const { return info_; }
  const VkPhysicalDeviceProperties &properties() const { return props_; }
  const VkPhysicalDeviceMemoryProperties &memory() const { return memProps_; }
  VkDevice device() const { return device_; }
  VkQueue queue() const { return queue_; }
  uint32_t queueFamily() const { return queueFamily_; }
  // A queue of a transfer-only family (a discrete GPU's copy engines), when
  // the device has one and timeline semaphores to order it against the
  // compute queue; VK_NULL_HANDLE otherwise (lavapipe, phones, or
  // TESSERA_TRANSFER_QUEUE=off|compute). The streamed weights' copies run on it.
  VkQueue transferQueue() const { return transferQueue_; }
  uint32_t transferFamily() const { return transferFamily_; }
  bool timelineSemaphores() const { return timeline_; }
  uint64_t maxAllocationSize() const { return maxAllocationSize_; }
  uint64_t timestampMask() const { return timestampMask_; }
  // "robustBufferAccess2", "robustBufferAccess" or "" (not requested).
  const std::string &robustAccess() const { return robust_; }
  // Shader capabilities the device was created with (for checking kernels before pipeline creation).
  struct Features {
    bool int64 = false, int16 = false, int8 = false, float64 = false, float16 = false;
    bool storage16 = false, storage8 = false, vulkanMemoryModel = false;
    bool integerDot = false; // shaderIntegerDotProduct
  };
  const Features &features() const { return features_; }
  uint32_t apiVersion() const { return apiVersion_; } // min(instance, device)
  bool cooperativeMatrixEnabled() const { return coopMatEnabled_; }

private:
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queueFamily_ = 0;
  VkQueue transferQueue_ = VK_NULL_HANDLE;
  uint32_t transferFamily_ = 0;
  bool timeline_ = false;
  VkPhysicalDeviceProperties props_{};
  VkPhysicalDeviceMemoryProperties memProps_{};
  uint64_t maxAllocationSize_ = 0;
  uint64_t timestampMask_ = 0;
  bool coopMatEnabled_ = false;
  DeviceInfo info_;
  std::string robust_;
  Features features_;
  uint32_t apiVersion_ = VK_API_VERSION_1_0;
};

} // namespace tessera::vk
