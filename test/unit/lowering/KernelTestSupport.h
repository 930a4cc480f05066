// KernelTestSupport.h - shared by the kernel numerics tests: a hand-written
// module -> tessera-select-kernel-configs -> tessera-lower-to-kernels ->
// tessera-kernels-to-spirv -> buildPlan -> plan serialise/parse round trip ->
// runtime Executor on the local Vulkan device (lavapipe in CI), and the
// float64 references and comparisons the tests share. With
// TESSERA_KCHECK_EXPORT=DIR every plan a test runs is also exported as a
// tessera-kcheck case (docs/kernel-checks.md).
#pragma once

#include "compiler/plan/PlanEmitter.h"
#include "runtime/plan/Plan.h"
#include "runtime/util/Half.h"
#include "runtime/vulkan/Executor.h"
#include "test/unit/kcheck/Recorder.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace tessera::kerneltest {

using namespace ::tessera;

inline const std::string kProfileDir = TESSERA_PROFILE_DIR;

// ---------------------------------------------------------------- compile

inline mlir::MLIRContext &mlirContext() {
  static mlir::MLIRContext *ctx = [] {
    mlir::DialectRegistry registry;
    registry.insert<mlir::tessera::TesseraDialect, mlir::func::FuncDialect,
                    mlir::arith::ArithDialect, mlir::gpu::GPUDialect, mlir::math::MathDialect,
                    mlir::memref::MemRefDialect, mlir::scf::SCFDialect,
                    mlir::spirv::SPIRVDialect>();
    auto *c = new mlir::MLIRContext(registry);
    c->loadAllAvailableDialects();
    return c;
  }();
  return *ctx;
}

inline plan::Plan compile(const std::string &source, const std::string &profile) {
  mlir::MLIRContext &ctx = mlirContext();
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    llvm::raw_string_ostream os(diagnostics);
    os << d << "\n";
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceString<mlir::ModuleOp>(source, &ctx);
  if (!module)
    throw std::runtime_error("parse failed: " + diagnostics + "\n" + source);
  mlir::PassManager pm(&ctx);
  mlir::tessera::TesseraSelectKernelConfigsOptions opts;
  opts.profile = profile;
  pm.addPass(mlir::tessera::createTesseraSelectKernelConfigs(opts));
  pm.addPass(mlir::tessera::createTesseraLowerToKernels());
  pm.addPass(mlir::tessera::createTesseraKernelsToSPIRV());
  if (mlir::failed(pm.run(*module)))
    throw std::runtime_error("lowering failed: " + diagnostics);
  mlir::FailureOr<plan::Plan> p = buildPlan(*module, PlanOptions{});
  if (mlir::failed(p))
    throw std::runtime_error("plan failed: " + diagnostics);
  // The plan must pass the runtime's validation.
  return plan::parse(plan::serialize(*p), "<test plan>");
}

// ---------------------------------------------------------------- run

inline vk::Context &device() {
  static std::unique_ptr<vk::Context> ctx = std::make_unique<vk::Context>(0);
  return *ctx;
}

// The case name of the current test's next plan: "Suite.Test", then
// "Suite.Test.2", ... when it runs several.
inline std::string caseName() {
  const testing::TestInfo *t = testing::UnitTest::GetInstance()->current_test_info();
  std::string n = t ? std::string(t->test_suite_name()) + "." + t->name() : "case";
  for (char &c : n)
    if (c == '/')
      c = '_';
  static std::map<std::string, int> seen;
  int k = ++seen[n];
  return k == 1 ? n : n + "." + std::to_string(k);
}

struct GpuRun;
inline GpuRun *activeRun = nullptr; // the run expectClose reports its checks to

struct GpuRun {
  plan::Plan plan;
  std::unique_ptr<vk::Executor> exec;        // null: the device lacks `missing`
  std::vector<std::vector<uint8_t>> host;    // the buffers then (exported, not run)
  std::string missing;                       // plan features the device lacks
  std::unique_ptr<kcheck::Recorder> recorder; // TESSERA_KCHECK_EXPORT
  GpuRun *previous = nullptr;

