// Bench.cpp - checked and timed runs of one problem's candidates (Bench.h).
//
// Each candidate runs in an executor of its own, built from the problem's
// plan with only that candidate's kernels and these programs:
//   check   the candidate's dispatches once (inputs refilled, outputs
//           poisoned with NaN before it, compared with the reference after)
//   x<N>    the dispatches N times over (N = 1, 4, 16, 64, 256): a timed
//           run picks the N that makes it last about target_ms
// so that a slow pipeline compile of one candidate costs nothing to the
// others, and a candidate the device refuses fails alone.
#include "autotune/Bench.h"

#include "runtime/util/Half.h"
#include "runtime/plan/Elements.h"
#include "runtime/vulkan/Executor.h"
#include "runtime/weights/QuantizedWeights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include "runtime/weights/QuantizedWeights.h"

#include <chrono>
#include <mutex>
#include <random>
#include <thread>

namespace tessera::autotune {

namespace {

const int kRepsChoices[] = {1, 4, 16, 64, 256};
// Repetitions of a cold timed run (each after a scrub fill) at most.
constexpr int kColdMaxReps = 16;

std::string programName(int reps) { return "x" + std::to_string(reps); }

// Element i of a buffer as a double (NaN stays NaN), and back.
double element(const uint8_t *data, plan::DType t, size_t i) { return plan::readElement(data, t, i); }
void store(uint8_t *data, plan::DType t, size_t i, double v) { plan::writeElement(data, t, i, v); }

// Inputs repeat with a prime period of elements: large buffers (a logits
// chunk holds ~10^9 values) are filled in milliseconds, and no row or tile of
// a power-of-two shape sees the same values as its neighbour.
constexpr size_t kFillPeriod = 1048573;

std::vector<uint8_t> makeFill(const plan::Buffer &b, const BufferFill &f, std::mt19937_64 &rng) {
  if (plan::isQuantized(b.dtype)) { // a block-quantised weight: valid blocks of signed values
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    uint64_t n = 1;
    for (int64_t d : b.shape) n *= uint64_t(d);
    std::vector<float> v(n);
    for (float &x : v) x = float((0.25 + 0.75 * unit(rng)) * (unit(rng) < 0.5 ? -1 : 1));
    std::vector<uint8_t> out(b.bytes, 0);
    weights::quantizeInto(b, v.data(), out.data());
    return out;
  }
  std::vector<uint8_t> out(b.bytes, 0xff); // scratch and outputs: NaN (or -1) everywhere
  const size_t width = plan::bytesPerElement(b.dtype);
  const size_t n = b.bytes / width;
  if (f.kind == BufferFill::None)
    return out;
  const size_t period = f.kind == BufferFill::Values ? n : std::min(n, kFillPeriod);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (size_t i = 0; i < period; ++i) {
    double v = 0;
    switch (f.kind) {
    case BufferFill::Signed: v = (0.25 + 0.75 * unit(rng)) * (unit(rng) < 0.5 ? -1 : 1); break;
    case BufferFill::Positive: v = 0.5 + 1.5 * unit(rng); break;
    case BufferFill::Index: v = double(f.lo + int64_t(unit(rng) * double(f.hi - f.lo + 1))); break;
    case BufferFill::Labels:
      v = unit(rng) < 0.125 ? double(f.ignore) : double(f.lo + int64_t(unit(rng) * double(f.hi - f.lo + 1)));
      break;
    case BufferFill::Bool: v = unit(rng) < 0.5 ? 0 : 1; break;
    case BufferFill::Values: v = i < f.values.size() ? f.values[i] : 0; break;
    case BufferFill::None: break;
    }
    if (f.kind == BufferFill::Index || f.kind == BufferFill::Labels)
      v = std::min<double>(v, double(f.hi == f.lo ? f.lo : f.hi)); // unit(rng) < 1, but be exact
    store(out.data(), b.dtype, i, v);
  }
  for (size_t done = period; done < n; done += period) // the rest: copies of the first period
    std::memcpy(out.data() + done * width, out.data(), std::min(period, n - done) * width);
  return out;
}

// Runs body(begin, end) over [0, n) on the host's cores (comparisons of
// outputs with ~10^9 elements).
template <typename Body> void parallelFor(size_t n, Body body) {
  const size_t threads = n < (size_t(1) << 20) ? 1 : std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  if (threads == 1)
    return body(size_t(0), n);
  std::vector<std::thread> pool;
  const size_t per = (n + threads - 1) / threads;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { body(std::min(n, t * per), std::min(n, (t + 1) * per)); });
  for (std::thread &t : pool)
    t.join();
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

uint64_t coldCacheBytes(const vk::DeviceInfo &device) {
  if (device.type == "CPU")
    return 0;
  uint64_t bytes = uint64_t(256) << 20;
  if (device.deviceLocalHeap)
    bytes = std::min(bytes, device.deviceLocalHeap / 16);
  return bytes & ~uint64_t(3);
}

double robustMedian(std::vector<double> &s, int *rejected) {
  if (rejected)
    *rejected = 0;
  if (s.empty())
    return 0;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  double m = median(s);
  std::vector<double> dev;
  for (double v : s)
    dev.push_back(std::abs(v - m));
  double mad = median(dev);
  double limit = m + 3 * std::max(mad, 0.01 * m);
  std::vector<double> kept;
  for (double v : s)
    if (v <= limit)
      kept.push_back(v);
  if (rejected)
    *rejected = int(s.size() - kept.size());
  s = kept;
  return median(kept);
}

struct ProblemBench::Impl {
  vk::Context &ctx;
  const TuningPlan &t;
  const TuneProblem &problem;
  std::string origin;
  BenchOptions options;
  plan::Plan base;
  std::vector<std::vector<uint8_t>> inputs; // per buffer: what it holds before a checked run
  std::vector<std::vector<uint8_t>> expected; // per compared buffer: the reference's output (raw)
  std::vector<double> expectedScale;         // per compared buffer: max |finite reference value|
  double fillSeconds = 0;                    // making the inputs (reported with the reference)
  Measurement ref;
  bool refDone = false;

