#include "runtime/vulkan/Context.h"

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tessera::vk {

const char *resultName(VkResult r) {
  switch (r) {
#define CASE(x) case x: return #x;
    CASE(VK_SUCCESS) CASE(VK_NOT_READY) CASE(VK_TIMEOUT) CASE(VK_INCOMPLETE)
    CASE(VK_ERROR_OUT_OF_HOST_MEMORY) CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY) CASE(VK_ERROR_INITIALIZATION_FAILED)
    CASE(VK_ERROR_DEVICE_LOST) CASE(VK_ERROR_MEMORY_MAP_FAILED) CASE(VK_ERROR_LAYER_NOT_PRESENT)
    CASE(VK_ERROR_EXTENSION_NOT_PRESENT) CASE(VK_ERROR_FEATURE_NOT_PRESENT) CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    CASE(VK_ERROR_TOO_MANY_OBJECTS) CASE(VK_ERROR_FORMAT_NOT_SUPPORTED) CASE(VK_ERROR_FRAGMENTED_POOL)
    CASE(VK_ERROR_UNKNOWN) CASE(VK_ERROR_OUT_OF_POOL_MEMORY) CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    CASE(VK_ERROR_FRAGMENTATION) CASE(VK_ERROR_INVALID_SHADER_NV)
#undef CASE
  default: return "VK_ERROR (unknown code)";
  }
}

void check(VkResult r, const std::string &what) {
  if (r != VK_SUCCESS) throw VulkanError(what + " failed: " + resultName(r));
}

namespace {

const char *kNoDevice = "no Vulkan device found: install mesa-vulkan-drivers for a CPU fallback";
const char *kValidationLayer = "VK_LAYER_KHRONOS_validation";

bool validationRequested() {
  const char *v = std::getenv("TESSERA_VALIDATION");
  return v && std::strcmp(v, "0") != 0 && *v;
}

VKAPI_ATTR VkBool32 VKAPI_CALL debugCallback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                             VkDebugUtilsMessageTypeFlagsEXT,
                                             const VkDebugUtilsMessengerCallbackDataEXT *data, void *) {
  const char *level = severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning";
  std::fprintf(stderr, "vulkan %s: %s\n", level, data && data->pMessage ? data->pMessage : "");
  return VK_FALSE;
}

uint32_t instanceApiVersion() {
  auto enumerate = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
      vkGetInstanceProcAddr(VK_NULL_HANDLE, "vkEnumerateInstanceVersion"));
  uint32_t v = VK_API_VERSION_1_0;
  if (enumerate && enumerate(&v) != VK_SUCCESS) v = VK_API_VERSION_1_0;
  return v < VK_API_VERSION_1_3 ? v : VK_API_VERSION_1_3;
}

struct Instance {
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  uint32_t apiVersion = VK_API_VERSION_1_0;
};

