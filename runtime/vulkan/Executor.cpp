#include "runtime/vulkan/Executor.h"

#include "runtime/vulkan/Faults.h"
#include "runtime/vulkan/KernelCheck.h"
#include "runtime/vulkan/PipelineCache.h"
#include "runtime/util/File.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>
#include <unordered_map>

namespace tessera::vk {

namespace {

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

uint64_t storageBytes(uint64_t bytes) { return bytes < 4 ? 4 : (bytes + 3) / 4 * 4; }

std::string bufferName(const plan::Plan &p, size_t i) {
  return "buffer '" + p.buffers[i].name + "' (buffers[" + std::to_string(i) + "])";
}

std::string kernelName(const plan::Plan &p, size_t i) {
  return "kernel '" + p.kernels[i].name + "' (kernels[" + std::to_string(i) + "])";
}

// Names of the GLCompute entry points of a SPIR-V module (OpEntryPoint, opcode 15).
std::vector<std::string> computeEntryPoints(const std::vector<uint8_t> &spv) {
  std::vector<std::string> names;
  size_t words = spv.size() / 4;
  auto word = [&](size_t i) {
    uint32_t w;
    std::memcpy(&w, spv.data() + 4 * i, 4);
    return w;
  };
  for (size_t i = 5; i < words;) {
    uint32_t w = word(i);
    uint32_t count = w >> 16, opcode = w & 0xffff;
    if (count == 0 || i + count > words) break;
    if (opcode == 15 && count >= 4 && word(i + 1) == 5 /* GLCompute */) {
      std::string name;
      for (size_t k = i + 3; k < i + count; ++k) {
        uint32_t lit = word(k);
        bool end = false;
        for (int b = 0; b < 4; ++b) {
          char ch = char((lit >> (8 * b)) & 0xff);
          if (!ch) { end = true; break; }
          name.push_back(ch);
        }
        if (end) break;
      }
      names.push_back(name);
    }
    i += count;
  }
  return names;
}

using Clock = std::chrono::steady_clock;
const Clock::time_point gProcessStart = Clock::now();

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A kernel's SPIR-V as far as the pipeline is concerned: its entry point's
// name blanked and the debug names (OpName, OpMemberName) dropped, so that
// kernels the compiler emitted twice under two names (a plan's kernel names
// are unique) compare equal. The plan format has no specialisation
// constants: a kernel's configuration is in its SPIR-V.
std::vector<uint32_t> pipelineWords(const std::vector<uint8_t> &spv, const std::string &entry) {
  std::vector<uint32_t> in(spv.size() / 4), out;
  std::memcpy(in.data(), spv.data(), in.size() * 4);
  out.reserve(in.size());
  size_t i = std::min<size_t>(5, in.size());
  out.assign(in.begin(), in.begin() + i);
  while (i < in.size()) {
    uint32_t count = in[i] >> 16, opcode = in[i] & 0xffff;
    if (count == 0 || i + count > in.size()) { // malformed: compared as it is (createPipeline reports it)
      out.insert(out.end(), in.begin() + i, in.end());
      break;
    }
    if (opcode == 5 || opcode == 6) { // OpName, OpMemberName
      i += count;
      continue;
    }
    if (opcode == 15 && count >= 4) { // OpEntryPoint model id "name" interface...
      size_t words = entry.size() / 4 + 1;
      if (3 + words <= count && std::memcmp(&in[i + 3], entry.c_str(), entry.size() + 1) == 0) {
        out.push_back(((count - uint32_t(words) + 1) << 16) | 15);
        out.insert(out.end(), in.begin() + i + 1, in.begin() + i + 3);
        out.push_back(0); // ""
        out.insert(out.end(), in.begin() + i + 3 + words, in.begin() + i + count);
        i += count;
        continue;
      }
    }
    out.insert(out.end(), in.begin() + i, in.begin() + i + count);
    i += count;
  }
  return out;
}

// The pipeline's key in the cache file: FNV-1a 64 of what the driver is given
// (the SPIR-V, the entry point, the layout).
uint64_t pipelineKey(const plan::Plan &p, const plan::Kernel &k) {
  util::Fnv1a64 f;
  const std::vector<uint8_t> &spv = p.blobs[k.spirv_blob];
  f.update(spv.data(), spv.size());
  f.update(k.name.c_str(), k.name.size() + 1);
  uint32_t layout[2] = {k.num_bindings, k.push_constant_bytes};
  f.update(layout, sizeof(layout));
  return f.h;
}

} // namespace

std::chrono::steady_clock::time_point processStart() { return gProcessStart; }

std::string describePipelines(const StartupStats &s) {
  std::string out = std::to_string(s.pipelines) + " pipelines";
  if (s.pipelines != s.kernels) out += " for " + std::to_string(s.kernels) + " kernels";
  if (s.cache.empty()) {
    out += " (no pipeline cache)";
  } else {
    out += " (" + std::to_string(s.cached) + " from cache";
    // A driver that keeps nothing in its caches (Mesa 22.3's lavapipe) says so through the feedback.
    if (s.driver_cached >= 0 && size_t(s.driver_cached) != s.cached)
      out += ", the driver reused " + std::to_string(s.driver_cached);
    out += ")";
  }
  char t[32];
  std::snprintf(t, sizeof(t), " in %.1f s", s.pipeline_s);
  return out + t;
}

std::string describeBytes(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1000000000ull) std::snprintf(buf, sizeof(buf), "%.1f GB", double(bytes) / 1e9);
  else if (bytes >= 1000000ull) std::snprintf(buf, sizeof(buf), "%.1f MB", double(bytes) / 1e6);
  else std::snprintf(buf, sizeof(buf), "%.0f kB", double(bytes) / 1e3);
  return buf;
}

Executor::Executor(Context &ctx, const plan::Plan &plan, const ExecutorOptions &options) : ctx_(ctx), plan_(plan) {
  const auto start = Clock::now();
  // The optional shader features the plan's kernels were compiled to use.
  static const std::pair<const char *, const char *> kVulkanNames[] = {
      {plan::kFeatureFloat16, "shaderFloat16"},
      {plan::kFeatureInt16, "shaderInt16"},
      {plan::kFeatureStorage16, "storageBuffer16BitAccess"},
      {plan::kFeatureInt8, "shaderInt8 + storageBuffer8BitAccess"},
      {plan::kFeatureIntegerDot, "shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product)"},
      {plan::kFeatureCoopMat, "VK_KHR_cooperative_matrix"},
      {plan::kFeatureBf16CoopMat, "VK_KHR_shader_bfloat16 cooperative matrices"},
      {plan::kFeatureWorkgroupCoopMat, "VK_NV_cooperative_matrix2 workgroup-scope matrices of flexible dimensions"}};
  for (const std::string &f : plan_.features)
    if (!ctx_.info().hasFeature(f)) {
      std::string vkName = f;
      for (auto [name, vk] : kVulkanNames)
        if (f == name) vkName = vk;
      // Integer dot products come from the profile alone, not from the precision.
      std::string hint = f == plan::kFeatureIntegerDot
                             ? "compile it with this device's profile (or one without integer_dot_product)"
                             : "compile it with --precision fp32 or with this device's profile";
      throw VulkanError("the plan (precision " + plan_.precision + ") needs " + vkName + ", which device " +
                        std::to_string(ctx_.info().index) + " (" + ctx_.info().name + ") does not support: " + hint);
    }
  // Streamed weights' copies as transfers, and where they run.
  static const bool copyKernels = [] {
    const char *e = std::getenv("TESSERA_STREAM_COPIES");
    return e && std::string(e) == "dispatch";
  }();
  transferCopies_ = options.transfer_copies && !copyKernels && !options.cold_cache_bytes;
  bool copies = false;
  for (const plan::Program &p : plan_.programs)
    for (const plan::Dispatch &d : p.dispatches) copies = copies || d.copy;
  if (transferCopies_ && copies && ctx_.timelineSemaphores()) {
    const char *tq = std::getenv("TESSERA_TRANSFER_QUEUE");
    if (ctx_.transferQueue()) copyQueue_ = ctx_.transferQueue();
    else if (tq && std::string(tq) == "compute") copyQueue_ = ctx_.queue();
  }
  try {
    allocateBuffers();
    createPipelines(options);
    if (options.cold_cache_bytes) allocateScrub(options.cold_cache_bytes);
    recordPrograms(options);
    if (const char *schedule = std::getenv("TESSERA_SCHEDULE")) writeSchedules(schedule);
  } catch (...) {
    release();
    throw;
  }
  startup_.total_s = secondsSince(start);
}