  // `deferrable`: when the device lacks a feature the plan needs, do not
  // fail: skipReason() says why (the test skips) or, when exporting, the
  // plan is only exported (tessera-kcheck runs it where it can).
  explicit GpuRun(const std::string &source, const std::string &profile = "", bool deferrable = false)
      : plan(compile(source, profile)) {
    for (const std::string &f : plan.features)
      if (!device().info().hasFeature(f))
        missing += (missing.empty() ? "" : ", ") + f;
    std::string exportTo = kcheck::exportDir();
    if (missing.empty() || !deferrable)
      exec = std::make_unique<vk::Executor>(device(), plan); // throws naming the missing feature
    else {
      host.resize(plan.buffers.size());
      for (size_t i = 0; i < plan.buffers.size(); ++i)
        if (plan.buffers[i].alias_of < 0)
          host[i].resize(plan.buffers[i].bytes);
    }
    for (size_t i = 0; i < plan.buffers.size(); ++i) {
      const plan::Buffer &b = plan.buffers[i];
      if (b.alias_of >= 0)
        continue;
      if (b.kind == plan::BufferKind::Constant)
        std::memcpy(data(i), plan.blobs[b.init_blob].data(), b.bytes);
      else
        std::memset(data(i), 0, b.bytes);
    }
    if (!exportTo.empty())
      recorder = std::make_unique<kcheck::Recorder>(
          exportTo, caseName(), plan, profile, [this](size_t i) { return (const void *)data(i); },
          exec != nullptr);
    previous = activeRun;
    activeRun = this;
  }
  ~GpuRun() { activeRun = previous; }

  bool executed() const { return exec != nullptr; }
  // Non-empty when the plan neither runs here nor is exported.
  std::string skipReason() const {
    if (exec || recorder)
      return "";
    return "device " + device().info().name + " lacks " + missing +
           "; run the exported case with tessera-kcheck (docs/kernel-checks.md)";
  }
  void *data(size_t i) {
    if (exec)
      return exec->data(i);
    while (plan.buffers[i].alias_of >= 0)
      i = plan.buffers[i].alias_of;
    return host[i].data();
  }
  const void *data(size_t i) const { return const_cast<GpuRun *>(this)->data(i); }