Instance createInstance() {
  Instance out;
  out.apiVersion = instanceApiVersion();

  uint32_t extCount = 0;
  vkEnumerateInstanceExtensionProperties(nullptr, &extCount, nullptr);
  std::vector<VkExtensionProperties> exts(extCount);
  vkEnumerateInstanceExtensionProperties(nullptr, &extCount, exts.data());
  auto hasExt = [&](const char *name) {
    for (const auto &e : exts)
      if (std::strcmp(e.extensionName, name) == 0) return true;
    return false;
  };

  std::vector<const char *> layers, extensions;
  VkInstanceCreateFlags flags = 0;
  // MoltenVK and other portability drivers are only listed with this extension.
  if (hasExt(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }
  bool debugUtils = false;
  if (validationRequested()) {
    uint32_t layerCount = 0;
    vkEnumerateInstanceLayerProperties(&layerCount, nullptr);
    std::vector<VkLayerProperties> props(layerCount);
    vkEnumerateInstanceLayerProperties(&layerCount, props.data());
    bool found = false;
    for (const auto &l : props) found = found || std::strcmp(l.layerName, kValidationLayer) == 0;
    if (found) {
      layers.push_back(kValidationLayer);
      if (hasExt(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
        extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
        debugUtils = true;
      }
    } else {
      std::fprintf(stderr, "warning: TESSERA_VALIDATION is set but %s is not installed (vulkan-validationlayers)\n",
                   kValidationLayer);
    }
  }

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "tessera";
  app.pEngineName = "tessera";
  app.apiVersion = out.apiVersion;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.flags = flags;
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = uint32_t(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = uint32_t(extensions.size());
  ci.ppEnabledExtensionNames = extensions.data();
  VkResult r = vkCreateInstance(&ci, nullptr, &out.instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) throw VulkanError(kNoDevice);
  check(r, "vkCreateInstance");

  if (debugUtils) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(out.instance, "vkCreateDebugUtilsMessengerEXT"));
    if (create) {
      VkDebugUtilsMessengerCreateInfoEXT mi{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
      mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
      mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
      mi.pfnUserCallback = debugCallback;
      create(out.instance, &mi, nullptr, &out.messenger);
    }
  }
  return out;
}

void destroyInstance(Instance &i) {
  if (i.messenger) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(i.instance, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy) destroy(i.instance, i.messenger, nullptr);
  }
  if (i.instance) vkDestroyInstance(i.instance, nullptr);
  i = Instance{};
}

std::vector<VkPhysicalDevice> physicalDevices(VkInstance instance) {
  uint32_t n = 0;
  VkResult r = vkEnumeratePhysicalDevices(instance, &n, nullptr);
  if (r == VK_ERROR_INITIALIZATION_FAILED || n == 0) throw VulkanError(kNoDevice);
  check(r, "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devs(n);
  check(vkEnumeratePhysicalDevices(instance, &n, devs.data()), "vkEnumeratePhysicalDevices");
  devs.resize(n);
  if (devs.empty()) throw VulkanError(kNoDevice);
  return devs;
}

// The compute queue family: one with timestamps if any, else the first with compute.
int pickQueueFamily(VkPhysicalDevice pd, bool &timestamps, uint32_t &validBits) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> fams(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fams.data());
  int best = -1;
  for (uint32_t i = 0; i < n; ++i) {
    if (!(fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || fams[i].queueCount == 0) continue;
    if (best < 0 || (fams[best].timestampValidBits == 0 && fams[i].timestampValidBits > 0)) best = int(i);
  }
  timestamps = best >= 0 && fams[size_t(best)].timestampValidBits > 0;
  validBits = best >= 0 ? fams[size_t(best)].timestampValidBits : 0;
  return best;
}

// A family with transfers and neither compute nor graphics: the copy engines
// of a discrete GPU. -1 when there is none.
int pickTransferFamily(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> fams(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fams.data());
  for (uint32_t i = 0; i < n; ++i)
    if ((fams[i].queueFlags & VK_QUEUE_TRANSFER_BIT) && fams[i].queueCount > 0 &&
        !(fams[i].queueFlags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT)))
      return int(i);
  return -1;
}

std::string versionText(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

// VK_KHR_cooperative_matrix (Vulkan headers 1.3.255+); Debian 12's 1.3.239
// headers predate it, so the few definitions it needs are spelled out here.
#ifndef VK_KHR_cooperative_matrix
struct VkCooperativeMatrixPropertiesKHR {
  VkStructureType sType;
  void *pNext;
  uint32_t MSize, NSize, KSize;
  int32_t AType, BType, CType, ResultType; // VkComponentTypeKHR
  VkBool32 saturatingAccumulation;
  int32_t scope; // VkScopeKHR
};
constexpr VkStructureType kCooperativeMatrixPropertiesType = VkStructureType(1000506001);
struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
  VkStructureType sType;
  void *pNext;
  VkBool32 cooperativeMatrix;
  VkBool32 cooperativeMatrixRobustBufferAccess;
};
constexpr VkStructureType kCooperativeMatrixFeaturesType = VkStructureType(1000506000);
#else
constexpr VkStructureType kCooperativeMatrixFeaturesType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
constexpr VkStructureType kCooperativeMatrixPropertiesType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
#endif
// VK_KHR_shader_bfloat16 (headers 1.4.313+).
struct Bfloat16Features {
  VkStructureType sType;
  void *pNext;
  VkBool32 shaderBFloat16Type, shaderBFloat16DotProduct, shaderBFloat16CooperativeMatrix;
};
constexpr VkStructureType kBfloat16FeaturesType = VkStructureType(1000141000);

// VK_NV_cooperative_matrix2 (headers 1.3.300+): workgroup-scope matrices of
// flexible dimensions, the shapes of kernels/MatmulCoopMat.cpp's workgroup
// configs.
struct CooperativeMatrix2Features {
  VkStructureType sType;
  void *pNext;
  VkBool32 workgroupScope, flexibleDimensions, reductions, conversions, perElementOperations, tensorAddressing,
      blockLoads;
};
constexpr VkStructureType kCooperativeMatrix2FeaturesType = VkStructureType(1000593000);
struct CooperativeMatrixFlexibleDimensionsProperties {
  VkStructureType sType;
  void *pNext;
  uint32_t MGranularity, NGranularity, KGranularity;
  int32_t AType, BType, CType, ResultType; // VkComponentTypeKHR
  VkBool32 saturatingAccumulation;
  int32_t scope; // VkScopeKHR
  uint32_t workgroupInvocations;
};
constexpr VkStructureType kFlexibleDimensionsPropertiesType = VkStructureType(1000593001);
struct CooperativeMatrix2Properties {
  VkStructureType sType;
  void *pNext;
  uint32_t workgroupScopeMaxWorkgroupSize, flexibleDimensionsMaxDimension, workgroupScopeReservedSharedMemory;
};
constexpr VkStructureType kCooperativeMatrix2PropertiesType = VkStructureType(1000593002);
using GetFlexibleDimensionsProperties = VkResult(VKAPI_PTR *)(VkPhysicalDevice, uint32_t *,
                                                               CooperativeMatrixFlexibleDimensionsProperties *);

using GetCooperativeMatrixProperties = VkResult(VKAPI_PTR *)(VkPhysicalDevice, uint32_t *,
                                                              VkCooperativeMatrixPropertiesKHR *);

const char *componentName(int32_t t) {
  switch (t) {
  case 0: return "f16";
  case 1: return "f32";
  case 2: return "f64";
  case 3: return "s8";
  case 4: return "s16";
  case 5: return "s32";
  case 6: return "s64";
  case 7: return "u8";
  case 8: return "u16";
  case 9: return "u32";
  case 10: return "u64";
  case 1000141000: return "bf16";
  default: return "other";
  }
}

const char *scopeName(int32_t s) {
  switch (s) {
  case 1: return "device";
  case 2: return "workgroup";
  case 3: return "subgroup";
  case 5: return "queue family";
  default: return "other";
  }
}

bool hasExtension(VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  for (const auto &e : exts)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

// Optional features and cooperative-matrix shapes (Vulkan 1.2 feature structs).
void describeFeatures(VkInstance instance, VkPhysicalDevice pd, uint32_t api, DeviceInfo &info) {
  VkPhysicalDeviceFeatures core{};
  vkGetPhysicalDeviceFeatures(pd, &core);
  info.int16 = core.shaderInt16;
  if (api < VK_API_VERSION_1_2) return;
  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f11.pNext = &f12;
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &f11;
  vkGetPhysicalDeviceFeatures2(pd, &f2);
  info.storage16 = f11.storageBuffer16BitAccess;
  info.float16 = f12.shaderFloat16;
  info.int8 = f12.shaderInt8 && f12.storageBuffer8BitAccess;
  info.bfloat16 = hasExtension(pd, "VK_KHR_shader_bfloat16");
  // Integer dot products: core in Vulkan 1.3, an extension before.
  if (api >= VK_API_VERSION_1_3 || hasExtension(pd, "VK_KHR_shader_integer_dot_product")) {
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceFeatures2 g2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    g2.pNext = &dot;
    vkGetPhysicalDeviceFeatures2(pd, &g2);
    info.integerDot = dot.shaderIntegerDotProduct;
    VkPhysicalDeviceShaderIntegerDotProductProperties dp{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &dp;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    info.integerDot4x8Accelerated = info.integerDot && dp.integerDotProduct4x8BitPackedSignedAccelerated;
  }
  if (instance && hasExtension(pd, "VK_KHR_cooperative_matrix")) {
    auto get = reinterpret_cast<GetCooperativeMatrixProperties>(
        vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
    uint32_t n = 0;
    if (get && get(pd, &n, nullptr) == VK_SUCCESS && n) {
      std::vector<VkCooperativeMatrixPropertiesKHR> props(n);
      for (auto &p : props) {
        std::memset(&p, 0, sizeof(p));
        p.sType = kCooperativeMatrixPropertiesType;
      }
      if (get(pd, &n, props.data()) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; ++i) {
          const auto &p = props[i];
          info.cooperativeMatrix.push_back({p.MSize, p.NSize, p.KSize, componentName(p.AType), componentName(p.BType),
                                            componentName(p.CType), componentName(p.ResultType), scopeName(p.scope)});
        }
    }
  }
  if (instance && !info.cooperativeMatrix.empty() && hasExtension(pd, "VK_NV_cooperative_matrix2")) {
    CooperativeMatrix2Properties limits{kCooperativeMatrix2PropertiesType};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &limits;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    info.workgroupMatrices.push_back(
        "workgroup-scope matrices (VK_NV_cooperative_matrix2): at most " +
        std::to_string(limits.workgroupScopeMaxWorkgroupSize) + " invocations, dimensions up to " +
        std::to_string(limits.flexibleDimensionsMaxDimension) + ", " +
        std::to_string(limits.workgroupScopeReservedSharedMemory) + " bytes of shared memory reserved");
    auto get = reinterpret_cast<GetFlexibleDimensionsProperties>(
        vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV"));
    uint32_t n = 0;
    if (get && get(pd, &n, nullptr) == VK_SUCCESS && n) {
      std::vector<CooperativeMatrixFlexibleDimensionsProperties> props(n);
      for (auto &p : props) {
        std::memset(&p, 0, sizeof(p));
        p.sType = kFlexibleDimensionsPropertiesType;
      }
      if (get(pd, &n, props.data()) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; ++i) {
          const auto &p = props[i];
          info.workgroupMatrices.push_back(
              "  granularity " + std::to_string(p.MGranularity) + "x" + std::to_string(p.NGranularity) + "x" +
              std::to_string(p.KGranularity) + " " + componentName(p.AType) + "*" + componentName(p.BType) + "+" +
              componentName(p.CType) + "->" + componentName(p.ResultType) + ", " + scopeName(p.scope) + ", " +
              std::to_string(p.workgroupInvocations) + " invocations");
        }
    }
  }
}

DeviceInfo describe(VkPhysicalDevice pd, uint32_t index, uint32_t instanceApi, uint64_t *maxAlloc = nullptr,
                    VkInstance instance = VK_NULL_HANDLE) {
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(pd, &props);
  DeviceInfo info;
  info.index = index;
  info.name = props.deviceName;
  switch (props.deviceType) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info.type = "discrete GPU"; break;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info.type = "integrated GPU"; break;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info.type = "virtual GPU"; break;
  case VK_PHYSICAL_DEVICE_TYPE_CPU: info.type = "CPU"; break;
  default: info.type = "other"; break;
  }
  info.api = versionText(props.apiVersion);
  info.vendorID = props.vendorID;
  info.deviceID = props.deviceID;
  info.driverVersion = props.driverVersion;
  info.maxWorkgroupInvocations = props.limits.maxComputeWorkGroupInvocations;
  info.maxWorkgroupCount = props.limits.maxComputeWorkGroupCount[0];
  info.maxSharedMemory = props.limits.maxComputeSharedMemorySize;
  info.maxStorageBufferRange = props.limits.maxStorageBufferRange;
  info.driver = "driver version " + std::to_string(props.driverVersion);
  if (maxAlloc) *maxAlloc = uint64_t(1) << 30;
  uint32_t api = props.apiVersion < instanceApi ? props.apiVersion : instanceApi;
  if (api >= VK_API_VERSION_1_1) {
    VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    subgroup.pNext = &m3;
    if (api >= VK_API_VERSION_1_2) m3.pNext = &driver;
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &subgroup;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    info.subgroupSize = subgroup.subgroupSize;
    if (maxAlloc && m3.maxMemoryAllocationSize) *maxAlloc = m3.maxMemoryAllocationSize;
    info.maxMemoryAllocationSize = m3.maxMemoryAllocationSize;
    if (api >= VK_API_VERSION_1_2 && driver.driverName[0])
      info.driver = std::string(driver.driverName) + (driver.driverInfo[0] ? std::string(" ") + driver.driverInfo : "");
  }
  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t h = 0; h < mem.memoryHeapCount; ++h)
    if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      info.deviceLocalHeap = std::max<uint64_t>(info.deviceLocalHeap, mem.memoryHeaps[h].size);
  bool ts = false;
  uint32_t bits = 0;
  pickQueueFamily(pd, ts, bits);
  info.timestamps = ts && props.limits.timestampPeriod > 0;
  info.copyQueue = pickTransferFamily(pd) >= 0;
  describeFeatures(instance, pd, api, info);
  // Testing switch: TESSERA_HIDE_FEATURES=float16,int16,... makes the device
  // look as if it lacked them (the refusal of a plan that needs them is
  // tested on lavapipe, which has them all).
  if (const char *hide = std::getenv("TESSERA_HIDE_FEATURES")) {
    std::string list = std::string(",") + hide + ",";
    auto hidden = [&](const char *f) { return list.find(std::string(",") + f + ",") != std::string::npos; };
    if (hidden("float16")) info.float16 = false;
    if (hidden("int16")) info.int16 = false;
    if (hidden("storage16")) info.storage16 = false;
    if (hidden("int8")) info.int8 = false;
    if (hidden("integer_dot_product")) info.integerDot = info.integerDot4x8Accelerated = false;
    if (hidden("cooperative_matrix")) info.cooperativeMatrix.clear();
  }
  return info;
}

} // namespace

bool DeviceInfo::hasFeature(const std::string &name) const {
  if (name == "cooperative_matrix") return !cooperativeMatrix.empty();
  if (name == "bfloat16_cooperative_matrix") return bfloat16CoopMatEnabled;
  if (name == "workgroup_cooperative_matrix") return workgroupCoopMatEnabled;
  if (name == "float16") return float16;
  if (name == "int16") return int16;
  if (name == "storage16") return storage16;
  if (name == "int8") return int8;
  if (name == "integer_dot_product") return integerDot;
  return false;
}

std::vector<DeviceInfo> Context::listDevices() {
  Instance inst = createInstance();
  std::vector<DeviceInfo> out;
  try {
    std::vector<VkPhysicalDevice> devs = physicalDevices(inst.instance);
    for (uint32_t i = 0; i < devs.size(); ++i)
      out.push_back(describe(devs[i], i, inst.apiVersion, nullptr, inst.instance));
  } catch (...) {
    destroyInstance(inst);
    throw;
  }
  destroyInstance(inst);
  return out;
}

Context::Context(int index, ContextOptions options) {
  Instance inst = createInstance();
  instance_ = inst.instance;
  messenger_ = inst.messenger;
  try {
    std::vector<VkPhysicalDevice> devs = physicalDevices(instance_);
    if (index < 0 || size_t(index) >= devs.size())
      throw VulkanError("device " + std::to_string(index) + " does not exist (" + std::to_string(devs.size()) +
                        " Vulkan device" + (devs.size() == 1 ? "" : "s") + ", see `tessera devices`)");
    physical_ = devs[size_t(index)];
    info_ = describe(physical_, uint32_t(index), inst.apiVersion, &maxAllocationSize_, instance_);
    vkGetPhysicalDeviceProperties(physical_, &props_);
    vkGetPhysicalDeviceMemoryProperties(physical_, &memProps_);
    bool ts = false;
    uint32_t validBits = 0;
    int family = pickQueueFamily(physical_, ts, validBits);
    if (family < 0) throw VulkanError("device " + std::to_string(index) + " (" + info_.name + ") has no compute queue");
    queueFamily_ = uint32_t(family);
    timestampMask_ = !info_.timestamps ? 0 : validBits >= 64 ? ~uint64_t(0) : (uint64_t(1) << validBits) - 1;

    uint32_t extCount = 0;
    vkEnumerateDeviceExtensionProperties(physical_, nullptr, &extCount, nullptr);
    std::vector<VkExtensionProperties> exts(extCount);
    vkEnumerateDeviceExtensionProperties(physical_, nullptr, &extCount, exts.data());
    std::vector<const char *> enabled;
    bool coopMat = false, bf16 = false, coopMat2 = false, hasRobustness2 = false;
    for (const auto &e : exts) {
      if (std::strcmp(e.extensionName, "VK_KHR_portability_subset") == 0) enabled.push_back("VK_KHR_portability_subset");
      if (std::strcmp(e.extensionName, "VK_KHR_cooperative_matrix") == 0) coopMat = true;
      if (std::strcmp(e.extensionName, "VK_KHR_shader_bfloat16") == 0) bf16 = true;
      if (std::strcmp(e.extensionName, "VK_NV_cooperative_matrix2") == 0) coopMat2 = true;
      hasRobustness2 = hasRobustness2 || std::strcmp(e.extensionName, VK_EXT_ROBUSTNESS_2_EXTENSION_NAME) == 0;
    }

    // Enable the optional shader features kernels may use, where supported.
    uint32_t api = props_.apiVersion < inst.apiVersion ? props_.apiVersion : inst.apiVersion;
    VkPhysicalDeviceFeatures have{};
    vkGetPhysicalDeviceFeatures(physical_, &have);
    VkPhysicalDeviceFeatures want{};
    want.shaderInt64 = have.shaderInt64;
    want.shaderInt16 = have.shaderInt16;
    want.shaderFloat64 = have.shaderFloat64;
    VkPhysicalDeviceRobustness2FeaturesEXT haveRobust2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT};
    VkPhysicalDeviceRobustness2FeaturesEXT wantRobust2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT};
    if (options.robust_access) {
      if (!have.robustBufferAccess)
        throw VulkanError("--robust-access: device " + std::to_string(index) + " (" + info_.name +
                          ") supports neither robustBufferAccess nor robustBufferAccess2");
      want.robustBufferAccess = VK_TRUE;
      robust_ = "robustBufferAccess";
    }
    VkPhysicalDeviceVulkan11Features have11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features have12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features want11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features want12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    const void *featureChain = nullptr;
    if (api >= VK_API_VERSION_1_2) {
      have11.pNext = &have12;
      VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
      f2.pNext = &have11;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      want11.storageBuffer16BitAccess = have11.storageBuffer16BitAccess;
      want12.storageBuffer8BitAccess = have12.storageBuffer8BitAccess;
      want12.shaderFloat16 = have12.shaderFloat16;
      want12.shaderInt8 = have12.shaderInt8;
      want12.vulkanMemoryModel = have12.vulkanMemoryModel;
      want12.timelineSemaphore = have12.timelineSemaphore; // orders the transfer queue against the compute queue
      want11.pNext = &want12;
      featureChain = &want11;
      if (options.robust_access && hasRobustness2) {
        VkPhysicalDeviceFeatures2 r2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        r2.pNext = &haveRobust2;
        vkGetPhysicalDeviceFeatures2(physical_, &r2);
        if (haveRobust2.robustBufferAccess2) {
          wantRobust2.robustBufferAccess2 = VK_TRUE;
          want12.pNext = &wantRobust2;
          enabled.push_back(VK_EXT_ROBUSTNESS_2_EXTENSION_NAME);
          robust_ = "robustBufferAccess2";
        }
      }
    }
    // Packed int8 dot products (BitNet's integer products), core in 1.3.
    bool dotExt = false;
    for (const auto &e : exts)
      dotExt = dotExt || std::strcmp(e.extensionName, "VK_KHR_shader_integer_dot_product") == 0;
    VkPhysicalDeviceShaderIntegerDotProductFeatures haveDot{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceShaderIntegerDotProductFeatures wantDot{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    if (featureChain && (api >= VK_API_VERSION_1_3 || dotExt)) {
      VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
      f2.pNext = &haveDot;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      if (haveDot.shaderIntegerDotProduct) {
        wantDot.shaderIntegerDotProduct = VK_TRUE;
        wantDot.pNext = want12.pNext; // after robustness2, if enabled
        want12.pNext = &wantDot;
        if (api < VK_API_VERSION_1_3)
          enabled.push_back("VK_KHR_shader_integer_dot_product");
      }
    }
    // Tensor-core kernels (kind = coopmat) need VK_KHR_cooperative_matrix.
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR haveCm{}, wantCm{};
    haveCm.sType = wantCm.sType = kCooperativeMatrixFeaturesType;
    if (coopMat && api >= VK_API_VERSION_1_2) {
      VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
      f2.pNext = &haveCm;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      if (haveCm.cooperativeMatrix) {
        wantCm.cooperativeMatrix = VK_TRUE;
        wantCm.pNext = want12.pNext; // after robustness2, if enabled
        want12.pNext = &wantCm;
        enabled.push_back("VK_KHR_cooperative_matrix");
        coopMatEnabled_ = true;
      }
    }
    // bf16 fragments (kernels retyped by compiler/lowering/SpirvBf16.cpp).
    Bfloat16Features haveBf{}, wantBf{};
    haveBf.sType = wantBf.sType = kBfloat16FeaturesType;
    if (bf16 && coopMatEnabled_) {
      VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
      f2.pNext = &haveBf;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      if (haveBf.shaderBFloat16Type && haveBf.shaderBFloat16CooperativeMatrix) {
        wantBf.shaderBFloat16Type = wantBf.shaderBFloat16CooperativeMatrix = VK_TRUE;
        wantBf.pNext = wantCm.pNext;
        wantCm.pNext = &wantBf;
        enabled.push_back("VK_KHR_shader_bfloat16");
        info_.bfloat16CoopMatEnabled = true;
      }
    }
    // Workgroup-scope matrices of flexible dimensions (VK_NV_cooperative_matrix2).
    CooperativeMatrix2Features haveCm2{}, wantCm2{};
    haveCm2.sType = wantCm2.sType = kCooperativeMatrix2FeaturesType;
    if (coopMat2 && coopMatEnabled_) {
      VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
      f2.pNext = &haveCm2;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      if (haveCm2.workgroupScope && haveCm2.flexibleDimensions) {
        wantCm2.workgroupScope = wantCm2.flexibleDimensions = VK_TRUE;
        wantCm2.pNext = wantCm.pNext;
        wantCm.pNext = &wantCm2;
        enabled.push_back("VK_NV_cooperative_matrix2");
        info_.workgroupCoopMatEnabled = true;
      }
    }

    // The streamed weights' copies get a queue of the copy engines where the
    // device has one (TESSERA_TRANSFER_QUEUE=off or =compute: not used).
    timeline_ = featureChain && want12.timelineSemaphore;
    const char *tq = std::getenv("TESSERA_TRANSFER_QUEUE");
    const bool transferWanted = !tq || (std::string(tq) != "off" && std::string(tq) != "compute");
    const int transferFamily = timeline_ && transferWanted ? pickTransferFamily(physical_) : -1;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci[2] = {{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO}, {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO}};
    qci[0].queueFamilyIndex = queueFamily_;
    qci[0].queueCount = 1;
    qci[0].pQueuePriorities = &priority;
    qci[1] = qci[0];
    qci[1].queueFamilyIndex = uint32_t(transferFamily);
    VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.pNext = featureChain;
    dci.queueCreateInfoCount = transferFamily >= 0 ? 2 : 1;
    dci.pQueueCreateInfos = qci;
    dci.enabledExtensionCount = uint32_t(enabled.size());
    dci.ppEnabledExtensionNames = enabled.data();
    dci.pEnabledFeatures = &want;
    check(vkCreateDevice(physical_, &dci, nullptr, &device_), "vkCreateDevice (" + info_.name + ")");
    apiVersion_ = api;
    features_.int64 = want.shaderInt64;
    features_.int16 = want.shaderInt16;
    features_.float64 = want.shaderFloat64;
    features_.float16 = featureChain && want12.shaderFloat16;
    features_.int8 = featureChain && want12.shaderInt8;
    features_.storage16 = featureChain && want11.storageBuffer16BitAccess;
    features_.storage8 = featureChain && want12.storageBuffer8BitAccess;
    features_.vulkanMemoryModel = featureChain && want12.vulkanMemoryModel;
    features_.integerDot = wantDot.shaderIntegerDotProduct;
    vkGetDeviceQueue(device_, queueFamily_, 0, &queue_);
    if (transferFamily >= 0) {
      transferFamily_ = uint32_t(transferFamily);
      vkGetDeviceQueue(device_, transferFamily_, 0, &transferQueue_);
    }
  } catch (...) {
    if (device_) vkDestroyDevice(device_, nullptr);
    destroyInstance(inst);
    throw;
  }
}

Context::~Context() {
  if (device_) {
    vkDeviceWaitIdle(device_);
    vkDestroyDevice(device_, nullptr);
  }
  Instance inst;
  inst.instance = instance_;
  inst.messenger = messenger_;
  destroyInstance(inst);
}

} // namespace tessera::vk
