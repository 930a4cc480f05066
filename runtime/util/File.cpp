#include "runtime/util/File.h"

#include <cctype>
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
#include <signal.h>
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
  // A pipe or device has no size: read it up to a bound (/dev/zero never ends).
  bool regular = true;
#if !defined(_WIN32)
  struct stat st;
  regular = ::fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
#endif
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (!regular && bytes.size() + n > kMaxStreamBytes) {
      std::fclose(f);
      throw std::runtime_error(path + ": is not a regular file and holds more than " +
                               std::to_string(kMaxStreamBytes >> 20) + " MiB");
    }
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
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

std::string Fnv1a64::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)h);
  return buf;
}

std::string oneLine(std::string text) {
  for (char &c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return text;
}

bool processAlive(long pid) {
#if defined(_WIN32)
  return pid > 0;
#else
  return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
#endif
}

namespace {
// The pid of a temporary name "<base>.tmp-<pid>-<hex>" of `base`, or -1.
long temporaryPid(const std::string &name, const std::string &base) {
  const std::string mark = base + ".tmp-";
  if (name.compare(0, mark.size(), mark) != 0) return -1;
  size_t p = mark.size(), digits = 0;
  long pid = 0;
  while (p < name.size() && name[p] >= '0' && name[p] <= '9' && digits < 10) pid = pid * 10 + (name[p++] - '0'), ++digits;
  if (!digits || p >= name.size() || name[p] != '-' || p + 1 == name.size()) return -1;
  for (size_t i = p + 1; i < name.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return -1;
  return pid;
}
} // namespace

size_t removeStaleTemporaries(const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t removed = 0;
  auto sweep = [&](const fs::path &dir, const std::string &base) {
    for (fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      std::string prefix = base;
      if (prefix.empty()) { // any "<x>.tmp-<pid>-<hex>" inside the directory
        size_t mark = name.rfind(".tmp-");
        if (mark == std::string::npos || mark == 0) continue;
        prefix = name.substr(0, mark);
      }
      long pid = temporaryPid(name, prefix);
      if (pid < 0 || processAlive(pid)) continue;
      std::error_code rec;
      if (fs::remove_all(it->path(), rec) > 0 && !rec) ++removed;
    }
  };
  fs::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path(); // "dir/" -> "dir"
  sweep(p.parent_path(), p.filename().string());
  if (fs::is_directory(p, ec)) sweep(p, "");
  return removed;
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

MappedFile MappedFile::fromBytes(const std::string &path, std::vector<uint8_t> bytes) {
  MappedFile f;
  f.path_ = path;
  f.fallback_ = std::move(bytes);
  f.data_ = f.fallback_.data();
  f.size_ = f.fallback_.size();
  return f;
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
