// tessera-kbench: times every kernel dispatch of a plan's program on a Vulkan
// device, one kernel at a time, to see where a step's time goes (and, later,
// to let `tessera tune` compare profile variants).
//
//   tessera-kbench PLAN [--program train_step] [--repeat 10] [--device 0] [--top 25]
//
// Runtime only (no MLIR): it rewrites the plan's programs into one program
// per distinct dispatch (same kernel, buffers and groups), each repeating that
// dispatch --repeat times, runs each a few times and reports the best GPU
// time per dispatch. Buffers hold zeros, or with --random uniform values in
// [-1, 1) in their storage type (zeros can run faster than real data on
// tensor cores). Output: one line per distinct dispatch, slowest total
// first, then totals per kernel family and the measured whole program; with
// --names also one line per dispatch in program order: the name of its last
// bound buffer (the result), us/dispatch and the kernel's config.
// --sequence FILE instead runs the whole program --repeat times with a
// timestamp after every dispatch and writes each dispatch's median time in
// its real sequence (cold caches, as in training) to FILE
// (runtime/train/DispatchProfile.h).
#include "runtime/plan/Plan.h"
#include "runtime/train/DispatchProfile.h"
#include "runtime/vulkan/Context.h"
#include "runtime/vulkan/Executor.h"

#include "runtime/util/Half.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace tessera;