  size_t buffer(const std::string &name) const {
    for (size_t i = 0; i < plan.buffers.size(); ++i)
      if (plan.buffers[i].name == name && plan.buffers[i].alias_of < 0)
        return i;
    for (size_t i = 0; i < plan.buffers.size(); ++i)
      if (plan.buffers[i].name == name)
        return i;
    throw std::runtime_error("no buffer named " + name);
  }
  // Writes v in the buffer's dtype (f16 / bf16: rounded to nearest even).
  void set(const std::string &name, const std::vector<float> &v) {
    size_t i = buffer(name);
    const plan::Buffer &b = plan.buffers[i];
    EXPECT_EQ(b.bytes, v.size() * plan::bytesPerElement(b.dtype)) << name;
    if (b.dtype == plan::DType::F16 || b.dtype == plan::DType::BF16) {
      std::vector<uint16_t> h(v.size());
      for (size_t k = 0; k < v.size(); ++k)
        h[k] = b.dtype == plan::DType::F16 ? util::floatToHalf(v[k]) : util::floatToBf16(v[k]);
      std::memcpy(data(i), h.data(), std::min<size_t>(b.bytes, h.size() * 2));
    } else {
      std::memcpy(data(i), v.data(), std::min<size_t>(b.bytes, v.size() * 4));
    }
  }
  void seti(const std::string &name, const std::vector<int32_t> &v) {
    size_t i = buffer(name);
    EXPECT_EQ(plan.buffers[i].bytes, v.size() * 4) << name;
    std::memcpy(data(i), v.data(), v.size() * 4);
  }
  // Elements [offset, offset + count) of a buffer (count -1: to its end), as float.
  std::vector<float> get(const std::string &name, int64_t offset = 0, int64_t count = -1) const {
    size_t i = buffer(name);
    const plan::Buffer &b = plan.buffers[i];
    std::vector<float> v(b.bytes / plan::bytesPerElement(b.dtype));
    if (b.dtype == plan::DType::F16 || b.dtype == plan::DType::BF16) {
      std::vector<uint16_t> h(v.size());
      std::memcpy(h.data(), data(i), h.size() * 2);
      for (size_t k = 0; k < v.size(); ++k)
        v[k] = b.dtype == plan::DType::F16 ? util::halfToFloat(h[k]) : util::bf16ToFloat(h[k]);
    } else {
      std::memcpy(v.data(), data(i), v.size() * 4);
    }
    v = slice(v, offset, count);
    noteRead(i, offset, v);
    return v;
  }
  std::vector<int32_t> geti(const std::string &name, int64_t offset = 0, int64_t count = -1) const {
    size_t i = buffer(name);
    std::vector<int32_t> v(plan.buffers[i].bytes / 4);
    std::memcpy(v.data(), data(i), v.size() * 4);
    v = slice(v, offset, count);
    noteRead(i, offset, v);
    return v;
  }
  plan::DType dtype(const std::string &name) const { return plan.buffers[buffer(name)].dtype; }
  // The 16-bit words of an f16 or bf16 buffer.
  void setBits(const std::string &name, const std::vector<uint16_t> &v) {
    size_t i = buffer(name);
    EXPECT_EQ(plan.buffers[i].bytes, v.size() * 2) << name;
    std::memcpy(data(i), v.data(), v.size() * 2);
  }
  std::vector<uint16_t> getBits(const std::string &name) const {
    size_t i = buffer(name);
    std::vector<uint16_t> v(plan.buffers[i].bytes / 2);
    std::memcpy(v.data(), data(i), v.size() * 2);
    noteRead(i, 0, v);
    return v;
  }
  void run(const std::string &program = "eval") {
    if (recorder)
      recorder->beforeRun(program);
    if (exec)
      exec->run(program);
    if (recorder)
      recorder->afterRun();
  }

private:
  template <class T> static std::vector<T> slice(const std::vector<T> &v, int64_t offset, int64_t count) {
    if (count < 0)
      count = int64_t(v.size()) - offset;
    if (offset < 0 || offset + count > int64_t(v.size()))
      throw std::runtime_error("get: elements outside the buffer");
    return std::vector<T>(v.begin() + offset, v.begin() + offset + count);
  }
  template <class T> void noteRead(size_t i, int64_t offset, const std::vector<T> &v) const {
    if (recorder)
      recorder->noteRead(i, offset, std::vector<double>(v.begin(), v.end()));
  }
};

// Reports a check to the export; false when it is not to be asserted here
// (the plan was only exported).
inline bool recordCheck(const std::vector<double> &got, const std::vector<double> &ref,
                 const std::vector<double> &scale, double rel, double abs, const std::string &what) {
  if (!activeRun || !activeRun->recorder)
    return true;
  std::string why = activeRun->recorder->check(got, ref, scale, rel, abs, what);
  if (!why.empty())
    ADD_FAILURE() << "kcheck export of " << what << ": " << why;
  return activeRun->executed();
}

// ---------------------------------------------------------------- helpers

// Uniform in [lo, hi) from the generator the case format names
// (test/unit/kcheck/Case.h), one stream per call: exported as its seed.
inline std::vector<float> uniform(int64_t n, double lo, double hi) {
  static uint64_t nextSeed = 1234;
  uint64_t seed = nextSeed++;
  std::vector<float> v = kcheck::uniformFloats(seed, n, lo, hi);
  kcheck::noteUniform(seed, n, lo, hi, v);
  return v;
}