Executor::~Executor() { release(); }

void Executor::release() {
  VkDevice dev = ctx_.device();
  if (!dev) return;
  vkDeviceWaitIdle(dev);
  if (fence_) vkDestroyFence(dev, fence_, nullptr);
  if (computeTimeline_) vkDestroySemaphore(dev, computeTimeline_, nullptr);
  if (transferTimeline_) vkDestroySemaphore(dev, transferTimeline_, nullptr);
  if (transferPool_) vkDestroyCommandPool(dev, transferPool_, nullptr);
  computeTimeline_ = transferTimeline_ = VK_NULL_HANDLE;
  transferPool_ = VK_NULL_HANDLE;
  if (queryPool_) vkDestroyQueryPool(dev, queryPool_, nullptr);
  if (scrub_) vkDestroyBuffer(dev, scrub_, nullptr);
  if (scrubMemory_) vkFreeMemory(dev, scrubMemory_, nullptr);
  scrub_ = VK_NULL_HANDLE;
  scrubMemory_ = VK_NULL_HANDLE;
  if (commandPool_) vkDestroyCommandPool(dev, commandPool_, nullptr);
  if (descriptorPool_) vkDestroyDescriptorPool(dev, descriptorPool_, nullptr);
  for (Pipeline &p : pipelines_) {
    if (p.pipeline) vkDestroyPipeline(dev, p.pipeline, nullptr);
    if (p.layout) vkDestroyPipelineLayout(dev, p.layout, nullptr);
    if (p.setLayout) vkDestroyDescriptorSetLayout(dev, p.setLayout, nullptr);
    if (p.module) vkDestroyShaderModule(dev, p.module, nullptr);
  }
  for (VkBuffer b : buffers_)
    if (b) vkDestroyBuffer(dev, b, nullptr);
  for (Block &b : blocks_) {
    if (b.mapped) vkUnmapMemory(dev, b.memory);
    if (b.memory) vkFreeMemory(dev, b.memory, nullptr);
  }
  fence_ = VK_NULL_HANDLE;
  queryPool_ = VK_NULL_HANDLE;
  commandPool_ = VK_NULL_HANDLE;
  descriptorPool_ = VK_NULL_HANDLE;
  pipelines_.clear();
  pipelineOf_.clear();
  firstKernel_.clear();
  pipelineKey_.clear();
  buffers_.clear();
  blocks_.clear();
}

void *Executor::data(size_t buffer) const {
  if (buffer >= hostPtr_.size()) throw VulkanError("buffer index " + std::to_string(buffer) + " out of range");
  return hostPtr_[buffer];
}

// The plan against the device, before anything is allocated: every bound
// buffer within maxStorageBufferRange, every buffer within
// maxMemoryAllocationSize, all of them within the largest device-local heap.
// Each refusal names the limit, the device's value and the plan's.
void Executor::checkDeviceLimits() const {
  const size_t n = plan_.buffers.size();
  const std::string device = ctx_.info().name;
  // What a plan made for a larger device needs: its own limits, when it records them.
  auto recompile = [&](const char *limit, uint64_t value) {
    std::string planned = plan_.target.max_buffer_bytes
                              ? "the plan was compiled for buffers up to " + mib(plan_.target.max_buffer_bytes) +
                                    " (its profile's device.max_buffer_bytes); "
                              : "";
    return planned + "compile it for this device: tessera compile --profile with device.max_buffer_bytes <= " +
           std::to_string(value) + " (" + limit + "), e.g. the profile `tessera-rt devices` names for it";
  };
  const uint64_t range = ctx_.properties().limits.maxStorageBufferRange;
  std::vector<bool> bound(n, false);
  for (const plan::Program &p : plan_.programs)
    for (const plan::Dispatch &d : p.dispatches)
      for (uint32_t b : d.bindings) bound[b] = true;
  for (size_t i = 0; i < n; ++i)
    if (bound[i] && plan_.buffers[i].bytes > range) {
      // Only activations shrink with the batch; LoRA state with the rank; weights are split by the compiler.
      plan::BufferKind kind = plan_.buffers[root_[i]].kind;
      std::string hint = kind == plan::BufferKind::Weight ? recompile("maxStorageBufferRange", range)
                         : kind == plan::BufferKind::Lora || kind == plan::BufferKind::OptimizerState ||
                                 kind == plan::BufferKind::Gradient
                             ? "compile the plan with a smaller --lora-rank, or " + recompile("maxStorageBufferRange", range)
                             : "compile the plan with a smaller --batch, --seq or --loss-chunk-tokens, or " +
                                   recompile("maxStorageBufferRange", range);
      throw VulkanError(bufferName(plan_, i) + " is " + mib(plan_.buffers[i].bytes) +
                        ", more than this device's maxStorageBufferRange (" + mib(range) + ", " + device + "): " + hint);
    }
  const uint64_t allocation = ctx_.maxAllocationSize();
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (root_[i] != i) continue;
    uint64_t bytes = storageBytes(plan_.buffers[i].bytes);
    if (!plan_.buffers[i].host) total += bytes; // streamed weights live in system memory
    if (allocation && bytes > allocation)
      throw VulkanError(bufferName(plan_, i) + " is " + mib(bytes) + ", more than this device's maxMemoryAllocationSize (" +
                        mib(allocation) + ", " + device + "): " + recompile("maxMemoryAllocationSize", allocation));
  }
  // The largest device-local heap (a heap of host memory on CPUs and shared-memory GPUs).
  const VkPhysicalDeviceMemoryProperties &mp = ctx_.memory();
  uint64_t heap = 0;
  for (uint32_t h = 0; h < mp.memoryHeapCount; ++h)
    if (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) heap = std::max<uint64_t>(heap, mp.memoryHeaps[h].size);
  if (unsigned long long injected = injectedHeapBytes()) heap = injected;
  if (heap && total > heap)
    throw VulkanError("the plan needs " + mib(total) + " of device memory, more than this device's device-local heap (" +
                      mib(heap) + ", " + device + ")" +
                      (plan_.target.memory_budget ? "; it was compiled for a memory budget of " + mib(plan_.target.memory_budget)
                                                  : std::string()) +
                      ": compile it with --memory-budget " + std::to_string(heap / 1048576 * 9 / 10) +
                      "MiB (or less), a smaller --batch or --seq");
}

