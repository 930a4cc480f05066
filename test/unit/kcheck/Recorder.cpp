#include "test/unit/kcheck/Recorder.h"

#include "runtime/util/File.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace tessera::kcheck {

namespace {

// Draws smaller than this are stored as bytes (not worth the bookkeeping).
constexpr int64_t kMinGenerated = 4096;

struct Uniform {
  uint64_t seed;
  int64_t n;
  double lo, hi;
};

uint64_t hashBytes(const void *p, size_t n) {
  const uint8_t *b = static_cast<const uint8_t *>(p);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

std::multimap<uint64_t, Uniform> &uniforms() {
  static std::multimap<uint64_t, Uniform> m;
  return m;
}

bool sameValues(const std::vector<double> &a, const std::vector<double> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

void writeDoubles(const fs::path &path, const std::vector<double> &v) {
  util::writeFileAtomic(path.string(), v.data(), v.size() * sizeof(double));
}

} // namespace

std::string exportDir() {
  const char *d = std::getenv("TESSERA_KCHECK_EXPORT");
  return d ? d : "";
}

void noteUniform(uint64_t seed, int64_t n, double lo, double hi, const std::vector<float> &values) {
  if (n < kMinGenerated || exportDir().empty()) return;
  uniforms().emplace(hashBytes(values.data(), values.size() * 4), Uniform{seed, n, lo, hi});
}

Recorder::Recorder(std::string dir, std::string name, const plan::Plan &plan, std::string profile,
                   std::function<const void *(size_t)> data, bool executed)
    : dir_(std::move(dir)), name_(std::move(name)), profile_(std::move(profile)), plan_(plan),
      data_(std::move(data)), executed_(executed) {
  snapshot_.resize(plan_.buffers.size());
  afterRun();
}

Recorder::~Recorder() {
  if (written_) return;
  try {
    write();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "kcheck export of %s failed: %s\n", name_.c_str(), e.what());
  }
}

void Recorder::afterRun() {
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const plan::Buffer &b = plan_.buffers[i];
    if (b.alias_of >= 0) continue;
    const uint8_t *p = static_cast<const uint8_t *>(data_(i));
    snapshot_[i].assign(p, p + b.bytes);
  }
}

void Recorder::beforeRun(const std::string &program) {
  PendingStep step;
  step.program = program;
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const plan::Buffer &b = plan_.buffers[i];
    if (b.alias_of >= 0 || b.bytes == 0) continue;
    const uint8_t *p = static_cast<const uint8_t *>(data_(i));
    if (std::memcmp(p, snapshot_[i].data(), b.bytes) == 0) continue;
    PendingInput in;
    in.input.buffer = int64_t(i);
    in.input.name = b.name;
    bool generated = false;
    if (b.dtype == plan::DType::F32 && int64_t(b.bytes / 4) >= kMinGenerated) {
      auto range = uniforms().equal_range(hashBytes(p, b.bytes));
      for (auto it = range.first; it != range.second && !generated; ++it) {
        const Uniform &u = it->second;
        if (uint64_t(u.n) * 4 != b.bytes) continue;
        std::vector<float> v = uniformFloats(u.seed, u.n, u.lo, u.hi);
        if (std::memcmp(v.data(), p, b.bytes) != 0) continue;
        in.input.uniform = true;
        in.input.seed = u.seed;
        in.input.count = u.n;
        in.input.lo = u.lo;
        in.input.hi = u.hi;
        generated = true;
      }
    }
    if (!generated) {
      in.input.file = "s" + std::to_string(steps_.size()) + "-in" + std::to_string(i) + ".bin";
      in.bytes.assign(p, p + b.bytes);
    }
    step.inputs.push_back(std::move(in));
  }
  steps_.push_back(std::move(step));
  reads_.clear();
}

void Recorder::noteRead(size_t buffer, int64_t offset, std::vector<double> values) {
  reads_.push_back(Read{buffer, offset, std::move(values)});
}

std::string Recorder::check(const std::vector<double> &got, const std::vector<double> &expected,
                            const std::vector<double> &scale, double rel, double abs, const std::string &what) {
  if (steps_.empty()) return "a check before any run";
  if (expected.size() != got.size()) return "the reference has another length than the result";
  for (auto it = reads_.rbegin(); it != reads_.rend(); ++it) {
    if (it->claimed || it->values.size() != got.size()) continue;
    if (executed_ && !sameValues(it->values, got)) continue;
    it->claimed = true;
    PendingStep &s = steps_.back();
    PendingCheck pc;
    size_t k = s.checks.size();
    std::string stem = "s" + std::to_string(steps_.size() - 1) + "-c" + std::to_string(k);
    pc.check.buffer = int64_t(it->buffer);
    pc.check.name = plan_.buffers[it->buffer].name;
    pc.check.offset = it->offset;
    pc.check.count = int64_t(got.size());
    pc.check.expected = stem + ".f64";
    if (!scale.empty()) pc.check.scale = stem + "-scale.f64";
    pc.check.rel = rel;
    pc.check.abs = abs;
    pc.check.what = what;
    pc.expected = expected;
    pc.scale = scale;
    s.checks.push_back(std::move(pc));
    return "";
  }
  return "no get() of this run returned these " + std::to_string(got.size()) +
         " values (read the result with GpuRun::get just before checking it)";
}

void Recorder::write() {
  written_ = true;
  if (steps_.empty()) return; // never ran: nothing to check
  fs::path d = fs::path(dir_) / name_;
  fs::remove_all(d);
  fs::create_directories(d);
  Case c;
  c.name = name_;
  c.profile = profile_;
  std::set<std::string> configs;
  for (const plan::Kernel &k : plan_.kernels)
    if (!k.config.empty()) configs.insert(k.config);
  c.configs.assign(configs.begin(), configs.end());
  for (const PendingStep &ps : steps_) {
    Step s;
    s.program = ps.program;
    for (const PendingInput &in : ps.inputs) {
      if (!in.input.uniform) util::writeFileAtomic((d / in.input.file).string(), in.bytes.data(), in.bytes.size());
      s.inputs.push_back(in.input);
    }
    for (const PendingCheck &pc : ps.checks) {
      writeDoubles(d / pc.check.expected, pc.expected);
      if (!pc.check.scale.empty()) writeDoubles(d / pc.check.scale, pc.scale);
      s.checks.push_back(pc.check);
    }
    c.steps.push_back(std::move(s));
  }
  plan::writePlanFile(plan_, (d / c.plan).string());
  writeCase(c, d.string());
}

} // namespace tessera::kcheck