inline int64_t numel(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

// x as a tensor of element type `type` holds it (f16 / bf16: round to nearest even; else unchanged).
inline float roundedTo(const std::string &type, float x) {
  return type == "f16" ? util::halfToFloat(util::floatToHalf(x)) : type == "bf16" ? util::bf16ToFloat(util::floatToBf16(x)) : x;
}
inline std::vector<float> roundedTo(const std::string &type, std::vector<float> v) {
  for (float &x : v)
    x = roundedTo(type, x);
  return v;
}

inline std::string tensorType(const std::vector<int64_t> &s, const std::string &elem = "f32") {
  std::string t = "tensor<";
  for (int64_t d : s)
    t += std::to_string(d) + "x";
  return t + elem + ">";
}

inline std::string i64Array(const std::vector<int64_t> &v) {
  std::string s = "array<i64";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : ": ") + std::to_string(v[i]);
  return s + ">";
}

// A module whose @loss keeps `results` (value name, shape, elem) alive by
// summing them into the returned scalar. `body` declares params and ops.
inline std::string lossModule(const std::string &body,
                       const std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>>
                           &results,
                       const std::vector<int64_t> &ids = {1, 2}) {
  std::ostringstream os;
  os << "module {\n  func.func @loss(%ids: " << tensorType(ids, "i32")
     << ", %labels: " << tensorType(ids, "i32") << ") -> tensor<f32> {\n"
     << body;
  std::string acc;
  int n = 0;
  for (auto &[value, shape, elem] : results) {
    std::string v = value;
    if (elem != "f32") {
      os << "    %keep_c" << n << " = tessera.cast " << v << " : " << tensorType(shape, elem)
         << " -> " << tensorType(shape) << "\n";
      v = "%keep_c" + std::to_string(n);
    }
    std::vector<int64_t> axes;
    for (size_t i = 0; i < shape.size(); ++i)
      axes.push_back(i);
    os << "    %keep_s" << n << " = tessera.reduce sum " << v << " {axes = " << i64Array(axes)
       << "} : " << tensorType(shape) << " -> tensor<f32>\n";
    std::string s = "%keep_s" + std::to_string(n);
    if (!acc.empty()) {
      os << "    %keep_a" << n << " = tessera.binary add " << acc << ", " << s
         << " : (tensor<f32>, tensor<f32>) -> tensor<f32>\n";
      s = "%keep_a" + std::to_string(n);
    }
    acc = s;
    ++n;
  }
  os << "    return " << acc << " : tensor<f32>\n  }\n}\n";
  return os.str();
}

inline std::string param(const std::string &name, const std::vector<int64_t> &shape,
                         const std::string &elem = "f32") {
  return "    %" + name + " = tessera.param frozen \"" + name + "\" : " + tensorType(shape, elem) + "\n";
}

inline std::vector<int64_t> stridesOf(const std::vector<int64_t> &s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = (int)s.size() - 2; i >= 0; --i)
    st[i] = st[i + 1] * s[i + 1];
  return st;
}

inline std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t> &s) {
  std::vector<int64_t> c(s.size());
  for (int d = (int)s.size() - 1; d >= 0; --d) {
    c[d] = s[d] ? i % s[d] : 0;
    i = s[d] ? i / s[d] : 0;
  }
  return c;
}

// Flat index into `in` of output coords under numpy broadcasting.
inline int64_t bcast(const std::vector<int64_t> &outCoords, const std::vector<int64_t> &in) {
  std::vector<int64_t> st = stridesOf(in);
  size_t lead = outCoords.size() - in.size();
  int64_t off = 0;
  for (size_t d = 0; d < in.size(); ++d)
    if (in[d] != 1)
      off += outCoords[lead + d] * st[d];
  return off;
}