namespace {

struct Entry {
  plan::Dispatch dispatch;
  int count = 0;    // occurrences in the program
  double us = 0;    // best GPU time per dispatch
};

std::string family(const std::string &kernel) {
  size_t u = kernel.rfind('_');
  return u == std::string::npos ? kernel : kernel.substr(0, u);
}

int usage() {
  std::fprintf(stderr, "usage: tessera-kbench PLAN [--program NAME] [--repeat N] [--device N] [--top N] [--random] [--names] [--sequence FILE]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string planPath, programName = "train_step";
  int repeat = 10, device = 0, top = 25;
  bool random = false, names = false;
  std::string sequence;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    const char *v = nullptr;
    if (a == "--program" && (v = next()))
      programName = v;
    else if (a == "--repeat" && (v = next()))
      repeat = std::max(1, std::atoi(v));
    else if (a == "--device" && (v = next()))
      device = std::atoi(v);
    else if (a == "--top" && (v = next()))
      top = std::atoi(v);
    else if (a == "--random")
      random = true;
    else if (a == "--names")
      names = true;
    else if (a == "--sequence" && (v = next()))
      sequence = v;
    else if (a.size() && a[0] != '-' && planPath.empty())
      planPath = a;
    else
      return usage();
  }
  if (planPath.empty())
    return usage();
  try {
    plan::Plan original = plan::readPlanFile(planPath);
    const plan::Program *prog = original.program(programName);
    if (!prog)
      throw std::runtime_error(planPath + ": no program '" + programName + "'");

    // Distinct dispatches, in first-seen order.
    std::vector<Entry> entries;
    std::map<std::string, size_t> index;
    for (const plan::Dispatch &d : prog->dispatches) {
      std::string key = std::to_string(d.kernel) + ":";
      for (uint32_t b : d.bindings)
        key += std::to_string(b) + ",";
      key += std::to_string(d.groups[0]) + "x" + std::to_string(d.groups[1]) + "x" +
             std::to_string(d.groups[2]);
      auto [it, fresh] = index.emplace(key, entries.size());
      if (fresh)
        entries.push_back({d, 0, 0});
      entries[it->second].count++;
    }

    plan::Plan bench = original;
    bench.programs.clear();
    bench.programs.push_back(*prog); // the whole program, for comparison
    for (size_t i = 0; i < entries.size() && sequence.empty(); ++i) {
      plan::Program p;
      p.name = "k" + std::to_string(i);
      p.dispatches.assign(repeat, entries[i].dispatch);
      bench.programs.push_back(std::move(p));
    }

    vk::Context ctx(device);
    if (!ctx.info().timestamps)
      throw std::runtime_error(ctx.info().name + " has no compute timestamps");
    vk::ExecutorOptions eo;
    eo.dispatch_timestamps = !sequence.empty();
    vk::Executor exec(ctx, bench, eo);
    // --random: uniform values in [-1, 1) from one pool per element type,
    // copied into each buffer at a rotating offset. Drawing every element
    // (a Qwen3-0.6B plan holds ~2 G of them) took minutes on the GPU
    // machine's host; the kernels' times do not depend on the values being
    // independent, only on them being ordinary numbers.
    constexpr size_t kPool = size_t(1) << 20;
    std::vector<float> poolF32(kPool);
    std::vector<uint16_t> poolF16(kPool), poolBf16(kPool);
    {
      std::mt19937 gen(7);
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (size_t e = 0; e < kPool; ++e) {
        poolF32[e] = uniform(gen);
        poolF16[e] = util::floatToHalf(poolF32[e]);
        poolBf16[e] = util::floatToBf16(poolF32[e]);
      }
    }
    auto fill = [&](void *dst, uint64_t n, const auto &pool, size_t start) {
      using T = typename std::decay_t<decltype(pool)>::value_type;
      T *out = static_cast<T *>(dst);
      for (uint64_t e = 0; e < n;) {
        size_t from = (start + e) % kPool, run = std::min<uint64_t>(kPool - from, n - e);
        std::memcpy(out + e, pool.data() + from, run * sizeof(T));
        e += run;
      }
    };
    for (size_t i = 0; i < bench.buffers.size(); ++i) {
      const plan::Buffer &b = bench.buffers[i];
      if (b.alias_of >= 0)
        continue;
      if (!random || b.kind == plan::BufferKind::Input || b.kind == plan::BufferKind::HParams) {
        std::memset(exec.data(i), 0, b.bytes);
        continue;
      }
      uint64_t n = b.bytes / plan::bytesPerElement(b.dtype);
      size_t start = i * 7919 % kPool;
      if (b.dtype == plan::DType::F32)
        fill(exec.data(i), n, poolF32, start);
      else if (b.dtype == plan::DType::F16)
        fill(exec.data(i), n, poolF16, start);
      else if (b.dtype == plan::DType::BF16)
        fill(exec.data(i), n, poolBf16, start);
      else
        std::memset(exec.data(i), 0, b.bytes);
    }

    double whole = 1e30;
    for (int r = 0; r < 3; ++r)
      whole = std::min(whole, exec.run(programName).gpu_ms);
    if (!sequence.empty()) {
      train::DispatchProfile profile(bench, programName);
      std::vector<double> runs;
      for (int r = 0; r < repeat; ++r) {
        runs.push_back(exec.run(programName).gpu_ms);
        profile.add(exec.dispatchTimes(programName));
      }
      std::sort(runs.begin(), runs.end());
      profile.write(sequence);
      std::printf("device: %s\nplan: %s, program %s: %zu dispatches; %d runs with a timestamp after every dispatch: "
                  "median %.3f ms (best without timestamps %.3f ms)\n%s\nwritten to %s\n",
                  ctx.info().name.c_str(), planPath.c_str(), programName.c_str(), prog->dispatches.size(), repeat,
                  runs[runs.size() / 2], whole, profile.summary(12).c_str(), sequence.c_str());
      return 0;
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      double best = 1e30;
      for (int r = 0; r < 3; ++r)
        best = std::min(best, exec.run("k" + std::to_string(i)).gpu_ms);
      entries[i].us = best * 1000.0 / repeat;
    }

    std::printf("device: %s\nplan: %s, program %s: %zu dispatches, %zu distinct\n",
                ctx.info().name.c_str(), planPath.c_str(), programName.c_str(),
                prog->dispatches.size(), entries.size());
    std::vector<size_t> order(entries.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return entries[a].us * entries[a].count > entries[b].us * entries[b].count;
    });
    double sum = 0;
    std::map<std::string, std::pair<double, int>> byFamily;
    for (const Entry &e : entries) {
      const plan::Kernel &k = original.kernels[e.dispatch.kernel];
      sum += e.us * e.count;
      auto &f = byFamily[family(k.name)];
      f.first += e.us * e.count;
      f.second += e.count;
    }
    std::printf("%-22s %6s %16s %14s %10s %8s  %s\n", "kernel", "count", "groups", "local", "us/disp",
                "total%", "buffers (bytes)");
    for (int n = 0; n < (int)order.size() && n < top; ++n) {
      const Entry &e = entries[order[n]];
      const plan::Kernel &k = original.kernels[e.dispatch.kernel];
      char groups[64], local[64];
      std::snprintf(groups, sizeof groups, "%ux%ux%u", e.dispatch.groups[0], e.dispatch.groups[1],
                    e.dispatch.groups[2]);
      std::snprintf(local, sizeof local, "%ux%ux%u", k.local_size[0], k.local_size[1],
                    k.local_size[2]);
      std::string bufs;
      for (uint32_t b : e.dispatch.bindings)
        bufs += (bufs.empty() ? "" : " ") + std::to_string(original.buffers[b].bytes);
      std::printf("%-22s %6d %16s %14s %10.1f %7.1f%%  %s\n", k.name.c_str(), e.count, groups, local,
                  e.us, 100.0 * e.us * e.count / sum, bufs.c_str());
    }
    std::printf("\nby family:\n");
    std::vector<std::pair<std::string, std::pair<double, int>>> fams(byFamily.begin(), byFamily.end());
    std::sort(fams.begin(), fams.end(),
              [](auto &a, auto &b) { return a.second.first > b.second.first; });
    for (auto &[name, v] : fams)
      std::printf("  %-20s %5d dispatches %10.3f ms %6.1f%%\n", name.c_str(), v.second,
                  v.first / 1000.0, 100.0 * v.first / sum);
    std::printf("\nsum of dispatches %.3f ms; whole program measured %.3f ms\n", sum / 1000.0, whole);
    if (names) {
      std::printf("\ndispatches in program order (result buffer, us/dispatch, config):\n");
      for (const Entry &e : entries) {
        const plan::Kernel &k = original.kernels[e.dispatch.kernel];
        const std::string &out = original.buffers[e.dispatch.bindings.back()].name;
        std::printf("%s %10.1f %s\n", out.c_str(), e.us, k.config.c_str());
      }
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
