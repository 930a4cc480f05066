// KernelNumericsAttentionTest - the fused attention kernels (flash_attention
// forward: out and lse; flash_attention_grad: dq, dk, dv) on the local Vulkan
// device against float64 references computed from the same (rounded) inputs:
// grouped-query heads (kv_groups 2), a causal [T, S] mask, a per-batch
// sliding-window [B, 1, T, S] mask with a fully masked row (out 0, lse +inf,
// gradients 0, no NaN), a non-default scale, T not a multiple of the
// workgroup (the key block) or of the rows a workgroup takes, head dims below
// and above the workgroup size, f32 and bf16.
#include "KernelTestSupport.h"

#include <cstring>
#include <limits>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

struct Shape {
  int64_t B, H, KH, T, S, D;
  int64_t G() const { return H / KH; }
};

enum class MaskKind { None, Causal, Window, Padded, Band };

// [T, S] causal, or [B, 1, T, S]: batch b sees keys t - w_b < s <= t with
// w_0 = 3, w_1 = 5; in batch 1 row 0 sees nothing (a fully masked row).
// Band: [T, S], keys t - 4 < s <= t, finfo.min elsewhere (a sliding window
// as Gemma 3's exported masks).
// Padded: Hugging Face's causal mask of a left-padded batch, finfo.min where
// masked (no -inf): batch 1's first 3 keys are padding, so its rows 0-2 see
// nothing and attend uniformly to every key (finfo.min absorbs the scores).
std::vector<int64_t> maskShape(const Shape &s, MaskKind m) {
  return m == MaskKind::Causal || m == MaskKind::Band ? std::vector<int64_t>{s.T, s.S}
                                                     : std::vector<int64_t>{s.B, 1, s.T, s.S};
}
std::vector<float> makeMask(const Shape &s, MaskKind m) {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> v;
  if (m == MaskKind::Band) {
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t j = 0; j < s.S; ++j)
        v.push_back(j <= t && j > t - 4 ? 0.0f : std::numeric_limits<float>::lowest());
    return v;
  }
  if (m == MaskKind::Padded) {
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t j = 0; j < s.S; ++j)
          v.push_back(j <= t && !(b == 1 && j < 3) ? 0.0f : std::numeric_limits<float>::lowest());
    return v;
  }
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
  // The sums of the terms' magnitudes (sum p |v| per output element, and
  // likewise for the gradients): what rounding P or dS to a half type can
  // change a result by, times its unit roundoff.
  std::vector<double> outAbs, dqAbs, dkAbs, dvAbs;
};