void Executor::allocateBuffers() {
  VkDevice dev = ctx_.device();
  const size_t n = plan_.buffers.size();
  root_.resize(n);
  buffers_.assign(n, VK_NULL_HANDLE);
  hostPtr_.assign(n, nullptr);
  blockOf_.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    size_t r = i;
    while (plan_.buffers[r].alias_of >= 0) r = size_t(plan_.buffers[r].alias_of); // acyclic: Plan validated it
    root_[i] = r;
  }

  checkDeviceLimits();

  const VkMemoryPropertyFlags preferred =
      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const VkMemoryPropertyFlags fallback = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const VkPhysicalDeviceMemoryProperties &mp = ctx_.memory();
  auto findType = [&](uint32_t bits, VkMemoryPropertyFlags flags) -> int {
    for (uint32_t t = 0; t < mp.memoryTypeCount; ++t)
      if ((bits & (1u << t)) && (mp.memoryTypes[t].propertyFlags & flags) == flags) return int(t);
    return -1;
  };
  // Host-resident (streamed) weights: host-visible memory of a heap that is
  // not device-local (system memory on a discrete GPU); on a device whose
  // memory is all one heap (CPUs, phones) that is the ordinary memory.
  auto findHostType = [&](uint32_t bits) -> int {
    for (uint32_t t = 0; t < mp.memoryTypeCount; ++t)
      if ((bits & (1u << t)) && (mp.memoryTypes[t].propertyFlags & fallback) == fallback &&
          !(mp.memoryHeaps[mp.memoryTypes[t].heapIndex].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT))
        return int(t);
    return findType(bits, fallback);
  };
  bool hostPass = false; // packing the host-resident buffers

  // What the transfer queue copies is shared by both queue families
  // (concurrent sharing: no ownership transfers between them).
  std::vector<bool> shared(n, false);
  const uint32_t families[2] = {ctx_.queueFamily(), ctx_.transferFamily()};
  if (copiesOnTransferQueue())
    for (const plan::Program &p : plan_.programs)
      for (const plan::Dispatch &d : p.dispatches)
        if (d.copy) shared[root_[d.bindings[0]]] = shared[root_[d.bindings[1]]] = true;

  // Create the buffers.
  std::vector<VkMemoryRequirements> reqs(n);
  for (size_t i = 0; i < n; ++i) {
    if (root_[i] != i) continue;
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = storageBytes(plan_.buffers[i].bytes);
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = shared[i] ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE;
    bci.queueFamilyIndexCount = shared[i] ? 2 : 0;
    bci.pQueueFamilyIndices = shared[i] ? families : nullptr;
    check(vkCreateBuffer(dev, &bci, nullptr, &buffers_[i]), "vkCreateBuffer for " + bufferName(plan_, i));
    vkGetBufferMemoryRequirements(dev, buffers_[i], &reqs[i]);
  }

  // Pack them into blocks of at most blockLimit bytes, one memory type per block.
  const uint64_t blockLimit = std::min<uint64_t>(ctx_.maxAllocationSize(), uint64_t(256) << 20);
  std::vector<std::pair<size_t, uint64_t>> pending; // (buffer, offset)
  uint64_t pendingSize = 0;
  uint32_t pendingBits = ~0u;
  auto flush = [&]() {
    if (pending.empty()) return;
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = pendingSize;
    Block block;
    VkResult res = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    int types[2] = {hostPass ? findHostType(pendingBits) : findType(pendingBits, preferred),
                    findType(pendingBits, fallback)};
    VkResult injected = injectedFault(FaultSite::Allocate);
    for (int t : types) {
      if (t < 0) continue;
      ai.memoryTypeIndex = uint32_t(t);
      res = injected != VK_SUCCESS ? injected : vkAllocateMemory(dev, &ai, nullptr, &block.memory);
      if (res == VK_SUCCESS) break;
    }
    std::string what = pending.size() == 1 ? bufferName(plan_, pending[0].first)
                                           : std::to_string(pending.size()) + " buffers (from " +
                                                 bufferName(plan_, pending[0].first) + ")";
    if (types[0] < 0 && types[1] < 0)
      throw VulkanError("no host-visible memory type for " + what + " on " + ctx_.info().name);
    if (res != VK_SUCCESS)
      throw VulkanError("cannot allocate " + mib(pendingSize) + " of device memory for " + what + ": " + resultName(res));
    block.memoryType = ai.memoryTypeIndex;
    blocks_.push_back(block);
    void *mapped = nullptr;
    check(vkMapMemory(dev, block.memory, 0, VK_WHOLE_SIZE, 0, &mapped), "vkMapMemory");
    blocks_.back().mapped = static_cast<uint8_t *>(mapped);
    for (auto &[buf, off] : pending) {
      check(vkBindBufferMemory(dev, buffers_[buf], block.memory, off), "vkBindBufferMemory for " + bufferName(plan_, buf));
      hostPtr_[buf] = blocks_.back().mapped + off;
      blockOf_[buf] = blocks_.size() - 1;
    }
    (hostPass ? hostAllocated_ : allocated_) += pendingSize;
    pending.clear();
    pendingSize = 0;
    pendingBits = ~0u;
  };
  for (size_t i = 0; i < 2 * n; ++i) {
    if (i == n) flush(), hostPass = true; // then the host-resident ones, in blocks of their own
    const size_t b = i % n;
    if (root_[b] != b || plan_.buffers[b].host != hostPass) continue;
    const VkMemoryRequirements &r = reqs[b];
    uint64_t align = r.alignment ? r.alignment : 1;
    uint64_t offset = (pendingSize + align - 1) / align * align;
    if (!pending.empty() && (offset + r.size > blockLimit || (pendingBits & r.memoryTypeBits) == 0)) {
      flush();
      offset = 0;
    }
    pending.emplace_back(b, offset);
    pendingSize = offset + r.size;
    pendingBits &= r.memoryTypeBits;
  }
  flush();
  for (size_t i = 0; i < n; ++i) {
    hostPtr_[i] = hostPtr_[root_[i]];
    blockOf_[i] = blockOf_[root_[i]];
  }
}

void Executor::createPipelines(const ExecutorOptions &options) {
  const VkPhysicalDeviceLimits &lim = ctx_.properties().limits;
  const size_t n = plan_.kernels.size();
  // The device's limits, kernel by kernel; then the distinct kernels.
  std::unordered_map<uint64_t, std::vector<size_t>> byKey; // hash of pipelineWords -> pipelines
  std::vector<std::vector<uint32_t>> distinct;               // per pipeline: its pipelineWords
  pipelineOf_.assign(n, 0);
  for (size_t k = 0; k < n; ++k) {
    const plan::Kernel &kernel = plan_.kernels[k];
    std::string name = kernelName(plan_, k);
    const auto &ls = kernel.local_size;
    if (ls[0] > lim.maxComputeWorkGroupSize[0] || ls[1] > lim.maxComputeWorkGroupSize[1] ||
        ls[2] > lim.maxComputeWorkGroupSize[2] ||
        uint64_t(ls[0]) * ls[1] * ls[2] > lim.maxComputeWorkGroupInvocations)
      throw VulkanError(name + ": workgroup size " + std::to_string(ls[0]) + "x" + std::to_string(ls[1]) + "x" +
                        std::to_string(ls[2]) + " exceeds this device's limits (" +
                        std::to_string(lim.maxComputeWorkGroupInvocations) +
                        " invocations): compile the plan with a profile for this device");
    if (kernel.push_constant_bytes > lim.maxPushConstantsSize)
      throw VulkanError(name + ": " + std::to_string(kernel.push_constant_bytes) + " bytes of push constants, the device allows " +
                        std::to_string(lim.maxPushConstantsSize));
    // Distinct pipelines: by layout and SPIR-V (pipelineWords).
    std::vector<uint32_t> words = pipelineWords(plan_.blobs[kernel.spirv_blob], kernel.name);
    words.push_back(kernel.num_bindings);
    words.push_back(kernel.push_constant_bytes);
    util::Fnv1a64 f;
    f.update(words.data(), words.size() * 4);
    std::vector<size_t> &same = byKey[f.h];
    auto it = std::find_if(same.begin(), same.end(), [&](size_t u) { return distinct[u] == words; });
    if (it != same.end()) {
      pipelineOf_[k] = *it;
      continue;
    }
    pipelineOf_[k] = firstKernel_.size();
    same.push_back(firstKernel_.size());
    firstKernel_.push_back(k);
    pipelineKey_.push_back(pipelineKey(plan_, kernel));
    distinct.push_back(std::move(words));
  }
  const size_t unique = firstKernel_.size();
  pipelines_.resize(unique);

  // Workers create the pipelines while the calling thread fills the buffers.
  PipelineCache cache(ctx_, options.pipeline_cache_dir);
  const auto start = Clock::now();
  std::vector<std::exception_ptr> errors(unique);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> lastDone{0}; // ns after start
  auto work = [&] {
    for (size_t u; !stop && (u = next++) < unique;) {
      try {
        createPipeline(u, cache.handle());
      } catch (...) {
        errors[u] = std::current_exception();
      }
      int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
      for (int64_t seen = lastDone; t > seen && !lastDone.compare_exchange_weak(seen, t);) {
      }
    }
  };
  unsigned threads = options.threads ? options.threads : std::min(8u, std::max(1u, std::thread::hardware_concurrency()));
  threads = unsigned(std::min<size_t>(threads, unique));
  std::vector<std::thread> workers;
  std::exception_ptr fillError;
  try {
    for (unsigned t = 0; t < threads; ++t) workers.emplace_back(work);
  } catch (...) { // no threads to be had: this one creates what is left
  }
  if (options.fill) {
    const auto fillStart = Clock::now();
    try {
      options.fill(*this);
    } catch (...) {
      fillError = std::current_exception();
      stop = true;
    }
    startup_.fill_s = secondsSince(fillStart);
  }
  if (!fillError) work();
  for (std::thread &t : workers) t.join();
  startup_.pipeline_s = double(lastDone) / 1e9;
  for (std::exception_ptr &e : errors) // the first failing kernel's error, as a serial loop would report
    if (e) std::rethrow_exception(e);
  if (fillError) std::rethrow_exception(fillError);

  startup_.kernels = n;
  startup_.pipelines = unique;
  startup_.cache = cache.path();
  if (cache.enabled())
    for (uint64_t key : pipelineKey_) startup_.cached += cache.holds(key) ? 1 : 0;
  for (const Pipeline &p : pipelines_) {
    if (p.driverHit < 0) {
      startup_.driver_cached = -1;
      break;
    }
    startup_.driver_cached = (startup_.driver_cached < 0 ? 0 : startup_.driver_cached) + p.driverHit;
  }
  cache.save(pipelineKey_);
}

