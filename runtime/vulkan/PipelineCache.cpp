#include "runtime/vulkan/PipelineCache.h"

#include "runtime/util/File.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace tessera::vk {

namespace {

// File layout (little-endian): magic "TSRPIPE1", u32 key count, u32 reserved
// (0), u64 driver bytes, u64 FNV-1a 64 of everything after this header, the
// keys (u64 each), the driver's data.
constexpr char kMagic[8] = {'T', 'S', 'R', 'P', 'I', 'P', 'E', '1'};
constexpr size_t kHeaderBytes = 32;
// VkPipelineCacheHeaderVersionOne: headerSize, headerVersion, vendorID, deviceID, pipelineCacheUUID[16].
constexpr size_t kDriverHeaderBytes = 32;

uint32_t u32(const uint8_t *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t u64(const uint8_t *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
template <typename T> void put(std::vector<uint8_t> &out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

std::string hex(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof(b), "%04x", v);
  return b;
}

} // namespace

std::string defaultPipelineCacheDir() {
  const char *xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return (std::filesystem::path(xdg) / "tessera").string();
  const char *home = std::getenv("HOME");
  if (home && *home) return (std::filesystem::path(home) / ".cache" / "tessera").string();
  return "";
}

std::string resolvePipelineCacheDir(const std::optional<std::string> &flag, bool disabled) {
  if (disabled) return "";
  if (flag) return *flag;
  if (const char *env = std::getenv("TESSERA_PIPELINE_CACHE")) return env;
  return defaultPipelineCacheDir();
}

std::string pipelineCacheFileName(const VkPhysicalDeviceProperties &props) {
  return hex32(props.vendorID) + "-" + hex32(props.deviceID) + "-" + hex(props.pipelineCacheUUID, VK_UUID_SIZE) +
         ".vkpipelines";
}

std::optional<PipelineCacheFile> parsePipelineCacheFile(const std::vector<uint8_t> &bytes,
                                                        const VkPhysicalDeviceProperties &props, std::string &why) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    why = bytes.size() < kHeaderBytes ? "truncated (" + std::to_string(bytes.size()) + " bytes)"
                                      : "not a tessera pipeline cache (wrong magic)";
    return std::nullopt;
  }
  const uint64_t keys = u32(bytes.data() + 8), driverBytes = u64(bytes.data() + 16), sum = u64(bytes.data() + 24);
  if (u32(bytes.data() + 12) != 0) {
    why = "an unknown version of the format";
    return std::nullopt;
  }
  const uint64_t expected = kHeaderBytes + 8 * keys + driverBytes;
  if (driverBytes > kMaxPipelineCacheBytes || expected != bytes.size()) {
    why = "truncated or damaged (" + std::to_string(bytes.size()) + " bytes, its header says " +
          std::to_string(expected) + ")";
    return std::nullopt;
  }
  util::Fnv1a64 check;
  check.update(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes);
  if (check.h != sum) {
    why = "damaged (checksum mismatch)";
    return std::nullopt;
  }
  const uint8_t *d = bytes.data() + kHeaderBytes + 8 * keys;
  if (driverBytes < kDriverHeaderBytes || u32(d) < kDriverHeaderBytes || u32(d) > driverBytes ||
      u32(d + 4) != uint32_t(VK_PIPELINE_CACHE_HEADER_VERSION_ONE)) {
    why = "the driver's data has no VkPipelineCacheHeaderVersionOne";
    return std::nullopt;
  }
  if (u32(d + 8) != props.vendorID || u32(d + 12) != props.deviceID ||
      std::memcmp(d + 16, props.pipelineCacheUUID, VK_UUID_SIZE) != 0) {
    why = "made for another device or driver (vendor 0x" + hex32(u32(d + 8)) + ", device 0x" + hex32(u32(d + 12)) +
          ", pipelineCacheUUID " + hex(d + 16, VK_UUID_SIZE) + "; this one: vendor 0x" + hex32(props.vendorID) +
          ", device 0x" + hex32(props.deviceID) + ", " + hex(props.pipelineCacheUUID, VK_UUID_SIZE) + ")";
    return std::nullopt;
  }
  PipelineCacheFile f;
  f.keys.resize(keys);
  for (uint64_t i = 0; i < keys; ++i) f.keys[i] = u64(bytes.data() + kHeaderBytes + 8 * i);
  f.driverData.assign(d, d + driverBytes);
  return f;
}

