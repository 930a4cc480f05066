// KernelNumericsAttentionTest - the fused attention kernels (flash_attention
// forward: out and lse; flash_attention_grad: dq, dk, dv) on the local Vulkan
// device against float64 references computed from the same (rounded) inputs:
// grouped-query heads (kv_groups 2), a causal [T, S] mask, a per-batch
// sliding-window [B, 1, T, S] mask with a fully masked row (out 0, lse +inf,
// gradients 0, no NaN), a non-default scale, T not a multiple of the
// workgroup (the key block) or of the rows a workgroup takes, head dims below
// and above the workgroup size, f32 and bf16.
#include "KernelTestSupport.h"

#include <limits>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

struct Shape {
  int64_t B, H, KH, T, S, D;
  int64_t G() const { return H / KH; }
};

enum class MaskKind { None, Causal, Window };

// [T, S] causal, or [B, 1, T, S]: batch b sees keys t - w_b < s <= t with
// w_0 = 3, w_1 = 5; in batch 1 row 0 sees nothing (a fully masked row).
std::vector<int64_t> maskShape(const Shape &s, MaskKind m) {
  return m == MaskKind::Causal ? std::vector<int64_t>{s.T, s.S} : std::vector<int64_t>{s.B, 1, s.T, s.S};
}
std::vector<float> makeMask(const Shape &s, MaskKind m) {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> v;
  if (m == MaskKind::Causal) {
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t j = 0; j < s.S; ++j)
        v.push_back(j <= t ? 0.0f : ninf);
    return v;
  }
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t j = 0; j < s.S; ++j) {
        int64_t w = b == 0 ? 3 : 5;
        bool visible = j <= t && j > t - w && !(b == 1 && t == 0);
        v.push_back(visible ? 0.0f : ninf);
      }
  return v;
}

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

double maskAt(const Shape &s, MaskKind m, const std::vector<float> &mask, int64_t b, int64_t t, int64_t j) {
  if (m == MaskKind::None)
    return 0;
  if (m == MaskKind::Causal)
    return mask[t * s.S + j];
  return mask[(b * s.T + t) * s.S + j];
}

// Forward from q, k, v; backward from the given out, lse (as the kernel reads
// them) and dout.
Reference reference(const Shape &s, MaskKind m, double scale, const std::vector<float> &q,
                    const std::vector<float> &k, const std::vector<float> &v, const std::vector<float> &mask,
                    const std::vector<float> &out, const std::vector<float> &lse, const std::vector<float> &dout) {
  Reference r;
  r.out.assign(q.size(), 0), r.lse.assign(s.B * s.H * s.T, 0), r.dq.assign(q.size(), 0);
  r.dk.assign(k.size(), 0), r.dv.assign(v.size(), 0);
  auto qi = [&](int64_t b, int64_t h, int64_t t, int64_t d) { return ((b * s.H + h) * s.T + t) * s.D + d; };
  auto ki = [&](int64_t b, int64_t h, int64_t j, int64_t d) {
    return ((b * s.KH + h / s.G()) * s.S + j) * s.D + d;
  };
  std::vector<double> x(s.S);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t t = 0; t < s.T; ++t) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < s.S; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < s.D; ++d)
            dot += double(q[qi(b, h, t, d)]) * k[ki(b, h, j, d)];
          x[j] = dot * scale + maskAt(s, m, mask, b, t, j);
          mx = std::max(mx, x[j]);
        }
        int64_t row = (b * s.H + h) * s.T + t;
        double sum = 0;
        for (int64_t j = 0; j < s.S; ++j)
          sum += std::isinf(x[j]) ? 0.0 : std::exp(x[j] - mx);
        r.lse[row] = sum == 0 ? INFINITY : mx + std::log(sum);
        for (int64_t j = 0; j < s.S; ++j) {
          double p = sum == 0 ? 0.0 : std::exp(x[j] - r.lse[row]);
          for (int64_t d = 0; d < s.D; ++d)
            r.out[qi(b, h, t, d)] += p * v[ki(b, h, j, d)];
        }
        // Backward of this row from the kernel's inputs.
        double Drow = 0;
        for (int64_t d = 0; d < s.D; ++d)
          Drow += double(dout[qi(b, h, t, d)]) * out[qi(b, h, t, d)];
        for (int64_t j = 0; j < s.S; ++j) {
          double p = std::exp(x[j] - double(lse[row])); // 0 for -inf scores and lse = +inf
          double dp = 0;
          for (int64_t d = 0; d < s.D; ++d)
            dp += double(dout[qi(b, h, t, d)]) * v[ki(b, h, j, d)];
          double ds = p * (dp - Drow);
          for (int64_t d = 0; d < s.D; ++d) {
            r.dq[qi(b, h, t, d)] += ds * k[ki(b, h, j, d)] * scale;
            r.dk[ki(b, h, j, d)] += ds * q[qi(b, h, t, d)] * scale;
            r.dv[ki(b, h, j, d)] += p * dout[qi(b, h, t, d)];
          }
        }
      }
  return r;
}