  Impl(vk::Context &c, const TuningPlan &tp, size_t p, const std::string &o, BenchOptions opt)
      : ctx(c), t(tp), problem(tp.problems.at(p)), origin(o), options(opt) {
    std::string where = origin + ": problems[" + std::to_string(p) + "]";
    try {
      base = t.problemPlan(p, origin);
    } catch (const plan::PlanError &e) {
      throw TuningPlanError(e.what());
    }
    if (base.buffers.size() != problem.buffers.size())
      throw TuningPlanError(where + ": its plan has " + std::to_string(base.buffers.size()) + " buffers, buffers lists " +
                            std::to_string(problem.buffers.size()));
    auto needProgram = [&](const std::string &name) {
      if (!base.program(name))
        throw TuningPlanError(where + ": its plan has no program '" + name + "'");
    };
    needProgram(problem.reference.program);
    for (const TuneCandidate &c : problem.candidates)
      needProgram(c.program);
    auto t0 = std::chrono::steady_clock::now();
    std::mt19937_64 rng(options.seed ^ (uint64_t(p) * 0x9E3779B97F4A7C15ull));
    for (size_t i = 0; i < base.buffers.size(); ++i)
      inputs.push_back(makeFill(base.buffers[i], problem.buffers[i].fill, rng));
    expected.resize(base.buffers.size());
    expectedScale.resize(base.buffers.size(), 0);
    fillSeconds = secondsSince(t0);
  }

  bool compared(size_t i) const { return problem.buffers[i].role == "output" || problem.buffers[i].role == "inout"; }

  // The problem's plan reduced to one program's kernels, with check and x<N> programs.
  plan::Plan subPlan(const std::string &program) const {
    plan::Plan sub;
    sub.buffers = base.buffers;
    const plan::Program *prog = base.program(program);
    std::vector<int64_t> remap(base.kernels.size(), -1);
    plan::Program check;
    check.name = "check";
    for (plan::Dispatch d : prog->dispatches) {
      if (remap[d.kernel] < 0) {
        plan::Kernel k = base.kernels[d.kernel];
        k.spirv_blob = uint32_t(sub.blobs.size());
        sub.blobs.push_back(base.blobs[base.kernels[d.kernel].spirv_blob]);
        remap[d.kernel] = int64_t(sub.kernels.size());
        sub.kernels.push_back(std::move(k));
      }
      d.kernel = uint32_t(remap[d.kernel]);
      check.dispatches.push_back(std::move(d));
    }
    sub.programs.push_back(check);
    for (int reps : kRepsChoices) {
      plan::Program x;
      x.name = programName(reps);
      for (int r = 0; r < reps; ++r)
        x.dispatches.insert(x.dispatches.end(), check.dispatches.begin(), check.dispatches.end());
      sub.programs.push_back(std::move(x));
    }
    return sub;
  }

  void load(vk::Executor &exec) {
    for (size_t i = 0; i < base.buffers.size(); ++i)
      if (base.buffers[i].alias_of < 0)
        std::memcpy(exec.data(i), inputs[i].data(), inputs[i].size());
  }