// Pipeline u: the entry point and the device's checks, then the shader
// module, layouts and pipeline (called on worker threads: it touches only
// pipelines_[u]; the Vulkan objects it creates need no external locking).
void Executor::createPipeline(size_t u, VkPipelineCache cache) {
  VkDevice dev = ctx_.device();
  const size_t k = firstKernel_[u];
  const plan::Kernel &kernel = plan_.kernels[k];
  Pipeline &p = pipelines_[u];
  std::string name = kernelName(plan_, k);
  const std::vector<uint8_t> &spv = plan_.blobs[kernel.spirv_blob];
  std::vector<std::string> entries = computeEntryPoints(spv);
  if (std::find(entries.begin(), entries.end(), kernel.name) == entries.end()) {
    std::string list;
    for (const std::string &e : entries) list += (list.empty() ? "'" : ", '") + e + "'";
    throw VulkanError(name + ": its SPIR-V module (blob " + std::to_string(kernel.spirv_blob) +
                      ") has no compute entry point '" + kernel.name + "' (" +
                      (list.empty() ? std::string("it has none") : "it has " + list) + ")");
  }
  checkKernelForDevice(ctx_, plan_, k, name); // capabilities, workgroup memory, SPIR-V validation
  VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  smci.codeSize = spv.size();
  std::vector<uint32_t> words(spv.size() / 4);
  std::memcpy(words.data(), spv.data(), spv.size());
  smci.pCode = words.data();
  check(vkCreateShaderModule(dev, &smci, nullptr, &p.module), name + ": vkCreateShaderModule");
  std::vector<VkDescriptorSetLayoutBinding> bindings(kernel.num_bindings);
  for (uint32_t b = 0; b < kernel.num_bindings; ++b) {
    bindings[b].binding = b;
    bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[b].descriptorCount = 1;
    bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dslci.bindingCount = kernel.num_bindings;
  dslci.pBindings = bindings.data();
  check(vkCreateDescriptorSetLayout(dev, &dslci, nullptr, &p.setLayout), name + ": vkCreateDescriptorSetLayout");

  VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, kernel.push_constant_bytes};
  VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &p.setLayout;
  plci.pushConstantRangeCount = kernel.push_constant_bytes ? 1 : 0;
  plci.pPushConstantRanges = &pcr;
  check(vkCreatePipelineLayout(dev, &plci, nullptr, &p.layout), name + ": vkCreatePipelineLayout");

  VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  cpci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.module = p.module;
  cpci.stage.pName = kernel.name.c_str();
  cpci.layout = p.layout;
  // What the driver says of the cache (core in Vulkan 1.3; drivers may leave it unset).
  VkPipelineCreationFeedback feedback{};
  VkPipelineCreationFeedbackCreateInfo fci{VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO};
  fci.pPipelineCreationFeedback = &feedback;
  if (cache && ctx_.apiVersion() >= VK_API_VERSION_1_3) cpci.pNext = &fci;
  check(vkCreateComputePipelines(dev, cache, 1, &cpci, nullptr, &p.pipeline),
        name + ": vkCreateComputePipelines (entry point '" + kernel.name + "')");
  if (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT)
    p.driverHit = (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT) ? 1 : 0;
}

void Executor::allocateScrub(uint64_t bytes) {
  VkDevice dev = ctx_.device();
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(dev, &bci, nullptr, &scrub_), "vkCreateBuffer (cache scrub)");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(dev, scrub_, &req);
  const VkPhysicalDeviceMemoryProperties &mp = ctx_.memory();
  int type = -1;
  for (VkMemoryPropertyFlags want : {VkMemoryPropertyFlags(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT), VkMemoryPropertyFlags(0)})
    for (uint32_t t = 0; t < mp.memoryTypeCount && type < 0; ++t)
      if ((req.memoryTypeBits & (1u << t)) && (mp.memoryTypes[t].propertyFlags & want) == want) type = int(t);
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = uint32_t(std::max(type, 0));
  check(vkAllocateMemory(dev, &ai, nullptr, &scrubMemory_), "vkAllocateMemory (cache scrub of " + describeBytes(bytes) + ")");
  check(vkBindBufferMemory(dev, scrub_, scrubMemory_, 0), "vkBindBufferMemory (cache scrub)");
  scrubBytes_ = bytes;
}

