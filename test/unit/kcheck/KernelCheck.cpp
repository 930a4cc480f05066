// tessera-kcheck: runs kernel-check cases (docs/kernel-checks.md) on a
// Vulkan device with the runtime alone (no MLIR): for each case folder, its
// plan's programs step by step, the inputs written before each run, the
// outputs compared with their float64 references after it. One line per
// case, then "kcheck: N passed, M failed"; exit 1 when any case failed.
//
//   tessera-kcheck CASES... [--device N] [--filter TEXT] [--exclude TEXT]... [--require-config TEXT]
//                  [--skip-unsupported]
//   tessera-kcheck CASES... --dump-spirv DIR    (writes DIR/<case>/<kernel>.spv, needs no device)
//
// KernelNumericsTest writes the cases (TESSERA_KCHECK_EXPORT=DIR), so its
// whole suite can be re-run where MLIR is not: Debian 13's lavapipe with
// cooperative matrices (scripts/trixie_env.sh), a phone, the H200
// (bench/kernel_numerics_gpu.sh).
#include "test/unit/kcheck/Case.h"

#include "runtime/plan/Elements.h"
#include "runtime/plan/Plan.h"
#include "runtime/util/File.h"
#include "runtime/util/Half.h"
#include "runtime/vulkan/Context.h"
#include "runtime/vulkan/Executor.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string fmt(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

// The storage-owning buffer `index` of the plan, checked against the case's name for it.
const plan::Buffer &caseBuffer(const plan::Plan &p, int64_t index, const std::string &name,
                               const std::string &where) {
  if (index < 0 || size_t(index) >= p.buffers.size())
    throw Failure(where + ": buffer " + std::to_string(index) + " is not in the plan (" +
                  std::to_string(p.buffers.size()) + " buffers)");
  const plan::Buffer &b = p.buffers[size_t(index)];
  if (b.name != name)
    throw Failure(where + ": buffer " + std::to_string(index) + " is '" + b.name + "' in the plan, not '" + name +
                  "' (case and plan do not belong together)");
  if (b.alias_of >= 0)
    throw Failure(where + ": buffer " + std::to_string(index) + " ('" + name + "') is an alias");
  return b;
}

double element(const plan::Buffer &b, const uint8_t *data, int64_t i) { return plan::readElement(data, b.dtype, size_t(i)); }

struct Counts {
  int checks = 0;
  int64_t elements = 0;
  double setupMs = 0; // pipelines and buffers (Executor construction)
};

