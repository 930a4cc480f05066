// Executor.h - a plan on a Vulkan device: one VkBuffer per plan buffer
// (aliases share their target's VkBuffer), one compute pipeline per distinct
// kernel (kernels whose SPIR-V differs only in the entry point's name and
// debug names, with the same layout, share one), one descriptor set per
// dispatch, and one command buffer per program,
// recorded once and replayed by run().
//
// Startup: pipelines are created on worker threads, through the persistent
// pipeline cache (PipelineCache.h), while ExecutorOptions::fill writes the
// buffers (weights) on the calling thread.
//
// Memory: buffers are sub-allocated from a few large allocations (devices
// limit the number of allocations), preferring DEVICE_LOCAL | HOST_VISIBLE |
// HOST_COHERENT memory and falling back to HOST_VISIBLE | HOST_COHERENT. All
// memory stays mapped; data() is the host pointer of a buffer.
#pragma once

#include "runtime/plan/Plan.h"
#include "runtime/vulkan/Context.h"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessera::vk {

class Executor;

struct ExecutorOptions {
  // The pipeline cache folder ("" : none); resolvePipelineCacheDir picks it.
  std::string pipeline_cache_dir;
  // Fills the buffers (weights, constants) on the calling thread while the
  // pipelines are being created; the constructor returns once both are done.
  std::function<void(Executor &)> fill;
  // Worker threads creating pipelines (0: one per core, at most 8).
  unsigned threads = 0;
  // A timestamp after every dispatch (dispatchTimes): where a program's time
  // goes in its real sequence, caches as cold as in training (tessera-rt
  // train --dispatch-profile, tessera-kbench --sequence).
  bool dispatch_timestamps = false;
  // Cold caches (the autotuner's timed runs): every program's dispatches in
  // groups of cold_cache_period, each group after a vkCmdFillBuffer of a
  // device-local scrub buffer of cold_cache_bytes (larger than the GPU's last
  // cache level: it evicts what the previous group left there, as the kernels
  // between two uses of a buffer do in training) and timed from the fill's
  // end to the group's end (groupTimes). 0 bytes: off.
  uint64_t cold_cache_bytes = 0;
  size_t cold_cache_period = 1;
  // Streamed weights' copies (dispatches marked `copy`) as transfers
  // (vkCmdCopyBuffer), which compute dispatches do not wait for unless they
  // read the copy; false (or TESSERA_STREAM_COPIES=dispatch): the plan's
  // copy kernels. Cold-cache runs always use the kernels.
  bool transfer_copies = true;
};

// What starting the plan cost (the `startup:` line).
struct StartupStats {
  size_t kernels = 0;    // the plan's kernels
  size_t pipelines = 0;  // pipelines created (distinct kernels)
  size_t cached = 0;     // of them, found in the pipeline cache file
  long driver_cached = -1; // of them, the driver's cache hits (VkPipelineCreationFeedback; -1: not reported)
  double pipeline_s = 0; // creating them, wall clock
  double fill_s = 0;     // ExecutorOptions::fill, wall clock (overlapped)
  double total_s = 0;    // the constructor, wall clock
  std::string cache;     // the cache file, "" when disabled
};
// "197 pipelines (190 from cache) in 0.4 s" (+ " for N kernels" when deduplicated).
std::string describePipelines(const StartupStats &s);
// "2.4 GB", "37.5 MB", "812 kB" (decimal units, as the startup line prints them).
std::string describeBytes(uint64_t bytes);
// The process's start, as near as the runtime sees it (static initialisation).
std::chrono::steady_clock::time_point processStart();

struct ProgramTiming {
  double gpu_ms = -1;  // from timestamp queries; -1 when the queue has none
  double wall_ms = 0;  // submit to fence signalled, host clock
};