void Executor::recordPrograms(const ExecutorOptions &options) {
  const bool dispatchTimestamps = options.dispatch_timestamps && !scrub_;
  const size_t period = std::max<size_t>(1, options.cold_cache_period);
  auto groups = [&](size_t dispatches) { return scrub_ ? (dispatches + period - 1) / period : 0; };
  VkDevice dev = ctx_.device();
  const VkPhysicalDeviceLimits &lim = ctx_.properties().limits;

  size_t sets = 0, descriptors = 0;
  for (const plan::Program &p : plan_.programs)
    for (const plan::Dispatch &d : p.dispatches) {
      ++sets;
      descriptors += d.bindings.size();
      for (int g = 0; g < 3; ++g)
        if (d.groups[size_t(g)] > lim.maxComputeWorkGroupCount[g])
          throw VulkanError("program '" + p.name + "': a dispatch of " + kernelName(plan_, d.kernel) + " needs " +
                            std::to_string(d.groups[size_t(g)]) + " workgroups in dimension " + std::to_string(g) +
                            ", the device allows " + std::to_string(lim.maxComputeWorkGroupCount[g]));
    }

  if (sets) {
    VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, uint32_t(descriptors ? descriptors : 1)};
    VkDescriptorPoolCreateInfo dpci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dpci.maxSets = uint32_t(sets);
    dpci.poolSizeCount = 1;
    dpci.pPoolSizes = &size;
    check(vkCreateDescriptorPool(dev, &dpci, nullptr, &descriptorPool_), "vkCreateDescriptorPool");
  }

  VkCommandPoolCreateInfo cpci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpci.queueFamilyIndex = ctx_.queueFamily();
  check(vkCreateCommandPool(dev, &cpci, nullptr, &commandPool_), "vkCreateCommandPool");
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  check(vkCreateFence(dev, &fci, nullptr, &fence_), "vkCreateFence");
  if (copyQueue_) {
    if (copiesOnTransferQueue()) {
      VkCommandPoolCreateInfo tpci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
      tpci.queueFamilyIndex = ctx_.transferFamily();
      check(vkCreateCommandPool(dev, &tpci, nullptr, &transferPool_), "vkCreateCommandPool (transfer queue)");
    }
    VkSemaphoreTypeCreateInfo stci{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
    stci.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
    VkSemaphoreCreateInfo sci{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
    sci.pNext = &stci;
    check(vkCreateSemaphore(dev, &sci, nullptr, &computeTimeline_), "vkCreateSemaphore (compute timeline)");
    check(vkCreateSemaphore(dev, &sci, nullptr, &transferTimeline_), "vkCreateSemaphore (transfer timeline)");
  }

  const bool timestamps = ctx_.info().timestamps;
  if (timestamps && !plan_.programs.empty()) {
    VkQueryPoolCreateInfo qpci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qpci.queryType = VK_QUERY_TYPE_TIMESTAMP;
    size_t queries = 0;
    for (const plan::Program &p : plan_.programs)
      queries += 2 + (dispatchTimestamps ? p.dispatches.size() : 0) + 2 * groups(p.dispatches.size());
    qpci.queryCount = uint32_t(queries);
    check(vkCreateQueryPool(dev, &qpci, nullptr, &queryPool_), "vkCreateQueryPool");
  }

  uint32_t nextQuery = 0;
  for (size_t pi = 0; pi < plan_.programs.size(); ++pi) {
    const plan::Program &prog = plan_.programs[pi];
    RecordedProgram rec;
    rec.firstQuery = nextQuery;
    rec.queries = uint32_t(2 + (dispatchTimestamps ? prog.dispatches.size() : 0) + 2 * groups(prog.dispatches.size()));
    nextQuery += rec.queries;

    // One descriptor set per dispatch.
    std::vector<VkDescriptorSet> dsets(prog.dispatches.size());
    if (!dsets.empty()) {
      std::vector<VkDescriptorSetLayout> layouts;
      for (const plan::Dispatch &d : prog.dispatches) layouts.push_back(pipelines_[pipelineOf_[d.kernel]].setLayout);
      VkDescriptorSetAllocateInfo dsai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
      dsai.descriptorPool = descriptorPool_;
      dsai.descriptorSetCount = uint32_t(layouts.size());
      dsai.pSetLayouts = layouts.data();
      check(vkAllocateDescriptorSets(dev, &dsai, dsets.data()), "program '" + prog.name + "': vkAllocateDescriptorSets");
      std::vector<VkDescriptorBufferInfo> infos;
      size_t total = 0;
      for (const plan::Dispatch &d : prog.dispatches) total += d.bindings.size();
      infos.reserve(total);
      std::vector<VkWriteDescriptorSet> writes;
      writes.reserve(total);
      for (size_t di = 0; di < prog.dispatches.size(); ++di) {
        const plan::Dispatch &d = prog.dispatches[di];
        for (size_t b = 0; b < d.bindings.size(); ++b) {
          size_t buf = d.bindings[b];
          infos.push_back({buffers_[root_[buf]], 0, storageBytes(plan_.buffers[buf].bytes)});
          if (di == 0 && b == 0 && injectedFault(RecordingFault::ShortDescriptor)) { // the smallest buffer instead
            size_t small = root_[buf];
            for (size_t r = 0; r < root_.size(); ++r)
              if (root_[r] == r && plan_.buffers[r].bytes < plan_.buffers[small].bytes) small = r;
            infos.back() = {buffers_[small], 0, storageBytes(plan_.buffers[small].bytes)};
          }
          VkWriteDescriptorSet w{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
          w.dstSet = dsets[di];
          w.dstBinding = uint32_t(b);
          w.descriptorCount = 1;
          w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
          w.pBufferInfo = &infos.back();
          writes.push_back(w);
        }
      }
      if (!writes.empty()) vkUpdateDescriptorSets(dev, uint32_t(writes.size()), writes.data(), 0, nullptr);
    }

    // The program's commands go to `cmd`: one command buffer, or in the
    // segmented schedule (copyQueue_, a program with copies) the open compute
    // segment, with the copies in batches of their own.
    const bool segmented = copyQueue_ && std::any_of(prog.dispatches.begin(), prog.dispatches.end(),
                                                     [](const plan::Dispatch &d) { return d.copy; });
    rec.cmd = beginCommandBuffer(commandPool_);
    VkCommandBuffer cmd = rec.cmd;
    if (segmented) rec.steps.push_back({cmd, false, 0}), rec.segments = 1;

    auto barrier = [&](VkPipelineStageFlags src, VkAccessFlags srcAccess, VkPipelineStageFlags dst, VkAccessFlags dstAccess) {
      VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      mb.srcAccessMask = srcAccess;
      mb.dstAccessMask = dstAccess;
      vkCmdPipelineBarrier(cmd, src, dst, 0, 1, &mb, 0, nullptr, 0, nullptr);
    };
    if (queryPool_) {
      vkCmdResetQueryPool(cmd, queryPool_, rec.firstQuery, rec.queries);
      vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queryPool_, rec.firstQuery);
    }
    // Host writes (inputs, hparams) and the previous submission's shader writes.
    barrier(VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    int64_t bound = -1;
    // A barrier only where a dispatch touches storage that a dispatch since
    // the last barrier wrote (read or write after write), or writes storage
    // one read (write after read); independent dispatches (the q, k and v
    // products of one input, a weight's copy beside the layer before) run
    // concurrently. Storage is compared by owner (aliases of one slot
    // conflict). TESSERA_BARRIERS=every puts one between every two dispatches.
    static const bool everyDispatch = [] {
      const char *e = std::getenv("TESSERA_BARRIERS");
      return e && std::string(e) == "every";
    }();
    std::vector<uint32_t> readIn(plan_.buffers.size(), 0), writtenIn(plan_.buffers.size(), 0); // epoch (barrier interval) of the last read / write
    uint32_t epoch = 1;
    // Streamed weights' copies as transfers (plan dispatches marked `copy`):
    // the compute barriers do not wait for them, so a copy the compiler
    // placed ahead of its readers overlaps the dispatches between. A
    // transfer waits for the compute work that used its slot (copyEpoch
    // advances at each compute -> transfer barrier); a dispatch reading
    // what a transfer wrote waits for the transfers (transferEpoch).
    std::vector<uint32_t> computeIn(plan_.buffers.size(), 0), transferredIn(plan_.buffers.size(), 0);
    uint32_t copyEpoch = 1, transferEpoch = 1;
    // The segmented schedule's bookkeeping, in timeline values (segment k
    // signals k + 1 on the compute timeline, batch j signals j + 1 on the
    // transfer timeline): per storage, the last segment that touched it and
    // the batch of the last copy into it; the batch copies go to (-1: a new
    // one); the latest batch any segment waits for.
    std::vector<uint64_t> segmentOf(plan_.buffers.size(), 0), batchOf(plan_.buffers.size(), 0);
    std::vector<uint64_t> writtenInBatch(plan_.buffers.size(), 0);
    int64_t openBatch = -1;
    uint64_t waitedBatch = 0, lastBatchWait = 0;
    bool segmentHasDispatches = false;
    size_t openSegment = 0; // its index in rec.steps
    auto closeSegment = [&]() {
      check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
      cmd = beginCommandBuffer(commandPool_);
      openSegment = rec.steps.size();
      rec.steps.push_back({cmd, false, 0});
      ++rec.segments;
      bound = -1;
      segmentHasDispatches = false;
    };
    for (size_t di = 0; di < prog.dispatches.size(); ++di) {
      const plan::Dispatch &d = prog.dispatches[di];
      const Pipeline &p = pipelines_[pipelineOf_[d.kernel]];
      const std::vector<plan::BindingInterface> &access = plan_.kernels[d.kernel].interface.bindings;
      auto writes = [&](size_t bi) { return bi >= access.size() || (uint32_t(access[bi].access) & 2u); };
      if (d.copy && transferCopies_ && segmented) {
        // Into a batch that waits for the segments that last used the slot:
        // the open segment is closed first if it did.
        const size_t src = root_[d.bindings[0]], dst = root_[d.bindings[1]];
        if (segmentOf[dst] == rec.segments) closeSegment();
        const uint64_t need = segmentOf[dst];
        if (openBatch < 0 || rec.steps[size_t(openBatch)].wait < need) {
          if (openBatch >= 0) check(vkEndCommandBuffer(rec.steps[size_t(openBatch)].cmd), "vkEndCommandBuffer (copies)");
          VkCommandBuffer bcmd = beginCommandBuffer(transferPool_ ? transferPool_ : commandPool_);
          lastBatchWait = std::max(lastBatchWait, need);
          rec.steps.push_back({bcmd, true, lastBatchWait});
          openBatch = int64_t(rec.steps.size() - 1);
          ++rec.batches;
          // After the earlier batches' copies (write after write into a slot).
          VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
          mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
          mb.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
          vkCmdPipelineBarrier(bcmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, nullptr, 0,
                               nullptr);
        }
        VkCommandBuffer bcmd = rec.steps[size_t(openBatch)].cmd;
        if (writtenInBatch[dst] == rec.batches) { // a second copy into one slot in this batch
          VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
          mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
          mb.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
          vkCmdPipelineBarrier(bcmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, nullptr, 0,
                               nullptr);
          ++rec.barriers;
        }
        VkBufferCopy region{0, 0, plan_.buffers[d.bindings[0]].bytes};
        vkCmdCopyBuffer(bcmd, buffers_[src], buffers_[dst], 1, &region);
        rec.steps[size_t(openBatch)].dispatches.push_back(uint32_t(di));
        writtenInBatch[dst] = batchOf[dst] = rec.batches;
        ++rec.transfers;
        if (queryPool_ && dispatchTimestamps) // (the compute queue's time at the copy's place)
          vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_, rec.firstQuery + 1 + uint32_t(di));
        continue;
      }
      if (d.copy && transferCopies_) {
        const size_t src = root_[d.bindings[0]], dst = root_[d.bindings[1]];
        if (everyDispatch || computeIn[dst] == copyEpoch || transferredIn[dst] == transferEpoch) {
          barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                  VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                  VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
          ++copyEpoch; // (not transferEpoch: compute has not waited for the transfers)
          ++rec.barriers;
        }
        VkBufferCopy region{0, 0, plan_.buffers[d.bindings[0]].bytes};
        vkCmdCopyBuffer(cmd, buffers_[src], buffers_[dst], 1, &region);
        transferredIn[dst] = transferEpoch;
        ++rec.transfers;
        if (queryPool_ && dispatchTimestamps)
          vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_, rec.firstQuery + 1 + uint32_t(di));
        continue;
      }
      bool hazard = everyDispatch;
      for (size_t bi = 0; bi < d.bindings.size() && !hazard; ++bi) {
        size_t r = root_[d.bindings[bi]];
        hazard = writtenIn[r] == epoch || (writes(bi) && readIn[r] == epoch);
      }
      if (segmented) {
        // A dispatch that reads (or overwrites) a copy whose batch no segment
        // has waited for starts a segment that waits for that batch (and so
        // for the batches before it, in the transfer queue's order).
        uint64_t need = 0;
        for (size_t b : d.bindings) need = std::max(need, batchOf[root_[b]]);
        if (need > waitedBatch) {
          // (an open segment with nothing in it yet, last in the order, can wait itself)
          if (segmentHasDispatches || rec.steps.back().cmd != cmd) closeSegment();
          rec.steps.back().wait = need;
          waitedBatch = need;
          if (need == rec.batches && openBatch >= 0) { // no more copies into a batch a segment waits for
            check(vkEndCommandBuffer(rec.steps[size_t(openBatch)].cmd), "vkEndCommandBuffer (copies)");
            openBatch = -1;
          }
        }
        for (size_t b : d.bindings) segmentOf[root_[b]] = rec.segments;
      } else {
        bool afterTransfer = false;
        for (size_t bi = 0; bi < d.bindings.size() && !afterTransfer; ++bi)
          afterTransfer = transferredIn[root_[d.bindings[bi]]] == transferEpoch;
        if (afterTransfer) { // this dispatch reads (or overwrites) a copy still in flight
          barrier(VK_PIPELINE_STAGE_TRANSFER_BIT | (hazard ? VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT : 0),
                  VK_ACCESS_TRANSFER_WRITE_BIT | (hazard ? VK_ACCESS_SHADER_WRITE_BIT : 0),
                  VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
          ++transferEpoch;
          ++rec.barriers;
          if (hazard) ++epoch;
          hazard = false;
        }
        for (size_t bi = 0; bi < d.bindings.size(); ++bi) computeIn[root_[d.bindings[bi]]] = copyEpoch;
      }
      if (scrub_ && di % period == 0) {
        // A cold group: the scrub fill after everything before it, its end
        // timestamped, then the group's dispatches after the fill.
        const uint32_t q = rec.firstQuery + 1 + 2 * uint32_t(di / period);
        barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_SHADER_WRITE_BIT |
                VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
        vkCmdFillBuffer(cmd, scrub_, 0, VK_WHOLE_SIZE, uint32_t(di));
        if (queryPool_) vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_, q);
        barrier(VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT |
                VK_ACCESS_SHADER_WRITE_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
        ++epoch;
        hazard = false;
      }
      if (di > 0 && hazard && !injectedFault(RecordingFault::NoBarriers)) {
        barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
        ++epoch;
        ++rec.barriers;
      }
      for (size_t bi = 0; bi < d.bindings.size(); ++bi)
        (writes(bi) ? writtenIn : readIn)[root_[d.bindings[bi]]] = epoch;
      if (bound != int64_t(pipelineOf_[d.kernel])) {
        vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
        bound = int64_t(pipelineOf_[d.kernel]);
      }
      vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &dsets[di], 0, nullptr);
      if (!d.push_constants.empty())
        vkCmdPushConstants(cmd, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, uint32_t(d.push_constants.size()),
                           d.push_constants.data());
      vkCmdDispatch(cmd, d.groups[0], d.groups[1], d.groups[2]);
      segmentHasDispatches = true;
      if (segmented) rec.steps[openSegment].dispatches.push_back(uint32_t(di));
      if (queryPool_ && dispatchTimestamps)
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_, rec.firstQuery + 1 + uint32_t(di));
      if (queryPool_ && scrub_ && (di % period == period - 1 || di + 1 == prog.dispatches.size()))
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_,
                            rec.firstQuery + 2 + 2 * uint32_t(di / period));
    }
    if (segmented) {
      if (openBatch >= 0) check(vkEndCommandBuffer(rec.steps[size_t(openBatch)].cmd), "vkEndCommandBuffer (copies)");
      if (rec.batches > waitedBatch) { // the program ends after every copy (the fence is the compute queue's)
        closeSegment();
        rec.steps.back().wait = rec.batches;
      }
    }
    // Results become visible to the host after the fence.
    barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    if (queryPool_)
      vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool_, rec.firstQuery + rec.queries - 1);
    check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
    rec.sets = dsets;
    programs_[prog.name] = rec;
  }
}