std::vector<double> maxAbs(const std::vector<double> &v) {
  double m = 0;
  for (double x : v)
    if (std::isfinite(x))
      m = std::max(m, std::fabs(x));
  return std::vector<double>(v.size(), m);
}

void expectNoNaN(const std::vector<float> &v, const std::string &what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (std::isnan(v[i])) {
      ADD_FAILURE() << what << "[" << i << "] is NaN";
      return;
    }
}

// `config`: an injected #tessera.reduction_config (else the profile's).
void runCase(const Shape &s, MaskKind m, double scale, const std::string &elem, const std::string &profile,
             const std::string &config = "") {
  SCOPED_TRACE(elem + " " + (profile.empty() ? "built-in" : profile) + " " + config);
  std::vector<int64_t> qs = {s.B, s.H, s.T, s.D}, ks = {s.B, s.KH, s.S, s.D}, ls = {s.B, s.H, s.T};
  std::vector<int64_t> ms = maskShape(s, m);
  std::string mty = m == MaskKind::None ? "" : tensorType(ms);
  std::string qt = tensorType(qs, elem), kt = tensorType(ks, elem), lt = tensorType(ls);
  std::string attrs = "{scale = " + std::to_string(scale) + " : f64, kv_groups = " + std::to_string(s.G()) +
                      " : i64" + (config.empty() ? "" : ", tessera.kernel_config = " + config) + "}";
  std::string maskUse = m == MaskKind::None ? "" : " mask %mask";
  std::string maskType = m == MaskKind::None ? "" : ", " + mty;
  std::string body = param("q", qs, elem) + param("k", ks, elem) + param("v", ks, elem) +
                     param("out", qs, elem) + param("lse", ls) + param("dout", qs, elem) +
                     (m == MaskKind::None ? "" : param("mask", ms)) +
                     "    %zero = tessera.constant dense<0.0> : tensor<f32>\n"
                     "    %a:2 = tessera.flash_attention %q, %k, %v" + maskUse + " " + attrs + " : (" + qt + ", " +
                     kt + ", " + kt + maskType + ") -> (" + qt + ", " + lt + ") loc(\"o\")\n" +
                     // x + 0 names the lse buffer (exact, +inf stays +inf).
                     "    %l = tessera.binary add %a#1, %zero : (" + lt + ", tensor<f32>) -> " + lt + " loc(\"l\")\n" +
                     "    %g:3 = tessera.flash_attention_grad %q, %k, %v, %out, %lse, %dout" + maskUse + " " + attrs +
                     " : (" + qt + ", " + kt + ", " + kt + ", " + qt + ", " + lt + ", " + qt + maskType + ") -> (" +
                     qt + ", " + kt + ", " + kt + ") loc(\"g\")\n" +
                     "    %dq = tessera.cast %g#0 : " + qt + " -> " + tensorType(qs) + " loc(\"dq\")\n" +
                     "    %dk = tessera.cast %g#1 : " + kt + " -> " + tensorType(ks) + " loc(\"dk\")\n" +
                     "    %dv = tessera.cast %g#2 : " + kt + " -> " + tensorType(ks) + " loc(\"dv\")\n";
  GpuRun r(lossModule(body, {{"%a#0", qs, elem}, {"%l", ls, "f32"}, {"%dq", qs, "f32"}, {"%dk", ks, "f32"},
                             {"%dv", ks, "f32"}}),
           profile);
  std::vector<float> q = roundedTo(elem, uniform(numel(qs), -1, 1));
  std::vector<float> k = roundedTo(elem, uniform(numel(ks), -1, 1));
  std::vector<float> v = roundedTo(elem, uniform(numel(ks), -1, 1));
  std::vector<float> dout = roundedTo(elem, uniform(numel(qs), -1, 1));
  std::vector<float> mask = m == MaskKind::None ? std::vector<float>{} : makeMask(s, m);
  // The backward's out and lse: the float64 forward, as stored.
  Reference fwd = reference(s, m, scale, q, k, v, mask, q, std::vector<float>(numel(ls), 0), dout);
  std::vector<float> out = roundedTo(elem, std::vector<float>(fwd.out.begin(), fwd.out.end()));
  std::vector<float> lse(fwd.lse.begin(), fwd.lse.end());
  Reference ref = reference(s, m, scale, q, k, v, mask, out, lse, dout);
  r.set("q", q), r.set("k", k), r.set("v", v), r.set("out", out), r.set("lse", lse), r.set("dout", dout);
  if (m != MaskKind::None)
    r.set("mask", mask);
  r.run();
  // f32: e32 of the row's scale; bf16 results: also one rounding (2^-8 |ref|).
  double rel = elem == "f32" ? 1e-5 : 1.0 / 256;
  auto check = [&](const std::string &name, const std::vector<double> &want) {
    std::vector<float> got = r.get(name);
    expectNoNaN(got, name);
    std::vector<double> sc = maxAbs(want);
    for (double &x : sc)
      x *= elem == "f32" ? 10.0 : 0.02; // f32 sums of S or T terms; bf16 also f32 sums of rounded terms
    expectClose(got, want, sc, name, rel);
  };
  check("o", ref.out);
  check("l", ref.lse);
  check("dq", ref.dq);
  check("dk", ref.dk);
  check("dv", ref.dv);
  if (m == MaskKind::Window) { // batch 1, row 0 of every head: nothing visible
    std::vector<float> o = r.get("o"), l = r.get("l"), dq = r.get("dq");
    for (int64_t h = 0; h < s.H; ++h) {
      int64_t row = (1 * s.H + h) * s.T;
      EXPECT_EQ(l[row], std::numeric_limits<float>::infinity());
      for (int64_t d = 0; d < s.D; ++d) {
        EXPECT_EQ(o[row * s.D + d], 0.0f);
        EXPECT_EQ(dq[row * s.D + d], 0.0f);
      }
    }
  }
}