std::vector<uint8_t> serializePipelineCacheFile(const std::vector<uint64_t> &keys,
                                                const std::vector<uint8_t> &driverData) {
  std::vector<uint8_t> body;
  body.reserve(8 * keys.size() + driverData.size());
  for (uint64_t k : keys) put(body, k);
  body.insert(body.end(), driverData.begin(), driverData.end());
  util::Fnv1a64 f;
  f.update(body.data(), body.size());
  std::vector<uint8_t> out(kMagic, kMagic + sizeof(kMagic));
  put(out, uint32_t(keys.size()));
  put(out, uint32_t(0));
  put(out, uint64_t(driverData.size()));
  put(out, f.h);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

PipelineCache::PipelineCache(const Context &ctx, std::string dir) : ctx_(ctx) {
  if (dir.empty()) return;
  path_ = (std::filesystem::path(dir) / pipelineCacheFileName(ctx.properties())).string();
  std::vector<uint8_t> initial;
  std::error_code ec;
  if (std::filesystem::exists(path_, ec)) {
    std::string why;
    std::optional<PipelineCacheFile> file;
    try {
      uint64_t size = std::filesystem::file_size(path_, ec);
      if (ec) throw std::runtime_error(ec.message());
      if (size > kMaxPipelineCacheBytes + kHeaderBytes) throw std::runtime_error("larger than the bound of 256 MiB");
      file = parsePipelineCacheFile(util::readFile(path_), ctx.properties(), why);
    } catch (const std::exception &e) {
      why = e.what();
    }
    if (file) {
      initial = std::move(file->driverData);
      loaded_.insert(file->keys.begin(), file->keys.end());
    } else {
      std::fprintf(stderr, "note: pipeline cache %s is ignored: %s; the pipelines are built afresh\n", path_.c_str(),
                   util::oneLine(why).c_str());
    }
  }
  VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  ci.initialDataSize = initial.size();
  ci.pInitialData = initial.empty() ? nullptr : initial.data();
  VkResult r = vkCreatePipelineCache(ctx.device(), &ci, nullptr, &cache_);
  if (r != VK_SUCCESS && !initial.empty()) { // a driver refusing its own data: start empty
    std::fprintf(stderr, "note: pipeline cache %s is ignored: the driver refused it (%s)\n", path_.c_str(), resultName(r));
    loaded_.clear();
    ci.initialDataSize = 0;
    ci.pInitialData = nullptr;
    r = vkCreatePipelineCache(ctx.device(), &ci, nullptr, &cache_);
  }
  if (r != VK_SUCCESS) {
    std::fprintf(stderr, "warning: no pipeline cache: vkCreatePipelineCache failed (%s)\n", resultName(r));
    cache_ = VK_NULL_HANDLE;
    loaded_.clear();
  }
}

PipelineCache::~PipelineCache() {
  if (cache_) vkDestroyPipelineCache(ctx_.device(), cache_, nullptr);
}

void PipelineCache::save(const std::vector<uint64_t> &keys) {
  if (!cache_) return;
  std::set<uint64_t> all = loaded_;
  all.insert(keys.begin(), keys.end());
  if (all.size() == loaded_.size()) return; // nothing new: the file holds every pipeline of this run
  size_t size = 0;
  std::vector<uint8_t> data;
  VkResult r = vkGetPipelineCacheData(ctx_.device(), cache_, &size, nullptr);
  if (r == VK_SUCCESS) {
    data.resize(size);
    r = vkGetPipelineCacheData(ctx_.device(), cache_, &size, data.data());
    data.resize(size);
  }
  if (r != VK_SUCCESS) {
    std::fprintf(stderr, "warning: pipeline cache %s not written: vkGetPipelineCacheData failed (%s)\n", path_.c_str(),
                 resultName(r));
    return;
  }
  try {
    std::filesystem::path file(path_);
    if (data.size() > kMaxPipelineCacheBytes) {
      // Beyond the bound (many plans on one device): the next run starts a
      // fresh file that holds its own pipelines only.
      std::error_code ec;
      std::filesystem::remove(file, ec);
      std::fprintf(stderr, "note: pipeline cache %s passed 256 MiB and was dropped; the next run starts a new one\n",
                   path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) throw std::runtime_error(file.parent_path().string() + ": cannot create: " + ec.message());
    util::removeStaleTemporaries(path_);
    std::vector<uint8_t> bytes = serializePipelineCacheFile({all.begin(), all.end()}, data);
    util::writeFileAtomic(path_, bytes.data(), bytes.size());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "warning: pipeline cache not written (%s); the run goes on, the next one builds its "
                         "pipelines again (--pipeline-cache DIR chooses another folder, --no-pipeline-cache none)\n",
                 util::oneLine(e.what()).c_str());
  }
}

} // namespace tessera::vk
