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
std::vector<uint8_t> readFile(const std::string &path);

// Writes `size` bytes to `path` atomically: the data goes to a temporary file
// next to `path` which is then renamed over it, so readers never see a
// half-written file. Throws std::runtime_error naming the path.
void writeFileAtomic(const std::string &path, const void *data, size_t size);
inline void writeFileAtomic(const std::string &path, const std::string &text) {
  writeFileAtomic(path, text.data(), text.size());
}

// A unique suffix for temporary names: ".tmp-<pid>-<random>".
std::string tempSuffix();

// Read-only view of a whole file (mmap where available).
class MappedFile {
public:
  MappedFile() = default;
  explicit MappedFile(const std::string &path); // throws "<path>: cannot open: ..."
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
