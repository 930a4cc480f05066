// Executor.h - a plan on a Vulkan device: one VkBuffer per plan buffer
// (aliases share their target's VkBuffer), one compute pipeline per kernel,
// one descriptor set per dispatch, and one command buffer per program,
// recorded once and replayed by run().
//
// Memory: buffers are sub-allocated from a few large allocations (devices
// limit the number of allocations), preferring DEVICE_LOCAL | HOST_VISIBLE |
// HOST_COHERENT memory and falling back to HOST_VISIBLE | HOST_COHERENT. All
// memory stays mapped; data() is the host pointer of a buffer.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/vulkan/Context.h"

#include <map>
#include <string>
#include <vector>

namespace tessera::vk {

struct ProgramTiming {
  double gpu_ms = -1;  // from timestamp queries; -1 when the queue has none
  double wall_ms = 0;  // submit to fence signalled, host clock
};

class Executor {
public:
  Executor(Context &ctx, const plan::Plan &plan); // throws VulkanError naming the buffer / kernel
  ~Executor();
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  // Host pointer of plan buffer i (for an alias: its target's storage).
  void *data(size_t buffer) const;
  float *f32(size_t buffer) const { return static_cast<float *>(data(buffer)); }
  int32_t *i32(size_t buffer) const { return static_cast<int32_t *>(data(buffer)); }

  // Copies the first `bytes` of plan buffer i to dst. Where the buffer's
  // memory is not host-cached (device memory mapped through the BAR, whose
  // reads cross the bus one uncached line at a time: ~0.2 GB/s on an H200)
  // the GPU first copies it into host-cached memory, chunk by chunk.
  void read(size_t buffer, void *dst, uint64_t bytes);

  bool hasProgram(const std::string &name) const { return programs_.count(name) != 0; }
  // Submits the program's command buffer and waits for it.
  ProgramTiming run(const std::string &program);
  // Bytes of device memory allocated for the plan's buffers.
  uint64_t allocatedBytes() const { return allocated_; }

private:
  struct Block {
    VkDeviceMemory memory = VK_NULL_HANDLE;
    uint8_t *mapped = nullptr;
    uint32_t memoryType = 0;
  };
  struct Pipeline {
    VkShaderModule module = VK_NULL_HANDLE;
    VkDescriptorSetLayout setLayout = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    VkPipeline pipeline = VK_NULL_HANDLE;
  };
  struct RecordedProgram {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    uint32_t firstQuery = 0;
  };

  void checkDeviceLimits() const;
  void allocateBuffers();
  void createPipelines();
  void recordPrograms();
  void release(); // destroys every Vulkan object (destructor, failed constructor)

  Context &ctx_;
  const plan::Plan &plan_;
  std::vector<size_t> root_;               // plan buffer -> buffer owning its storage
  std::vector<VkBuffer> buffers_;          // per plan buffer (aliases: VK_NULL_HANDLE)
  std::vector<uint8_t *> hostPtr_;         // per plan buffer (aliases resolved)
  std::vector<Block> blocks_;
  std::vector<size_t> blockOf_;            // per plan buffer (aliases resolved): index into blocks_
  std::vector<Pipeline> pipelines_;
  VkDescriptorPool descriptorPool_ = VK_NULL_HANDLE;
  VkCommandPool commandPool_ = VK_NULL_HANDLE;
  VkQueryPool queryPool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  std::map<std::string, RecordedProgram> programs_;
  uint64_t allocated_ = 0;
};

} // namespace tessera::vk