  // Runs `program`'s check once; fills `out` with the compared buffers.
  double checkedRun(vk::Executor &exec) {
    load(exec);
    vk::ProgramTiming timing = exec.run("check");
    return timing.gpu_ms >= 0 ? timing.gpu_ms : timing.wall_ms;
  }

  // Times the candidate's dispatches: the repetition count is chosen from
  // one timed run, then `repeats` runs.
  void time(vk::Executor &exec, double checkMs, Measurement &m) {
    const bool cold = options.cold_cache_bytes > 0;
    const int maxReps = cold ? kColdMaxReps : kRepsChoices[std::size(kRepsChoices) - 1];
    int reps = 1;
    double per = std::max(checkMs, 1e-3);
    for (int r : kRepsChoices)
      if (double(r) * per <= options.target_ms && r <= maxReps)
        reps = r;
    auto run = [&](int n) {
      vk::ProgramTiming timing = exec.run(programName(n));
      const std::vector<double> &groups = exec.groupTimes(programName(n));
      if (cold && !groups.empty()) { // the dispatches only, not the fills between them
        double sum = 0;
        for (double g : groups)
          sum += g;
        return sum * 1000.0 / double(groups.size());
      }
      return (timing.gpu_ms >= 0 ? timing.gpu_ms : timing.wall_ms) * 1000.0 / n;
    };
    // One warm-up at this repetition count (a first check run may include a
    // lazy shader compile), which also refines it.
    double warm = run(reps);
    for (int r : kRepsChoices)
      if (r > reps && double(r) * warm / 1000.0 <= options.target_ms && r <= maxReps)
        reps = r;
    // Keep the device busy for warm_ms before the timed runs: between two
    // candidates it idles (their outputs are compared on the host), and a GPU
    // coming back from idle clocks times its first milliseconds slow.
    double busy = warm * reps / 1000.0;
    for (int i = 0; i < 32 && busy < options.warm_ms; ++i)
      busy += run(reps) * reps / 1000.0;
    m.reps = reps;
    for (int i = 0; i < options.repeats; ++i)
      m.samples.push_back(run(reps));
    m.us = robustMedian(m.samples, &m.rejected_samples);
  }
};

ProblemBench::ProblemBench(vk::Context &ctx, const TuningPlan &t, size_t problem, const std::string &origin,
                           BenchOptions options)
    : impl_(std::make_unique<Impl>(ctx, t, problem, origin, options)) {}

ProblemBench::~ProblemBench() = default;

std::string ProblemBench::unsupported(size_t c) const {
  const KernelConfig &cfg = impl_->problem.candidates.at(c).config;
  const vk::DeviceInfo &d = impl_->ctx.info();
  if (cfg.threads() > int64_t(d.maxWorkgroupInvocations))
    return std::to_string(cfg.threads()) + " threads per workgroup, the device allows " +
           std::to_string(d.maxWorkgroupInvocations);
  if (cfg.kind == ConfigKind::Matmul)
    if (const MatmulKindInfo *k = findMatmulKind(cfg.matmul.kind); k && k->shared_bytes(cfg.matmul) > d.maxSharedMemory)
      return std::to_string(k->shared_bytes(cfg.matmul)) + " bytes of shared memory, the device has " +
             std::to_string(d.maxSharedMemory);
  return "";
}

const Measurement &ProblemBench::reference() {
  Impl &I = *impl_;
  if (I.refDone)
    return I.ref;
  I.refDone = true;
  try {
    auto t0 = std::chrono::steady_clock::now();
    plan::Plan sub = I.subPlan(I.problem.reference.program);
    vk::Executor exec(I.ctx, sub);
    I.ref.phases["executor"] = secondsSince(t0);
    auto t1 = std::chrono::steady_clock::now();
    double ms = I.checkedRun(exec);
    I.ref.phases["check"] = secondsSince(t1);
    auto t2 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < sub.buffers.size(); ++i) {
      if (!I.compared(i))
        continue;
      const plan::Buffer &b = sub.buffers[i];
      const size_t n = b.bytes / plan::bytesPerElement(b.dtype);
      // Through host-cached memory: the mapping may be uncached device memory
      // (discrete GPUs), where reads cross the bus a line at a time.
      I.expected[i].resize(b.bytes);
      exec.read(i, I.expected[i].data(), b.bytes);
      const uint8_t *data = I.expected[i].data();
      std::mutex mu;
      double &scale = I.expectedScale[i];
      parallelFor(n, [&](size_t begin, size_t end) {
        double local = 0;
        for (size_t e = begin; e < end; ++e)
          if (double v = element(data, b.dtype, e); std::isfinite(v))
            local = std::max(local, std::abs(v));
        std::lock_guard<std::mutex> lock(mu);
        scale = std::max(scale, local);
      });
    }
    I.ref.phases["read"] = secondsSince(t2);
    I.ref.phases["fill"] = I.fillSeconds;
    I.ref.status = "ok";
    I.ref.us = ms * 1000.0;
  } catch (const std::exception &e) {
    I.ref.status = "failed";
    I.ref.reason = std::string("the reference kernel failed: ") + e.what();
  }
  return I.ref;
}

Measurement ProblemBench::measure(size_t c) {
  Impl &I = *impl_;
  Measurement m;
  if (std::string why = unsupported(c); !why.empty()) {
    m.status = "unsupported";
    m.reason = why;
    return m;
  }
  const Measurement &ref = reference();
  if (ref.status != "ok") {
    m.status = "failed";
    m.reason = ref.reason;
    return m;
  }
  auto t0 = std::chrono::steady_clock::now();
  plan::Plan sub = I.subPlan(I.problem.candidates.at(c).program);
  std::unique_ptr<vk::Executor> exec;
  try {
    vk::ExecutorOptions eo;
    eo.cold_cache_bytes = I.options.cold_cache_bytes;
    eo.cold_cache_period = std::max<size_t>(1, sub.program("check")->dispatches.size());
    exec = std::make_unique<vk::Executor>(I.ctx, sub, eo);
    m.phases["executor"] = secondsSince(t0);
  } catch (const vk::VulkanError &e) {
    std::string what = e.what();
    if (what.find("DEVICE_LOST") != std::string::npos)
      throw; // the device is gone: the supervisor restarts the tuning process
    m.status = "failed";
    m.reason = what;
    return m;
  }
  double checkMs = 0;
  auto t1 = std::chrono::steady_clock::now();
  try {
    checkMs = I.checkedRun(*exec);
    m.phases["check"] = secondsSince(t1);
  } catch (const vk::VulkanError &e) {
    if (std::string(e.what()).find("DEVICE_LOST") != std::string::npos)
      throw;
    m.status = "failed";
    m.reason = e.what();
    return m;
  }
  // Compare with the reference, element by element (on all host cores).
  auto t2 = std::chrono::steady_clock::now();
  double worst = 0;
  std::string where;
  for (size_t i = 0; i < sub.buffers.size(); ++i) {
    if (!I.compared(i))
      continue;
    const plan::Buffer &b = sub.buffers[i];
    std::vector<uint8_t> host(b.bytes);
    exec->read(i, host.data(), b.bytes); // through host-cached memory (Executor::read)
    const uint8_t *data = host.data(), *want = I.expected[i].data();
    const double scale = I.expectedScale[i];
    const size_t n = b.bytes / plan::bytesPerElement(b.dtype);
    std::mutex mu;
    parallelFor(n, [&](size_t begin, size_t end) {
      double localWorst = 0;
      size_t at = SIZE_MAX;
      for (size_t e = begin; e < end; ++e) {
        double got = element(data, b.dtype, e), r = element(want, b.dtype, e);
        double err;
        if (std::isnan(r) || std::isnan(got))
          err = std::isnan(r) && std::isnan(got) ? 0 : INFINITY;
        else if (std::isinf(r) || std::isinf(got))
          err = r == got ? 0 : INFINITY;
        else
          err = std::abs(got - r) / (I.problem.rtol * std::abs(r) + I.problem.atol * scale + 1e-30);
        if (err > localWorst)
          localWorst = err, at = e;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (at != SIZE_MAX && (localWorst > worst || (localWorst == worst && where.empty()))) {
        worst = localWorst;
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s[%zu] = %.6g, reference %.6g", b.name.c_str(), at,
                      element(data, b.dtype, at), element(want, b.dtype, at));
        where = buf;
      }
    });
  }
  m.phases["compare"] = secondsSince(t2);
  m.max_error = worst;
  if (!(worst <= 1.0)) {
    m.status = "wrong";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3g", worst);
    m.reason = "output differs from the reference kernel's (" + where + "; " + buf + "x the tolerance)";
    return m;
  }
  auto t3 = std::chrono::steady_clock::now();
  try {
    I.time(*exec, checkMs, m);
    m.phases["time"] = secondsSince(t3);
  } catch (const vk::VulkanError &e) {
    if (std::string(e.what()).find("DEVICE_LOST") != std::string::npos)
      throw;
    m.status = "failed";
    m.reason = e.what();
    return m;
  }
  m.status = "ok";
  return m;
}

} // namespace tessera::autotune
