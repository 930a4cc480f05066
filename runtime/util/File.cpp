#include "runtime/util/File.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

#if defined(_WIN32)
#include <process.h>
#define TESSERA_GETPID _getpid
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define TESSERA_GETPID getpid
#endif

namespace tessera::util {

namespace {
std::string errnoText() { return std::strerror(errno); }
} // namespace

std::vector<uint8_t> readFile(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(path + ": cannot open: is a directory");
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open: " + errnoText());
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw std::runtime_error(path + ": read error");
  return bytes;
}

std::string tempSuffix() {
  std::random_device rd;
  std::mt19937_64 gen((uint64_t(rd()) << 32) ^ rd());
  char buf[64];
  std::snprintf(buf, sizeof(buf), ".tmp-%d-%06x", int(TESSERA_GETPID()), unsigned(gen() & 0xffffff));
  return buf;
}

void writeFileAtomic(const std::string &path, const void *data, size_t size) {
  std::string tmp = path + tempSuffix();
  std::FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot write: " + errnoText());
  bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  ok = (std::fflush(f) == 0) && ok;
#if !defined(_WIN32)
  if (ok) ::fsync(fileno(f));
#endif
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::string why = errnoText();
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + why);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + ec.message());
  }
}

MappedFile::MappedFile(const std::string &path) : path_(path) {
#if defined(_WIN32)
  fallback_ = readFile(path);
  data_ = fallback_.data();
  size_ = fallback_.size();
#else
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + errnoText());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string why = errnoText();
    ::close(fd);
    throw std::runtime_error(path + ": cannot open: " + why);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot open: is a directory");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void *p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      data_ = static_cast<const uint8_t *>(p);
      mapped_ = true;
    }
  }
  ::close(fd);
  if (!mapped_) { // empty file, or a file system without mmap
    fallback_ = readFile(path);
    data_ = fallback_.data();
    size_ = fallback_.size();
  }
#endif
}

void MappedFile::release() {
#if !defined(_WIN32)
  if (mapped_ && data_) ::munmap(const_cast<uint8_t *>(data_), size_);
#endif
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
  fallback_.clear();
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile &&o) noexcept { *this = std::move(o); }

MappedFile &MappedFile::operator=(MappedFile &&o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    mapped_ = o.mapped_;
    size_ = o.size_;
    fallback_ = std::move(o.fallback_);
    data_ = mapped_ ? o.data_ : fallback_.data();
    o.data_ = nullptr;
    o.size_ = 0;
    o.mapped_ = false;
  }
  return *this;
}

} // namespace tessera::util