// Runs one case; throws Failure (or CaseError / PlanError / VulkanError) with what went wrong.
Counts runCase(vk::Context &ctx, const std::string &dir, const kcheck::Case &c, const plan::Plan &p) {
  auto t0 = std::chrono::steady_clock::now();
  vk::Executor exec(ctx, p);
  Counts n;
  n.setupMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const plan::Buffer &b = p.buffers[i];
    if (b.alias_of >= 0) continue;
    if (b.kind == plan::BufferKind::Constant)
      std::memcpy(exec.data(i), p.blobs[size_t(b.init_blob)].data(), b.bytes);
    else
      std::memset(exec.data(i), 0, b.bytes);
  }
  std::vector<std::string> mismatches;
  for (size_t si = 0; si < c.steps.size(); ++si) {
    const kcheck::Step &s = c.steps[si];
    std::string stepName = "step " + std::to_string(si);
    for (const kcheck::Input &in : s.inputs) {
      std::string where = stepName + " input '" + in.name + "'";
      const plan::Buffer &b = caseBuffer(p, in.buffer, in.name, where);
      if (in.uniform) {
        if (b.dtype != plan::DType::F32 || uint64_t(in.count) * 4 != b.bytes)
          throw Failure(where + ": a uniform generator of " + std::to_string(in.count) + " f32 does not fill " +
                        std::to_string(b.bytes) + " bytes of " + plan::dtypeName(b.dtype));
        std::vector<float> v = kcheck::uniformFloats(in.seed, in.count, in.lo, in.hi);
        std::memcpy(exec.data(size_t(in.buffer)), v.data(), b.bytes);
      } else {
        std::string path = (fs::path(dir) / in.file).string();
        std::vector<uint8_t> bytes = util::readFile(path);
        if (bytes.size() != b.bytes)
          throw Failure(path + ": " + std::to_string(bytes.size()) + " bytes, but buffer '" + b.name + "' has " +
                        std::to_string(b.bytes));
        std::memcpy(exec.data(size_t(in.buffer)), bytes.data(), bytes.size());
      }
    }
    if (!exec.hasProgram(s.program)) throw Failure(stepName + ": the plan has no program '" + s.program + "'");
    exec.run(s.program);
    for (const kcheck::Check &ch : s.checks) {
      std::string where = stepName + " check '" + ch.what + "'";
      const plan::Buffer &b = caseBuffer(p, ch.buffer, ch.name, where);
      int64_t elems = int64_t(b.bytes / plan::bytesPerElement(b.dtype));
      if (ch.offset + ch.count > elems)
        throw Failure(where + ": elements " + std::to_string(ch.offset) + ".." + std::to_string(ch.offset + ch.count) +
                      " are outside buffer '" + b.name + "' (" + std::to_string(elems) + ")");
      std::vector<double> want = kcheck::readDoubles((fs::path(dir) / ch.expected).string(), ch.count);
      std::vector<double> scale;
      if (!ch.scale.empty()) scale = kcheck::readDoubles((fs::path(dir) / ch.scale).string(), ch.count);
      const uint8_t *data = static_cast<const uint8_t *>(exec.data(size_t(ch.buffer)));
      int bad = 0;
      for (int64_t i = 0; i < ch.count; ++i) {
        double got = element(b, data, ch.offset + i), ref = want[size_t(i)];
        if (std::isnan(ref) && std::isnan(got)) continue;
        if (std::isinf(ref) && got == ref) continue;
        double tol = std::max(ch.abs, ch.rel * (std::fabs(ref) + (scale.empty() ? 0.0 : scale[size_t(i)])));
        if (std::fabs(got - ref) <= tol) continue;
        if (bad++ < 5)
          mismatches.push_back(stepName + " " + ch.what + " (" + b.name + "[" + std::to_string(ch.offset + i) +
                               "]): got " + fmt(got) + ", expected " + fmt(ref) + " (tolerance " + fmt(tol) + ")");
      }
      if (bad > 5) mismatches.push_back(stepName + " " + ch.what + ": " + std::to_string(bad) + " elements differ in all");
      ++n.checks;
      n.elements += ch.count;
    }
  }
  if (!mismatches.empty()) {
    std::ostringstream os;
    os << mismatches.size() << " mismatch line(s)";
    for (const std::string &m : mismatches) os << "\n      " << m;
    throw Failure(os.str());
  }
  return n;
}