const std::string kLavapipe = kProfileDir + "/lavapipe.json";

TEST(KernelNumericsAttention, CausalGqaF32) {
  runCase({2, 4, 2, 13, 13, 24}, MaskKind::Causal, 0.3, "f32", "");
  runCase({2, 4, 2, 13, 13, 24}, MaskKind::Causal, 0.3, "f32", kLavapipe);
}

// Blocks of 16 keys (queries for dk/dv): T = 37 ends in a partial block, and
// D = 24 > 16 gives each thread two output dims.
TEST(KernelNumericsAttention, SmallBlocksF32) {
  runCase({1, 4, 2, 37, 37, 24}, MaskKind::Causal, 0.2, "f32", "",
          "#tessera.reduction_config<strategy = workgroup, workgroup_size = 16>");
  runCase({1, 2, 2, 21, 29, 40}, MaskKind::None, 0.15, "f32", "",
          "#tessera.reduction_config<strategy = workgroup, workgroup_size = 16>");
}

// Head dim 128 with the nvidia profile's 256 threads: 8 rows per workgroup
// forward and for dq, 4 key rows for dk/dv (shared memory), T = 20 ends in
// partial row groups.
TEST(KernelNumericsAttention, WideHeadsF32) {
  runCase({1, 2, 1, 20, 20, 128}, MaskKind::Causal, 0.0883883, "f32", kProfileDir + "/nvidia.json");
}

TEST(KernelNumericsAttention, SlidingWindowFullyMaskedRowF32) {
  runCase({2, 4, 2, 19, 19, 16}, MaskKind::Window, 0.25, "f32", kLavapipe);
}

TEST(KernelNumericsAttention, Bf16) {
  // Half buffers need a profile with 16-bit storage.
  runCase({2, 4, 2, 13, 13, 24}, MaskKind::Causal, 0.3, "bf16", kProfileDir + "/nvidia.json");
  runCase({2, 4, 2, 19, 19, 16}, MaskKind::Window, 0.25, "bf16", kLavapipe,
          "#tessera.reduction_config<strategy = workgroup, workgroup_size = 8>");
}

} // namespace