double maskAt(const Shape &s, MaskKind m, const std::vector<float> &mask, int64_t b, int64_t t, int64_t j) {
  if (m == MaskKind::None)
    return 0;
  if (m == MaskKind::Causal || m == MaskKind::Band)
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
  r.outAbs.assign(q.size(), 0), r.dqAbs.assign(q.size(), 0), r.dkAbs.assign(k.size(), 0), r.dvAbs.assign(v.size(), 0);
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
        // softmax from the max (not from lse, which a finfo.min row absorbs
        // log(sum) into: its keys get 1 / S each).
        for (int64_t j = 0; j < s.S; ++j) {
          double p = sum == 0 || std::isinf(x[j]) ? 0.0 : std::exp(x[j] - mx) / sum;
          for (int64_t d = 0; d < s.D; ++d) {
            r.out[qi(b, h, t, d)] += p * v[ki(b, h, j, d)];
            r.outAbs[qi(b, h, t, d)] += p * std::fabs(v[ki(b, h, j, d)]);
          }
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
            r.dqAbs[qi(b, h, t, d)] += std::fabs(ds * k[ki(b, h, j, d)] * scale);
            r.dkAbs[ki(b, h, j, d)] += std::fabs(ds * q[qi(b, h, t, d)] * scale);
            r.dvAbs[ki(b, h, j, d)] += std::fabs(p * dout[qi(b, h, t, d)]);
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

// The families of the attention kernels a plan dispatches ("flash_attention",
// "flash_attention_dq_coopmat", ...), sorted.
std::vector<std::string> attentionFamilies(const plan::Plan &p) {
  std::vector<std::string> out;
  for (const plan::Dispatch &d : p.program("eval")->dispatches) {
    const std::string &config = p.kernels[d.kernel].config;
    if (config.rfind("flash_attention", 0) == 0)
      out.push_back(config.substr(0, config.find(' ')));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// `config`: an injected #tessera.reduction_config or coopmat
// #tessera.matmul_config (else the profile's); `coopmat`: whether the
// cooperative-matrix kernels must be the ones dispatched (else the SIMT
// ones). A plan this device cannot run (cooperative matrices on Debian 12's
// lavapipe) is exported only, or skipped (docs/kernel-checks.md).
// The mask as a tessera.constant in the module: what imported models have
// (the kernels then recognise a band and visit only its blocks).
std::string constantMask(const std::string &name, const std::vector<int64_t> &shape, const std::vector<float> &v) {
  static const char *hex = "0123456789ABCDEF";
  std::string data = "0x";
  for (float f : v) {
    unsigned char bytes[4];
    std::memcpy(bytes, &f, 4);
    for (unsigned char c : bytes)
      data += hex[c >> 4], data += hex[c & 15];
  }
  return "    %" + name + " = tessera.constant dense<\"" + data + "\"> : " + tensorType(shape) + "\n";
}

void runCase(const Shape &s, MaskKind m, double scale, const std::string &elem, const std::string &profile,
             const std::string &config = "", bool coopmat = false, bool constMask = false) {
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
                     (m == MaskKind::None ? ""
                      : constMask       ? constantMask("mask", ms, makeMask(s, m))
                                        : param("mask", ms)) +
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
           profile, /*deferrable=*/coopmat);
  std::vector<std::string> want = {"flash_attention", "flash_attention_dkv", "flash_attention_dq"};
  if (coopmat)
    want = {"flash_attention_coopmat", "flash_attention_delta", "flash_attention_dkv_coopmat",
            "flash_attention_dq_coopmat"};
  EXPECT_EQ(attentionFamilies(r.plan), want);
  if (!r.skipReason().empty())
    GTEST_SKIP() << r.skipReason();
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
  if (m != MaskKind::None && !constMask)
    r.set("mask", mask);
  r.run();
  // f32: e32 of the row's scale; bf16 results: also one rounding (2^-8 |ref|).
  // On cooperative matrices P and dS enter the products rounded to the
  // operand type: plus its unit roundoff times the sum of |terms|.
  double rel = elem == "f32" ? 1e-5 : 1.0 / 256;
  const double uP = !coopmat ? 0.0 : elem == "f16" ? 0x1p-11 : 0x1p-8;
  auto check = [&](const std::string &name, const std::vector<double> &want, const std::vector<double> &abs = {}) {
    std::vector<float> got = r.get(name);
    expectNoNaN(got, name);
    std::vector<double> sc = maxAbs(want);
    for (size_t i = 0; i < sc.size(); ++i) {
      sc[i] *= elem == "f32" ? 10.0 : 0.02; // f32 sums of S or T terms; bf16 also f32 sums of rounded terms
      if (!abs.empty())
        sc[i] += uP * abs[i] / rel;
    }
    expectClose(got, want, sc, name, rel);
  };
  check("o", ref.out, ref.outAbs);
  check("l", ref.lse);
  check("dq", ref.dq, ref.dqAbs);
  check("dk", ref.dk, ref.dkAbs);
  check("dv", ref.dv, ref.dvAbs);
  if (m == MaskKind::Window && r.executed()) { // batch 1, row 0 of every head: nothing visible
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

TEST(KernelNumericsAttention, PaddedFinfoMinF32) {
  runCase({2, 4, 2, 37, 37, 16}, MaskKind::Padded, 0.3, "f32", kLavapipe);
}

TEST(KernelNumericsAttention, Bf16) {
  // Half buffers need a profile with 16-bit storage.
  runCase({2, 4, 2, 13, 13, 24}, MaskKind::Causal, 0.3, "bf16", kProfileDir + "/nvidia.json");
  runCase({2, 4, 2, 19, 19, 16}, MaskKind::Window, 0.25, "bf16", kLavapipe,
          "#tessera.reduction_config<strategy = workgroup, workgroup_size = 8>");
}

} // namespace

// Cooperative matrices (AttentionCoopMat.cpp) under lavapipe-coopmat.json
// (8x8x8 f16 fragments, subgroups of 8, blocks of 16 rows over 2 subgroups):
// exported on Debian 12, run on Debian 13's lavapipe by ctest
// kcheck_coopmat_trixie and validated by spirv_val_coopmat. T and S are no
// multiples of the 16-row blocks; head dims of 2 and 3 fragments.
namespace coop {
const std::string kProfile = std::string(TESSERA_TEST_PROFILE_DIR) + "/lavapipe-coopmat.json";
std::string config(int64_t br, int64_t bc, int64_t sm, int64_t sn) {
  return "#tessera.matmul_config<variant = \"\", kind = coopmat, tile = [" + std::to_string(br) + ", " +
         std::to_string(bc) + ", 8], thread = [8, 8], split_k = 1, mma = [8, 8, 8], subgroups = [" +
         std::to_string(sm) + ", " + std::to_string(sn) + "], operands = f16>";
}
} // namespace coop

TEST(KernelNumericsAttention, CoopMatCausalGqaF16) {
  runCase({2, 4, 2, 37, 37, 16}, MaskKind::Causal, 0.3, "f16", coop::kProfile, "", true);
}

TEST(KernelNumericsAttention, CoopMatSlidingWindowFullyMaskedRowF16) {
  runCase({2, 4, 2, 19, 19, 24}, MaskKind::Window, 0.25, "f16", coop::kProfile, "", true);
}

// The blocks a causal mask kills are skipped; rows that see nothing under
// finfo.min (no live key) make the forward run their rows' blocks again
// without skipping, and the backward keep every block of such a query.
TEST(KernelNumericsAttention, CoopMatPaddedFinfoMinF16) {
  runCase({2, 4, 2, 37, 37, 16}, MaskKind::Padded, 0.3, "f16", coop::kProfile, "", true);
}

// Constant masks (as imported models have): a causal one and a sliding
// window are bands, whose blocks outside the band are not visited and whose
// keys are masked by index; the padded one is not a band (the votes' path).
TEST(KernelNumericsAttention, CoopMatConstantMasksF16) {
  runCase({2, 4, 2, 37, 37, 16}, MaskKind::Causal, 0.3, "f16", coop::kProfile, "", true, true);
  runCase({1, 4, 2, 45, 45, 16}, MaskKind::Band, 0.3, "f16", coop::kProfile, "", true, true);
  runCase({2, 2, 1, 37, 37, 16}, MaskKind::Padded, 0.3, "f16", coop::kProfile, "", true, true);
}

// No mask, more keys than queries, one kv head per query head.
TEST(KernelNumericsAttention, CoopMatCrossF16) {
  runCase({1, 2, 2, 21, 29, 32}, MaskKind::None, 0.15, "f16", coop::kProfile, "", true);
}

// Large scores (scale 3): rows whose max grows by more than ln 256 from one
// key block to the next, where the forward rescales O (else it keeps the
// running max and skips the rescale).
TEST(KernelNumericsAttention, CoopMatLargeScoresF16) {
  runCase({1, 4, 2, 64, 64, 16}, MaskKind::Causal, 3.0, "f16", coop::kProfile, "", true);
}

// Injected configs: a 2 x 2 subgroup grid (two threads per softmax row), and
// 32 rows per workgroup (two fragments of rows per subgroup) with keys in
// blocks of 8.
TEST(KernelNumericsAttention, CoopMatSubgroupGridsF16) {
  runCase({1, 4, 1, 23, 23, 32}, MaskKind::Causal, 0.2, "f16", coop::kProfile, coop::config(16, 16, 2, 2), true);
  runCase({2, 2, 1, 45, 45, 16}, MaskKind::Causal, 0.25, "f16", coop::kProfile, coop::config(32, 8, 2, 1), true);
}

// A head dim of no whole fragments, and bf16 (no bf16 cooperative matrices on
// lavapipe): the SIMT kernels, whatever the profile says.
TEST(KernelNumericsAttention, CoopMatFallbackF16) {
  runCase({1, 2, 1, 13, 13, 20}, MaskKind::Causal, 0.3, "f16", coop::kProfile);
  runCase({1, 2, 1, 13, 13, 16}, MaskKind::Causal, 0.3, "bf16", coop::kProfile);
}

// nvidia.json's fa_tc_bf16 (16x16x16 bf16, 64-row workgroups, blocks of 32)
// at Qwen3's head dim with T = 70: exported, validated by spirv-val and run on
// the GPU (bench/kernel_numerics_gpu.sh), not on lavapipe.
TEST(KernelNumericsAttention, CoopMatNvidiaBf16) {
  runCase({1, 4, 2, 70, 70, 128}, MaskKind::Causal, 0.0883883, "bf16", kProfileDir + "/nvidia.json", "", true);
}

// The same with finfo.min padding (the skipped blocks, the forward's second
// pass and the backward's dead rows at nvidia.json's geometry).
TEST(KernelNumericsAttention, CoopMatNvidiaPaddedBf16) {
  runCase({2, 4, 2, 70, 70, 128}, MaskKind::Padded, 0.0883883, "bf16", kProfileDir + "/nvidia.json", "", true);
}

// Causal as a constant (a band) at nvidia.json's geometry.
TEST(KernelNumericsAttention, CoopMatNvidiaConstantCausalBf16) {
  runCase({1, 4, 2, 70, 70, 128}, MaskKind::Causal, 0.0883883, "bf16", kProfileDir + "/nvidia.json", "", true, true);
}