// The cooperative-matrix shapes the plan's kernels use (their configs:
// "kind = coopmat", "mma = m, n, k", "operands = t", f32 accumulators)
// that the device does not offer, e.g. "8x8x8 f16*f16+f32".
std::string missingCoopMatShapes(const plan::Plan &p, const vk::DeviceInfo &d) {
  static const std::regex mma(R"(mma = \[?(\d+), (\d+), (\d+))"), operands(R"(operands = (\w+))");
  std::set<std::string> missing;
  for (const plan::Kernel &k : p.kernels) {
    std::smatch m, t;
    if (k.config.find("kind = coopmat") == std::string::npos || !std::regex_search(k.config, m, mma) ||
        !std::regex_search(k.config, t, operands))
      continue;
    uint32_t M = std::stoul(m[1]), N = std::stoul(m[2]), K = std::stoul(m[3]);
    // mma = tile: one workgroup-scope matrix, checked as the plan's
    // workgroup_cooperative_matrix feature (VK_NV_cooperative_matrix2).
    if (k.config.find("tile = [" + m[1].str() + ", " + m[2].str() + ", " + m[3].str() + "]") != std::string::npos)
      continue;
    bool offered = false;
    for (const vk::CooperativeMatrixShape &s : d.cooperativeMatrix)
      offered = offered || (s.m == M && s.n == N && s.k == K && s.a == t[1] && s.b == t[1] && s.c == "f32" &&
                            s.result == "f32" && s.scope == "subgroup");
    if (!offered)
      missing.insert(m[1].str() + "x" + m[2].str() + "x" + m[3].str() + " " + t[1].str() + "*" + t[1].str() + "+f32");
  }
  std::string out;
  for (const std::string &s : missing) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void dumpSpirv(const plan::Plan &p, const std::string &caseName, const std::string &outDir) {
  fs::path d = fs::path(outDir) / caseName;
  fs::create_directories(d);
  for (const plan::Kernel &k : p.kernels) {
    const std::vector<uint8_t> &blob = p.blobs[k.spirv_blob];
    util::writeFileAtomic((d / (k.name + ".spv")).string(), blob.data(), blob.size());
  }
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"tessera-kcheck: run kernel-check cases (plans + inputs + float64 references) on a Vulkan device"};
  std::vector<std::string> roots;
  int device = 0;
  std::string filter, requireConfig, dumpDir;
  std::vector<std::string> excludes;
  bool skipUnsupported = false;
  app.add_option("cases", roots, "Case folders, or folders of case folders (KernelNumericsTest with TESSERA_KCHECK_EXPORT=DIR)")
      ->required();
  app.add_option("--device", device, "Vulkan device index (tessera-rt devices)");
  app.add_option("--filter", filter, "Run only the cases whose name contains TEXT");
  app.add_option("--exclude", excludes, "Leave out the cases whose name contains TEXT (repeatable)");
  app.add_option("--require-config", requireConfig,
                 "Fail a case none of whose kernels' configs contains TEXT (e.g. coopmat)");
  app.add_flag("--skip-unsupported", skipUnsupported,
               "Skip (instead of failing) a case whose plan needs a feature the device lacks");
  app.add_option("--dump-spirv", dumpDir, "Write every case's kernels to DIR/<case>/<kernel>.spv and run nothing");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> dirs;
  try {
    for (const std::string &r : roots)
      for (const std::string &d : kcheck::findCases(r)) dirs.push_back(d);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (dirs.empty()) {
    std::fprintf(stderr, "error: no case folders (holding %s) under the given paths\n", kcheck::kCaseFile);
    return 2;
  }

  std::unique_ptr<vk::Context> ctx;
  if (dumpDir.empty()) {
    try {
      ctx = std::make_unique<vk::Context>(device);
    } catch (const std::exception &e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    }
    std::printf("device %d: %s (%s)\n", device, ctx->info().name.c_str(), ctx->info().driver.c_str());
  }

  int passed = 0, failed = 0, skipped = 0, kernels = 0;
  for (const std::string &dir : dirs) {
    std::string label = fs::path(dir).filename().string();
    auto t0 = std::chrono::steady_clock::now();
    try {
      kcheck::Case c = kcheck::readCase(dir);
      label = c.name;
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      bool excluded = false;
      for (const std::string &x : excludes) excluded = excluded || c.name.find(x) != std::string::npos;
      if (excluded) continue;
      plan::Plan p = plan::readPlanFile((fs::path(dir) / c.plan).string());
      if (!requireConfig.empty()) {
        bool found = false;
        for (const plan::Kernel &k : p.kernels) found = found || k.config.find(requireConfig) != std::string::npos;
        if (!found) throw Failure("no kernel of its plan has a config containing '" + requireConfig + "'");
      }
      if (!dumpDir.empty()) {
        dumpSpirv(p, c.name, dumpDir);
        kernels += int(p.kernels.size());
        ++passed;
        continue;
      }
      std::string missing;
      for (const std::string &f : p.features)
        if (!ctx->info().hasFeature(f)) missing += (missing.empty() ? "" : ", ") + f;
      if (std::string shapes = missingCoopMatShapes(p, ctx->info()); !shapes.empty())
        missing += (missing.empty() ? "" : ", ") + std::string("cooperative matrices ") + shapes;
      if (!missing.empty() && skipUnsupported) {
        std::printf("SKIP %s: the device lacks %s\n", c.name.c_str(), missing.c_str());
        ++skipped;
        continue;
      }
      if (!missing.empty())
        throw Failure("device " + std::to_string(device) + " (" + ctx->info().name + ") lacks " + missing +
                      " (compiled with profile '" + c.profile + "')");
      Counts n = runCase(*ctx, dir, c, p);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf("PASS %s (%zu step%s, %d checks, %lld elements, %.0f ms of which pipelines %.0f ms)\n",
                  c.name.c_str(), c.steps.size(), c.steps.size() == 1 ? "" : "s", n.checks, (long long)n.elements, ms,
                  n.setupMs);
      ++passed;
    } catch (const std::exception &e) {
      std::printf("FAIL %s: %s\n", label.c_str(), e.what());
      ++failed;
    }
    std::fflush(stdout);
  }
  if (!dumpDir.empty()) {
    std::printf("kcheck: wrote %d kernels of %d cases to %s\n", kernels, passed, dumpDir.c_str());
    return failed ? 1 : 0;
  }
  std::printf("kcheck: %d passed, %d failed%s\n", passed, failed,
              skipped ? (", " + std::to_string(skipped) + " skipped").c_str() : "");
  return failed || passed == 0 ? 1 : 0;
}
