#include "runtime/vulkan/Faults.h"

#include "runtime/vulkan/Context.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace tessera::vk {

namespace {

struct Fault {
  bool parsed = false, active = false;
  bool noBarriers = false, shortDescriptor = false;
  FaultSite site = FaultSite::Submit;
  VkResult result = VK_SUCCESS;
  unsigned long long at = 0, heapBytes = 0;
  unsigned long long calls[3] = {0, 0, 0};
};

Fault &fault() {
  static Fault f;
  if (f.parsed) return f;
  f.parsed = true;
  const char *env = std::getenv("TESSERA_FAULT");
  if (!env || !*env) return f;
  std::string spec(env);
  if (spec == "no-barriers" || spec == "short-descriptor") {
    (spec == "no-barriers" ? f.noBarriers : f.shortDescriptor) = true;
    return f;
  }
  size_t colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  char *end = nullptr;
  unsigned long long n = colon == std::string::npos ? 0 : std::strtoull(spec.c_str() + colon + 1, &end, 10);
  bool known = true;
  if (kind == "small-heap" && n > 0 && end && !*end) {
    f.heapBytes = n;
    return f;
  }
  if (kind == "device-lost") f.site = FaultSite::Wait, f.result = VK_ERROR_DEVICE_LOST;
  else if (kind == "oom-submit") f.site = FaultSite::Submit, f.result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  else if (kind == "oom-alloc") f.site = FaultSite::Allocate, f.result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  else known = false;
  if (!known || n == 0 || !end || *end)
    throw VulkanError("TESSERA_FAULT=" + spec +
                      ": expected device-lost:N, oom-submit:N, oom-alloc:N, small-heap:N (N >= 1), no-barriers or short-descriptor");
  f.at = n;
  f.active = true;
  return f;
}

} // namespace

VkResult injectedFault(FaultSite site) {
  Fault &f = fault();
  if (!f.active || site != f.site) return VK_SUCCESS;
  return ++f.calls[int(site)] == f.at ? f.result : VK_SUCCESS;
}

unsigned long long injectedHeapBytes() { return fault().heapBytes; }

bool injectedFault(RecordingFault which) {
  Fault &f = fault();
  return which == RecordingFault::NoBarriers ? f.noBarriers : f.shortDescriptor;
}

} // namespace tessera::vk
