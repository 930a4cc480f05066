// PipelineCache.h - a VkPipelineCache kept on disk between runs, so that a
// second run of a plan skips the driver's shader compilation.
//
// One file per device in a cache folder (docs/runtime.md): its name carries
// the vendor and device ids and the driver's pipelineCacheUUID, and its
// content is checked before the driver sees it: our header (magic, version,
// lengths, an FNV-1a checksum), then the driver's
// VkPipelineCacheHeaderVersionOne (header version, vendorID, deviceID,
// pipelineCacheUUID), which must match the open device. A file that fails a
// check (truncated, damaged, another device's or driver's) is ignored with
// one note; a folder that cannot be written is a warning: the run goes on.
//
// Beside the driver's data the file keeps the keys of the pipelines created
// with it (pipelineKey), so a run can say how many of its pipelines came
// from the cache whatever the driver reports.
#pragma once

#include "runtime/vulkan/Context.h"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tessera::vk {

// Files beyond this are neither read nor written (the next run starts afresh).
constexpr uint64_t kMaxPipelineCacheBytes = uint64_t(256) << 20;

// $XDG_CACHE_HOME/tessera, else $HOME/.cache/tessera, else "" (no cache).
std::string defaultPipelineCacheDir();

// The cache folder a run uses: --no-pipeline-cache (disabled) -> "";
// --pipeline-cache DIR -> DIR ("" disables); else TESSERA_PIPELINE_CACHE when
// set ("" disables); else defaultPipelineCacheDir().
std::string resolvePipelineCacheDir(const std::optional<std::string> &flag, bool disabled);

// "<vendor>-<device>-<pipelineCacheUUID>.vkpipelines" (hex), the device's file in the folder.
std::string pipelineCacheFileName(const VkPhysicalDeviceProperties &props);

// What a cache file holds once checked against a device.
struct PipelineCacheFile {
  std::vector<uint64_t> keys; // pipelines created with it
  std::vector<uint8_t> driverData; // vkGetPipelineCacheData's bytes
};
// The file's content, or nullopt with `why` (one phrase) when it must not be
// handed to this device's driver.
std::optional<PipelineCacheFile> parsePipelineCacheFile(const std::vector<uint8_t> &bytes,
                                                        const VkPhysicalDeviceProperties &props, std::string &why);
// The bytes of a file holding `keys` and `driverData`.
std::vector<uint8_t> serializePipelineCacheFile(const std::vector<uint64_t> &keys,
                                                const std::vector<uint8_t> &driverData);

class PipelineCache {
public:
  // dir "": no file, and handle() is VK_NULL_HANDLE. Otherwise loads the
  // device's file when there is a valid one (else one note on stderr).
  PipelineCache(const Context &ctx, std::string dir);
  ~PipelineCache();
  PipelineCache(const PipelineCache &) = delete;
  PipelineCache &operator=(const PipelineCache &) = delete;

  VkPipelineCache handle() const { return cache_; }
  bool enabled() const { return cache_ != VK_NULL_HANDLE; }
  const std::string &path() const { return path_; }
  // Whether a pipeline of this key was created with the loaded file.
  bool holds(uint64_t key) const { return loaded_.count(key) != 0; }
  // Writes the driver's data back (atomically) when `keys` adds to the file;
  // a failure is one warning on stderr, never an exception.
  void save(const std::vector<uint64_t> &keys);

private:
  const Context &ctx_;
  std::string path_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::set<uint64_t> loaded_;
};

} // namespace tessera::vk