void Executor::writeSchedules(const std::string &path) const {
  // {"train_step": [{"transfer": false, "wait": 0, "dispatches": [0, 1, ...]}, ...], ...}
  std::string out = "{";
  for (const auto &[name, rec] : programs_) {
    out += (out.size() > 1 ? ",\n\"" : "\"") + name + "\": [";
    for (size_t i = 0; i < rec.steps.size(); ++i) {
      const RecordedProgram::Step &s = rec.steps[i];
      out += std::string(i ? ", " : "") + "{\"transfer\": " + (s.transfer ? "true" : "false") +
             ", \"wait\": " + std::to_string(s.wait) + ", \"dispatches\": [";
      for (size_t k = 0; k < s.dispatches.size(); ++k) out += (k ? ", " : "") + std::to_string(s.dispatches[k]);
      out += "]}";
    }
    out += "]";
  }
  out += "}\n";
  util::writeFileAtomic(path, out);
}

VkCommandBuffer Executor::beginCommandBuffer(VkCommandPool pool) {
  VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cbai.commandPool = pool;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  check(vkAllocateCommandBuffers(ctx_.device(), &cbai, &cmd), "vkAllocateCommandBuffers");
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  check(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer");
  return cmd;
}

void Executor::submitOnce(const std::string &what, const std::function<void(VkCommandBuffer)> &record) {
  VkDevice dev = ctx_.device();
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cbai.commandPool = commandPool_;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  check(vkAllocateCommandBuffers(dev, &cbai, &cmd), "vkAllocateCommandBuffers (" + what + ")");
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  VkResult r = vkBeginCommandBuffer(cmd, &bi);
  if (r == VK_SUCCESS) {
    record(cmd);
    r = vkEndCommandBuffer(cmd);
  }
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd;
  if (r == VK_SUCCESS) r = vkQueueSubmit(ctx_.queue(), 1, &si, fence_);
  if (r == VK_SUCCESS) r = vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX);
  vkFreeCommandBuffers(dev, commandPool_, 1, &cmd);
  check(r, what);
  check(vkResetFences(dev, 1, &fence_), "vkResetFences");
}