// `floor`: the smallest tolerance (by default: GPUs may flush fp32 denormals to zero).
inline void expectClose(const std::vector<float> &got, const std::vector<double> &ref,
                 const std::vector<double> &scale, const std::string &what, double rel = 1e-5,
                 double floor = 1.2e-38) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  if (!recordCheck(std::vector<double>(got.begin(), got.end()), ref, scale, rel, floor, what))
    return;
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) && std::isnan(got[i]))
      continue;
    if (std::isinf(ref[i]) && got[i] == ref[i])
      continue;
    double tol = rel * (std::fabs(ref[i]) + (scale.empty() ? 0.0 : scale[i]));
    tol = std::max(tol, floor);
    if (!(std::fabs(got[i] - ref[i]) <= tol) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", expected " << ref[i]
                    << " (tolerance " << tol << ")";
  }
}

inline void expectClose(const std::vector<float> &got, const std::vector<double> &ref,
                 const std::string &what, double rel = 1e-5) {
  expectClose(got, ref, {}, what, rel);
}

// Exact equality of integer results.
inline void expectEqual(const std::vector<int32_t> &got, const std::vector<int32_t> &want, const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (!recordCheck(std::vector<double>(got.begin(), got.end()), std::vector<double>(want.begin(), want.end()), {},
                   0.0, 0.0, what))
    return;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", expected " << want[i];
}

struct MatmulCase {
  std::vector<int64_t> lhs, rhs;
  bool tl = false, tr = false;
};

inline std::vector<int64_t> matmulShape(const MatmulCase &c, int64_t &M, int64_t &N, int64_t &K) {
  const auto &l = c.lhs, &r = c.rhs;
  M = c.tl ? l.back() : l[l.size() - 2];
  K = c.tl ? l[l.size() - 2] : l.back();
  N = c.tr ? r[r.size() - 2] : r.back();
  std::vector<int64_t> lb(l.begin(), l.end() - 2), rb(r.begin(), r.end() - 2);
  size_t rank = std::max(lb.size(), rb.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i < rank - lb.size() ? 1 : lb[i - (rank - lb.size())];
    int64_t b = i < rank - rb.size() ? 1 : rb[i - (rank - rb.size())];
    out[i] = a == 1 ? b : a;
  }
  out.push_back(M);
  out.push_back(N);
  return out;
}


// ---------------------------------------------------------------- cross-entropy


struct CeRef {
  double loss = 0;
  std::vector<double> grad;
};

inline CeRef ceRef(const std::vector<float> &logits, const std::vector<int32_t> &labels, int64_t B,
            int64_t T, int64_t V, bool shift, double dloss) {
  CeRef out;
  out.grad.assign(B * T * V, 0.0);
  int64_t count = 0;
  double total = 0;
  std::vector<int64_t> target(B * T, -1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      int64_t lt = shift ? t + 1 : t;
      if (lt >= T)
        continue;
      int32_t l = labels[b * T + lt];
      if (l == -100 || l < 0 || l >= V)
        continue;
      target[b * T + t] = l;
      ++count;
    }
  for (int64_t r = 0; r < B * T; ++r) {
    if (target[r] < 0)
      continue;
    const float *x = &logits[r * V];
    double m = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; ++v)
      m = std::max(m, (double)x[v]);
    for (int64_t v = 0; v < V; ++v)
      s += std::exp(x[v] - m);
    total += m + std::log(s) - x[target[r]];
    for (int64_t v = 0; v < V; ++v)
      out.grad[r * V + v] =
          dloss / count * (std::exp(x[v] - m) / s - (v == target[r] ? 1.0 : 0.0));
  }
  out.loss = count ? total / count : 0.0;
  return out;
}

// ---------------------------------------------------------------- dropout


// The mask of docs/training.md, written out independently of the kernel generator.
inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  return h ^ (h >> 16);
}
inline bool dropoutKeeps(uint32_t seed, uint32_t site, uint32_t i, double rate) {
  uint32_t key = fmix32((seed * 0x9E3779B9u) ^ site);
  uint32_t h = fmix32(i * 0x9E3779B9u + key);
  return double(h) >= std::floor(rate * 4294967296.0);
}

} // namespace tessera::kerneltest