class Executor {
public:
  // Throws VulkanError naming the buffer / kernel (or what options.fill throws).
  Executor(Context &ctx, const plan::Plan &plan, const ExecutorOptions &options = {});
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
  // Runs the program again dispatch by dispatch and reads back what each
  // writes (f32, f16, bf16 storage): the first dispatch whose output holds
  // a NaN or an infinity, and that buffer; nullopt when none does. For the
  // report of a non-finite loss or gradient norm (slow: only then).
  struct NonFinite {
    size_t dispatch = 0, buffer = 0;
  };
  // clearGradients: the gradient accumulators zeroed too (train_step adds
  // into them: after a non-finite step they hold what it left).
  std::optional<NonFinite> firstNonFinite(const std::string &program, bool clearGradients = false);
  // Submits the program's command buffer and waits for it.
  ProgramTiming run(const std::string &program);
  // With ExecutorOptions::dispatch_timestamps: per dispatch of the program's
  // last run, the GPU time from the previous dispatch's end (the program's
  // start for the first) to its end, in ms; empty without timestamps.
  const std::vector<double> &dispatchTimes(const std::string &program) const;
  // With ExecutorOptions::cold_cache_bytes: per group of the program's last
  // run, ms from its scrub fill's end to its last dispatch's end.
  const std::vector<double> &groupTimes(const std::string &program) const;
  // As recorded: barriers between the program's dispatches and the
  // streamed weights' copies made as transfers.
  size_t barrierCount(const std::string &program) const;
  size_t transferCount(const std::string &program) const;
  // The streamed weights' copies recorded apart from the dispatches: compute
  // segments and copy batches ordered by timeline semaphores (0 and 0 when
  // the program is one command buffer). On the device's transfer queue
  // where it has one (copiesOnTransferQueue); TESSERA_TRANSFER_QUEUE=compute
  // submits the same schedule to the compute queue (how lavapipe tests it).
  size_t segmentCount(const std::string &program) const;
  size_t batchCount(const std::string &program) const;
  bool copiesOnTransferQueue() const { return copyQueue_ && copyQueue_ == ctx_.transferQueue(); }
  // Bytes of device memory allocated for the plan's buffers.
  uint64_t allocatedBytes() const { return allocated_; }          // device buffers
  uint64_t hostAllocatedBytes() const { return hostAllocated_; }  // streamed weights in host memory
  const StartupStats &startup() const { return startup_; }
  // Pipelines created for the plan's kernels (distinct kernels).
  size_t pipelineCount() const { return pipelines_.size(); }

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
    int driverHit = -1; // VkPipelineCreationFeedback: 1 the driver found it in the cache, 0 not, -1 not reported
  };
  struct RecordedProgram {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    uint32_t firstQuery = 0;
    uint32_t queries = 0;  // start, one per dispatch (dispatch_timestamps) or two per cold group, end
    size_t barriers = 0; // between its dispatches (only where they conflict)
    size_t transfers = 0; // streamed weights' copies recorded as vkCmdCopyBuffer
    std::vector<double> dispatchMs; // of the last run (dispatch_timestamps)
    std::vector<double> groupMs;    // of the last run (cold_cache_bytes)
    std::vector<VkDescriptorSet> sets; // one per dispatch (firstNonFinite records them again)
    // The segmented schedule (copyQueue_): compute segments and copy
    // batches, in an order in which each waits only for what precedes it.
    struct Step {
      VkCommandBuffer cmd = VK_NULL_HANDLE;
      bool transfer = false; // a copy batch, else a compute segment
      uint64_t wait = 0;     // the other timeline's value this run it waits for (0: none)
      std::vector<uint32_t> dispatches; // the program's dispatches recorded in it
    };
    std::vector<Step> steps;
    size_t segments = 0, batches = 0;
  };

  void checkDeviceLimits() const;
  void allocateBuffers();
  void createPipelines(const ExecutorOptions &options);
  void createPipeline(size_t unique, VkPipelineCache cache);
  void recordPrograms(const ExecutorOptions &options);
  // TESSERA_SCHEDULE=FILE: the segmented schedules as JSON, for the tests'
  // independent check of their ordering (test_split.py).
  void writeSchedules(const std::string &path) const;
  VkResult submitSteps(RecordedProgram &rec); // the segmented schedule, fence_ on its last segment
  VkCommandBuffer beginCommandBuffer(VkCommandPool pool);
  // One command buffer recorded by `record`, submitted and waited for; `what` names it in errors.
  void submitOnce(const std::string &what, const std::function<void(VkCommandBuffer)> &record);
  void allocateScrub(uint64_t bytes);
  void release(); // destroys every Vulkan object (destructor, failed constructor)

  Context &ctx_;
  const plan::Plan &plan_;
  std::vector<size_t> root_;               // plan buffer -> buffer owning its storage
  std::vector<VkBuffer> buffers_;          // per plan buffer (aliases: VK_NULL_HANDLE)
  std::vector<uint8_t *> hostPtr_;         // per plan buffer (aliases resolved)
  std::vector<Block> blocks_;
  std::vector<size_t> blockOf_;            // per plan buffer (aliases resolved): index into blocks_
  std::vector<Pipeline> pipelines_;        // per distinct kernel
  std::vector<size_t> pipelineOf_;         // per kernel: index into pipelines_
  std::vector<size_t> firstKernel_;        // per pipeline: the first kernel using it
  std::vector<uint64_t> pipelineKey_;      // per pipeline: its key in the cache file
  StartupStats startup_;
  VkDescriptorPool descriptorPool_ = VK_NULL_HANDLE;
  VkCommandPool commandPool_ = VK_NULL_HANDLE;
  VkQueryPool queryPool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  std::map<std::string, RecordedProgram> programs_;
  uint64_t allocated_ = 0, hostAllocated_ = 0;
  VkBuffer scrub_ = VK_NULL_HANDLE; // cold_cache_bytes
  bool transferCopies_ = true;       // ExecutorOptions::transfer_copies
  // Where the segmented schedule's copy batches go: the transfer queue, the
  // compute queue (TESSERA_TRANSFER_QUEUE=compute), or none (one command buffer).
  VkQueue copyQueue_ = VK_NULL_HANDLE;
  VkCommandPool transferPool_ = VK_NULL_HANDLE;
  VkSemaphore computeTimeline_ = VK_NULL_HANDLE, transferTimeline_ = VK_NULL_HANDLE;
  uint64_t computeDone_ = 0, transferDone_ = 0; // values the timelines reached after the last run
  VkDeviceMemory scrubMemory_ = VK_NULL_HANDLE;
  uint64_t scrubBytes_ = 0;
};

} // namespace tessera::vk