std::optional<Executor::NonFinite> Executor::firstNonFinite(const std::string &program, bool clearGradients) {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  const plan::Program *prog = plan_.program(program);
  std::vector<uint8_t> bytes;
  // Activations zeroed first: a dispatch that writes part of its output
  // leaves the rest as it was, and after a failed step that may be NaN.
  submitOnce("program '" + program + "': clearing the activations for the non-finite search", [&](VkCommandBuffer cmd) {
    for (size_t i = 0; i < plan_.buffers.size(); ++i)
      if (root_[i] == i && plan_.buffers[i].bytes &&
          (plan_.buffers[i].kind == plan::BufferKind::Activation ||
           (clearGradients && plan_.buffers[i].kind == plan::BufferKind::Gradient)))
        vkCmdFillBuffer(cmd, buffers_[i], 0, VK_WHOLE_SIZE, 0);
  });
  for (size_t di = 0; di < prog->dispatches.size(); ++di) {
    const plan::Dispatch &d = prog->dispatches[di];
    const Pipeline &p = pipelines_[pipelineOf_[d.kernel]];
    submitOnce("program '" + program + "': the non-finite search's dispatch " + std::to_string(di), [&](VkCommandBuffer cmd) {
      // Each dispatch after everything before it (host writes, the fill, the
      // previous dispatch), its writes then visible to the host and to copies.
      VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      mb.srcAccessMask = VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
      mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                           VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
      vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
      vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &it->second.sets[di], 0, nullptr);
      if (!d.push_constants.empty())
        vkCmdPushConstants(cmd, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, uint32_t(d.push_constants.size()),
                           d.push_constants.data());
      vkCmdDispatch(cmd, d.groups[0], d.groups[1], d.groups[2]);
      mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
      mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                           0, 1, &mb, 0, nullptr, 0, nullptr);
    });
    const std::vector<plan::BindingInterface> &access = plan_.kernels[d.kernel].interface.bindings;
    for (size_t bi2 = 0; bi2 < d.bindings.size() && bi2 < access.size(); ++bi2) {
      if (!(uint32_t(access[bi2].access) & 2u)) continue;
      const size_t b = d.bindings[bi2];
      const plan::DType t = plan_.buffers[b].dtype;
      if (t != plan::DType::F32 && t != plan::DType::F16 && t != plan::DType::BF16) continue;
      bytes.resize(plan_.buffers[b].bytes);
      read(b, bytes.data(), bytes.size());
      bool bad = false;
      if (t == plan::DType::F32) {
        for (size_t i = 0; i + 4 <= bytes.size() && !bad; i += 4) {
          float v;
          std::memcpy(&v, bytes.data() + i, 4);
          bad = !std::isfinite(v);
        }
      } else {
        // The all-ones exponent (NaN or infinity) of f16 and of bf16.
        const uint16_t exp = t == plan::DType::F16 ? 0x7c00 : 0x7f80;
        for (size_t i = 0; i + 2 <= bytes.size() && !bad; i += 2) {
          uint16_t h;
          std::memcpy(&h, bytes.data() + i, 2);
          bad = (h & exp) == exp;
        }
      }
      if (bad) return NonFinite{di, b};
    }
  }
  return std::nullopt;
}

