// File.h - small file helpers shared by the runtime: whole-file reads,
// atomic writes (temp file in the same directory + rename) and read-only
// memory maps. C++17 + POSIX only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::util {

// Reads the whole file; throws std::runtime_error("<path>: cannot open: <reason>").
// A file that is not a regular file (a pipe, a FIFO, a device) is read up to
// kMaxStreamBytes; beyond that it is an error.
std::vector<uint8_t> readFile(const std::string &path);
constexpr size_t kMaxStreamBytes = size_t(1) << 30;

// Writes `size` bytes to `path` atomically: the data goes to a temporary file
// next to `path` which is then renamed over it, so readers never see a
// half-written file. Throws std::runtime_error naming the path.
void writeFileAtomic(const std::string &path, const void *data, size_t size);
inline void writeFileAtomic(const std::string &path, const std::string &text) {
  writeFileAtomic(path, text.data(), text.size());
}

// A unique suffix for temporary names: ".tmp-<pid>-<random>".
std::string tempSuffix();

// Removes what writes killed mid-way left behind: the temporaries of `path`
// (`<path>.tmp-<pid>-<hex>`, files or directories) and, when `path` is a
// directory, the temporaries inside it (`*.tmp-<pid>-<hex>`), whose process
// <pid> is no longer running. Returns how many were removed; never throws.
size_t removeStaleTemporaries(const std::string &path);

// `text` with control characters (newlines, tabs, escapes) replaced by
// spaces: error messages quote names read from files, and stay one line.
std::string oneLine(std::string text);

// Whether process `pid` is running (false for pid <= 0).
bool processAlive(long pid);

// FNV-1a 64, fed incrementally (files are identified by content).
struct Fnv1a64 {
  uint64_t h = 0xcbf29ce484222325ull;
  void update(const void *data, size_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < size; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  }
  std::string hex() const; // 16 lower-case hex digits
};
inline std::string fnv1a64Hex(const void *data, size_t size) {
  Fnv1a64 f;
  f.update(data, size);
  return f.hex();
}

// Read-only view of a whole file (mmap where available).
class MappedFile {
public:
  MappedFile() = default;
  explicit MappedFile(const std::string &path); // throws "<path>: cannot open: ..."
  // Bytes already in memory, named `path` (tests and fuzz harnesses).
  static MappedFile fromBytes(const std::string &path, std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

private:
  void release();
  std::string path_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;             // true: munmap, false: owned by fallback_
  std::vector<uint8_t> fallback_;   // used for empty files / when mmap fails
};

} // namespace tessera::util