void Executor::read(size_t buffer, void *dst, uint64_t bytes) {
  if (buffer >= plan_.buffers.size()) throw VulkanError("read: no buffer " + std::to_string(buffer));
  bytes = std::min(bytes, plan_.buffers[buffer].bytes);
  const VkPhysicalDeviceMemoryProperties &mp = ctx_.memory();
  const VkMemoryPropertyFlags cached = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
  auto findType = [&](VkMemoryPropertyFlags flags, uint32_t bits) -> int {
    for (uint32_t t = 0; t < mp.memoryTypeCount; ++t)
      if ((bits & (1u << t)) && (mp.memoryTypes[t].propertyFlags & flags) == flags) return int(t);
    return -1;
  };
  const Block &home = blocks_.at(blockOf_[buffer]);
  const bool small = bytes <= (uint64_t(1) << 20);
  // Test hook: TESSERA_READBACK_CHUNK=<bytes> takes the staging path always,
  // in chunks of that size (lavapipe's memory is host-cached).
  const char *forced = std::getenv("TESSERA_READBACK_CHUNK");
  const uint64_t forcedChunk = forced ? std::strtoull(forced, nullptr, 10) : 0;
  if (bytes == 0) return;
  if (!forcedChunk && (small || (mp.memoryTypes[home.memoryType].propertyFlags & cached) == cached)) {
    std::memcpy(dst, hostPtr_[buffer], bytes);
    return;
  }
  VkDevice dev = ctx_.device();
  const uint64_t chunk = std::min<uint64_t>(bytes, forcedChunk ? forcedChunk : uint64_t(64) << 20);
  VkBuffer staging = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  auto cleanup = [&] {
    if (cmd) vkFreeCommandBuffers(dev, commandPool_, 1, &cmd);
    if (staging) vkDestroyBuffer(dev, staging, nullptr);
    if (memory) vkFreeMemory(dev, memory, nullptr);
  };
  try {
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = chunk;
    bci.usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(vkCreateBuffer(dev, &bci, nullptr, &staging), "vkCreateBuffer (read-back staging)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, staging, &req);
    int type = findType(cached, req.memoryTypeBits);
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = uint32_t(std::max(type, 0));
    if (type < 0 || vkAllocateMemory(dev, &ai, nullptr, &memory) != VK_SUCCESS) {
      memory = VK_NULL_HANDLE;
      cleanup(); // no host-cached memory to spare: read the mapping directly
      std::memcpy(dst, hostPtr_[buffer], bytes);
      return;
    }
    check(vkBindBufferMemory(dev, staging, memory, 0), "vkBindBufferMemory (read-back staging)");
    void *mapped = nullptr;
    check(vkMapMemory(dev, memory, 0, VK_WHOLE_SIZE, 0, &mapped), "vkMapMemory (read-back staging)");
    const bool coherent = mp.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    const VkBuffer src = buffers_[root_[buffer]];
    for (uint64_t done = 0; done < bytes; done += chunk) {
      const uint64_t n = std::min(chunk, bytes - done);
      VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
      cbai.commandPool = commandPool_;
      cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
      cbai.commandBufferCount = 1;
      check(vkAllocateCommandBuffers(dev, &cbai, &cmd), "vkAllocateCommandBuffers (read-back)");
      VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
      bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
      check(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer (read-back)");
      VkMemoryBarrier before{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      before.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT;
      before.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                           VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, nullptr, 0, nullptr);
      VkBufferCopy region{done, 0, n};
      vkCmdCopyBuffer(cmd, src, staging, 1, &region);
      VkMemoryBarrier after{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      after.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      after.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &after, 0, nullptr, 0,
                           nullptr);
      check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer (read-back)");
      VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      si.commandBufferCount = 1;
      si.pCommandBuffers = &cmd;
      VkResult r = vkQueueSubmit(ctx_.queue(), 1, &si, fence_);
      if (r == VK_SUCCESS) r = vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX);
      if (r == VK_ERROR_DEVICE_LOST)
        throw VulkanError("the GPU stopped responding (VK_ERROR_DEVICE_LOST) while reading back " + bufferName(plan_, buffer));
      check(r, "reading back " + bufferName(plan_, buffer));
      check(vkResetFences(dev, 1, &fence_), "vkResetFences");
      if (!coherent) {
        VkMappedMemoryRange range{VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, nullptr, memory, 0, VK_WHOLE_SIZE};
        check(vkInvalidateMappedMemoryRanges(dev, 1, &range), "vkInvalidateMappedMemoryRanges (read-back)");
      }
      std::memcpy(static_cast<uint8_t *>(dst) + done, mapped, n);
      vkFreeCommandBuffers(dev, commandPool_, 1, &cmd);
      cmd = VK_NULL_HANDLE;
    }
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

ProgramTiming Executor::run(const std::string &program) {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  RecordedProgram &rec = it->second;
  VkDevice dev = ctx_.device();
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &rec.cmd;
  auto start = std::chrono::steady_clock::now();
  VkResult r = injectedFault(FaultSite::Submit);
  if (r == VK_SUCCESS && !rec.steps.empty()) r = submitSteps(rec);
  else if (r == VK_SUCCESS) r = vkQueueSubmit(ctx_.queue(), 1, &si, fence_);
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    throw VulkanError(std::string("out of ") + (r == VK_ERROR_OUT_OF_HOST_MEMORY ? "host" : "device") +
                      " memory submitting program '" + program + "' (" + resultName(r) + ")");
  if (r == VK_ERROR_DEVICE_LOST)
    throw VulkanError("the GPU stopped responding (VK_ERROR_DEVICE_LOST) when program '" + program + "' was submitted");
  check(r, "program '" + program + "': vkQueueSubmit");
  r = injectedFault(FaultSite::Wait);
  if (r == VK_SUCCESS) r = vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX);
  if (r == VK_ERROR_DEVICE_LOST)
    throw VulkanError("the GPU stopped responding (VK_ERROR_DEVICE_LOST) while running program '" + program + "'");
  check(r, "program '" + program + "': vkWaitForFences");
  check(vkResetFences(dev, 1, &fence_), "vkResetFences");
  ProgramTiming t;
  t.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (queryPool_) {
    std::vector<uint64_t> ts(rec.queries, 0);
    VkResult qr = vkGetQueryPoolResults(dev, queryPool_, rec.firstQuery, rec.queries, ts.size() * sizeof(uint64_t),
                                        ts.data(), sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (qr == VK_SUCCESS) {
      const uint64_t mask = ctx_.timestampMask();
      const double msPerTick = double(ctx_.properties().limits.timestampPeriod) / 1e6;
      auto between = [&](size_t a, size_t b) { return double(((ts[b] & mask) - (ts[a] & mask)) & mask) * msPerTick; };
      t.gpu_ms = between(0, ts.size() - 1);
      rec.dispatchMs.clear();
      rec.groupMs.clear();
      if (scrub_)
        for (size_t q = 1; q + 2 < ts.size(); q += 2) rec.groupMs.push_back(between(q, q + 1));
      else
        for (size_t q = 1; q + 1 < ts.size(); ++q) rec.dispatchMs.push_back(between(q - 1, q));
    }
  }
  return t;
}

VkResult Executor::submitSteps(RecordedProgram &rec) {
  // Values of this run: the timelines go on from where the last run left them.
  const uint64_t computeBase = computeDone_, transferBase = transferDone_;
  const size_t n = rec.steps.size();
  std::vector<VkSubmitInfo> infos(n, {VK_STRUCTURE_TYPE_SUBMIT_INFO});
  std::vector<VkTimelineSemaphoreSubmitInfo> values(n, {VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO});
  std::vector<uint64_t> waitValue(n), signalValue(n);
  const VkPipelineStageFlags waitStage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
  uint64_t segment = 0, batch = 0;
  for (size_t i = 0; i < n; ++i) {
    const RecordedProgram::Step &step = rec.steps[i];
    VkSubmitInfo &si = infos[i];
    VkTimelineSemaphoreSubmitInfo &tv = values[i];
    si.pNext = &tv;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &step.cmd;
    signalValue[i] = step.transfer ? transferBase + ++batch : computeBase + ++segment;
    si.signalSemaphoreCount = 1;
    si.pSignalSemaphores = step.transfer ? &transferTimeline_ : &computeTimeline_;
    tv.signalSemaphoreValueCount = 1;
    tv.pSignalSemaphoreValues = &signalValue[i];
    if (step.wait) {
      waitValue[i] = (step.transfer ? computeBase : transferBase) + step.wait;
      si.waitSemaphoreCount = 1;
      si.pWaitSemaphores = step.transfer ? &computeTimeline_ : &transferTimeline_;
      si.pWaitDstStageMask = &waitStage;
      tv.waitSemaphoreValueCount = 1;
      tv.pWaitSemaphoreValues = &waitValue[i];
    }
  }
  computeDone_ += segment;
  transferDone_ += batch;
  if (!copiesOnTransferQueue()) // one queue: the steps in their order
    return vkQueueSubmit(ctx_.queue(), uint32_t(n), infos.data(), fence_);
  // Two queues: the copy batches, then the segments (the batches that wait
  // for a segment are submitted before it: timeline semaphores allow that).
  std::vector<VkSubmitInfo> copies, compute;
  for (size_t i = 0; i < n; ++i) (rec.steps[i].transfer ? copies : compute).push_back(infos[i]);
  VkResult r = vkQueueSubmit(copyQueue_, uint32_t(copies.size()), copies.data(), VK_NULL_HANDLE);
  if (r != VK_SUCCESS) return r;
  return vkQueueSubmit(ctx_.queue(), uint32_t(compute.size()), compute.data(), fence_);
}

size_t Executor::segmentCount(const std::string &program) const {
  auto it = programs_.find(program);
  return it == programs_.end() ? 0 : it->second.segments;
}

size_t Executor::batchCount(const std::string &program) const {
  auto it = programs_.find(program);
  return it == programs_.end() ? 0 : it->second.batches;
}

size_t Executor::barrierCount(const std::string &program) const {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  return it->second.barriers;
}

size_t Executor::transferCount(const std::string &program) const {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  return it->second.transfers;
}

const std::vector<double> &Executor::groupTimes(const std::string &program) const {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  return it->second.groupMs;
}

const std::vector<double> &Executor::dispatchTimes(const std::string &program) const {
  auto it = programs_.find(program);
  if (it == programs_.end()) throw VulkanError("the plan has no program '" + program + "'");
  return it->second.dispatchMs;
}

} // namespace tessera::vk
