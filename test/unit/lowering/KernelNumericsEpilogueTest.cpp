// KernelNumericsEpilogueTest - tessera.fused_matmul (alpha * A B + D, one
// rounding at the final store) and the skinny matmul kernel, on every matmul
// kernel kind: tiled, direct, skinny, each also split over K (the epilogue
// then runs in matmul_splitk_sum), and coopmat (exported where the device
// has no cooperative matrices: docs/kernel-checks.md). Operands and results
// in f32, f16 and bf16 storage; ragged sizes (edge tiles everywhere), a
// batched product, transposes.
//
// Reference: float64 alpha * sum_k a b + d from the rounded operands.
// Tolerance: 1e-5 (|ref| + |alpha| sum |ab| + |d|) for the f32 accumulation,
// plus the result type's unit roundoff times |ref|. One case per set makes
// d cancel alpha A B to about 1% of its size: a kernel that rounded the
// product to the result type before adding d would miss by u |alpha A B|,
// far outside the tolerance there.
#include "KernelTestSupport.h"

#include <fstream>

namespace {

using namespace tessera::kerneltest;

struct EpilogueCase {
  MatmulCase mm;
  double alpha = 1.0;
  bool addend = true;
  bool cancel = false; // d ~ -alpha A B
};

std::vector<EpilogueCase> epilogueCases() {
  return {
      {{{2, 37, 19}, {23, 19}, false, true}, 0.5},          // LoRA up + base: folded batch, ragged
      {{{70, 40}, {8, 40}, false, true}, 2.0, false},       // LoRA down x A^T s: N = rank, no addend
      {{{74, 8}, {74, 45}, true, false}, 0.25},             // adapter gradient: M = rank, K = tokens
      {{{2, 3, 17, 9}, {3, 9, 21}}, -1.5},                  // batch broadcast
      {{{64, 64}, {64, 64}}, 1.0},                          // whole tiles, addend only
      {{{33, 600}, {5, 600}, false, true}, 3.0},            // long K (split-K profiles split it)
      {{{40, 30}, {30, 50}}, 0.75, true, true},             // cancellation: one rounding only
      {{{1, 1}, {1, 1}}, -2.0},                             // 1 x 1 x 1
      // Rows of 16-byte multiples (the coopmat kernel's fragment epilogue on
      // the tiles inside C, scratch on the others):
      {{{70, 40}, {40, 56}}, 1.25},                         // whole and edge tiles in one product
      {{{64, 24}, {24, 96}}, -0.5, false},                  // whole tiles, alpha without addend
      {{{2, 40, 16}, {2, 16, 40}}, 2.0},                    // batched: the addend's tile per batch
      {{{64, 32}, {32, 64}}, 0.75, true, true},             // cancellation on whole tiles
  };
}

double unitRoundoff(const std::string &type) {
  return type == "f16" ? 0x1p-11 : type == "bf16" ? 0x1p-8 : 0.0;
}

std::string alphaText(double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17e", a);
  return buf;
}

std::string epilogueModule(const std::vector<EpilogueCase> &cases, const std::string &in, const std::string &out,
                           const std::string &add) {
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (size_t k = 0; k < cases.size(); ++k) {
    const EpilogueCase &c = cases[k];
    int64_t M, N, K;
    std::vector<int64_t> os = matmulShape(c.mm, M, N, K);
    std::string n = std::to_string(k);
    std::string attrs = "{alpha = " + alphaText(c.alpha) + " : f64";
    if (c.mm.tl)
      attrs += ", transpose_lhs = true";
    if (c.mm.tr)
      attrs += ", transpose_rhs = true";
    attrs += "}";
    body += param("a" + n, c.mm.lhs, in) + param("b" + n, c.mm.rhs, in);
    std::string plus, plusType;
    if (c.addend) {
      body += param("d" + n, os, add);
      plus = " plus %d" + n;
      plusType = ", " + tensorType(os, add);
    }
    body += "    %r" + n + " = tessera.fused_matmul %a" + n + ", %b" + n + plus + " " + attrs + " : (" +
            tensorType(c.mm.lhs, in) + ", " + tensorType(c.mm.rhs, in) + ")" + plusType + " -> " +
            tensorType(os, out) + " loc(\"r" + n + "\")\n";
    keep.push_back({"%r" + n, os, out});
  }
  return lossModule(body, keep);
}

// Runs `cases` under `profile`; every product's kernel must be of `kind`.
void runEpilogues(const std::vector<EpilogueCase> &cases, const std::string &profile, const std::string &kind,
                  const std::string &in, const std::string &out, const std::string &add) {
  GpuRun r(epilogueModule(cases, in, out, add), profile, /*deferrable=*/true);
  int products = 0, ofKind = 0;
  for (const plan::Dispatch &d : r.plan.program("eval")->dispatches) {
    const std::string &config = r.plan.kernels[d.kernel].config;
    if (config.rfind("matmul", 0) == 0 && config.rfind("matmul_splitk_sum", 0) != 0) {
      ++products;
      ofKind += config.find("kind = " + kind) != std::string::npos;
    }
  }
  EXPECT_EQ(products, (int)cases.size());
  EXPECT_EQ(ofKind, products) << "product kernels of kind " << kind << " under " << profile;
  if (!r.skipReason().empty())
    GTEST_SKIP() << r.skipReason();
  std::vector<std::vector<float>> as, bs, ds;
  std::vector<std::vector<double>> refs, scales;
  for (size_t k = 0; k < cases.size(); ++k) {
    const EpilogueCase &c = cases[k];
    std::string n = std::to_string(k);
    as.push_back(roundedTo(in, uniform(numel(c.mm.lhs), -1, 1)));
    bs.push_back(roundedTo(in, uniform(numel(c.mm.rhs), -1, 1)));
    r.set("a" + n, as.back());
    r.set("b" + n, bs.back());
    // The product in float64 and its condition sum |ab|.
    int64_t M, N, K;
    std::vector<int64_t> os = matmulShape(c.mm, M, N, K);
    std::vector<int64_t> lb(c.mm.lhs.begin(), c.mm.lhs.end() - 2), rb(c.mm.rhs.begin(), c.mm.rhs.end() - 2);
    std::vector<double> prod(numel(os)), sabs(numel(os));
    for (int64_t i = 0; i < numel(os); ++i) {
      auto co = unravel(i, os);
      std::vector<int64_t> bc(co.begin(), co.end() - 2);
      int64_t m = co[co.size() - 2], nn = co.back();
      int64_t la = bcast(bc, lb) * M * K, rbo = bcast(bc, rb) * K * N;
      double s = 0, sa = 0;
      for (int64_t kk = 0; kk < K; ++kk) {
        double x = as[k][la + (c.mm.tl ? kk * M + m : m * K + kk)];
        double y = bs[k][rbo + (c.mm.tr ? nn * K + kk : kk * N + nn)];
        s += x * y;
        sa += std::fabs(x * y);
      }
      prod[i] = s, sabs[i] = sa;
    }
    std::vector<float> d(numel(os), 0.0f);
    if (c.addend) {
      d = uniform(numel(os), -1, 1);
      if (c.cancel)
        for (size_t i = 0; i < d.size(); ++i)
          d[i] = float(-c.alpha * prod[i] + 0.01 * d[i]);
      d = roundedTo(add, d);
      r.set("d" + n, d);
    }
    std::vector<double> ref(numel(os)), scale(numel(os));
    for (int64_t i = 0; i < numel(os); ++i) {
      ref[i] = c.alpha * prod[i] + d[i];
      scale[i] = std::fabs(c.alpha) * sabs[i] + std::fabs(d[i]);
    }
    refs.push_back(ref);
    scales.push_back(scale);
  }
  r.run();
  const double u = unitRoundoff(out), acc = 1e-5;
  for (size_t k = 0; k < cases.size(); ++k) {
    std::vector<double> scale = scales[k];
    // tol = (acc + u) |ref| + acc scale, as rel * (|ref| + scale').
    for (double &x : scale)
      x *= acc / (acc + u);
    expectClose(r.get("r" + std::to_string(k)), refs[k], scale,
                in + " -> " + out + " (+ " + add + ") fused_matmul case " + std::to_string(k) + " kind " + kind +
                    " profile '" + profile + "'",
                acc + u, out == "f16" ? 0x1p-25 : 1.2e-38);
  }
}

// A profile of one matmul variant (the given JSON fields) for this device.
std::string variantProfile(const std::string &name, const std::string &fields, const std::string &device = "") {
  std::string path = testing::TempDir() + "/epilogue-" + name + ".json";
  std::ofstream(path) << "{\"name\": \"" << name << "\", " << device << "\"matmul\": {\"variants\": [{\"name\": \""
                      << name << "\", " << fields << "}]}}";
  return path;
}

// lavapipe's limits with 16-bit storage (the half-precision cases).
const char *kSimtDevice =
    R"("device": {"subgroup_size": 8, "max_workgroup_invocations": 1024, "shared_memory_bytes": 32768, "max_workgroup_count": 65535,
       "features": {"float16": true, "int16": true, "storage16": true}}, )";
const char *kTiled = R"("kind": "tiled", "tile_m": 32, "tile_n": 16, "tile_k": 8, "thread_m": 4, "thread_n": 2)";
const char *kDirect = R"("kind": "direct", "tile_m": 16, "tile_n": 32, "tile_k": 8, "thread_m": 2, "thread_n": 4)";
const char *kSkinny = R"("kind": "skinny", "tile_m": 4, "tile_n": 16, "tile_k": 64, "thread_m": 64, "thread_n": 1)";

void allTypes(const std::string &profile, const std::string &kind) {
  runEpilogues(epilogueCases(), profile, kind, "f32", "f32", "f32");
  runEpilogues(epilogueCases(), profile, kind, "bf16", "bf16", "bf16");
  runEpilogues(epilogueCases(), profile, kind, "f16", "f16", "f32");
  runEpilogues(epilogueCases(), profile, kind, "bf16", "f32", "bf16");
}

TEST(KernelNumericsEpilogue, Tiled) { allTypes(variantProfile("tiled", kTiled, kSimtDevice), "tiled"); }
TEST(KernelNumericsEpilogue, TiledSplitK) {
  allTypes(variantProfile("tiled-split", std::string(kTiled) + R"(, "split_k": 3)", kSimtDevice), "tiled");
}
TEST(KernelNumericsEpilogue, Direct) { allTypes(variantProfile("direct", kDirect, kSimtDevice), "direct"); }
TEST(KernelNumericsEpilogue, DirectSplitK) {
  allTypes(variantProfile("direct-split", std::string(kDirect) + R"(, "split_k": 4)", kSimtDevice), "direct");
}
TEST(KernelNumericsEpilogue, Skinny) { allTypes(variantProfile("skinny", kSkinny, kSimtDevice), "skinny"); }
TEST(KernelNumericsEpilogue, SkinnySplitK) {
  allTypes(variantProfile("skinny-split", std::string(kSkinny) + R"(, "split_k": 3)", kSimtDevice), "skinny");
}
// Whole tiles of one thread's accumulators along M (the adapter gradients'
// orientation) and fewer threads than a K range.
TEST(KernelNumericsEpilogue, SkinnyTall) {
  allTypes(variantProfile("skinny-tall",
                          R"("kind": "skinny", "tile_m": 16, "tile_n": 8, "tile_k": 16, "thread_m": 32, "thread_n": 1)",
                          kSimtDevice),
           "skinny");
}

// Cooperative matrices: lavapipe's 8x8x8 f16 shape (Debian 13's Mesa; on
// Debian 12 exported only), the epilogue on fragments for the tiles inside C
// (an addend of f32 or the kernel's half type) and on the scratch-fragment
// path for the others (and a bf16 addend), also split over K.
const char *kCoopDevice =
    R"("device": {"subgroup_size": 8, "max_workgroup_invocations": 1024, "shared_memory_bytes": 32768, "max_workgroup_count": 65535,
       "features": {"float16": true, "int16": true, "storage16": true, "bfloat16": false, "int8": true,
                    "cooperative_matrix": [{"m": 8, "n": 8, "k": 8, "a": "f16", "b": "f16", "c": "f32", "result": "f32"}]}}, )";
const char *kCoop = R"("kind": "coopmat", "precision": "f16", "tile_m": 32, "tile_n": 32, "tile_k": 16, "mma_m": 8, "mma_n": 8, "mma_k": 8, "subgroups_m": 2, "subgroups_n": 2, "vector_width": 8)";
TEST(KernelNumericsEpilogue, CoopMat) {
  std::string p = variantProfile("coopmat", kCoop, kCoopDevice);
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "f32", "f32");
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "f16", "f16");
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "bf16", "bf16");
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "f16", "f32");
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "f32", "f16");
}
TEST(KernelNumericsEpilogue, CoopMatSplitK) {
  std::string p = variantProfile("coopmat-split", std::string(kCoop) + R"(, "split_k": 2)", kCoopDevice);
  runEpilogues(epilogueCases(), p, "coopmat", "f16", "f32", "f16");
}

// nvidia.json's 16x16x16 shapes, bf16 kernels included (retyped bf16
// fragments): exported here, run on the GPU with tessera-kcheck. Tiles of
// 64 so that the products hold whole and edge tiles.
const char *kNvidiaDevice =
    R"("device": {"subgroup_size": 32, "max_workgroup_invocations": 1024, "shared_memory_bytes": 49152, "max_workgroup_count": 65535,
       "features": {"float16": true, "int16": true, "storage16": true, "bfloat16": true, "int8": true,
                    "workgroup_cooperative_matrix": true,
                    "cooperative_matrix": [{"m": 16, "n": 16, "k": 16, "a": "f16", "b": "f16", "c": "f32", "result": "f32"},
                                           {"m": 16, "n": 16, "k": 16, "a": "bf16", "b": "bf16", "c": "f32", "result": "f32"}]}}, )";
std::string nvidiaCoop(const std::string &precision) {
  return R"("kind": "coopmat", "precision": ")" + precision +
         R"(", "tile_m": 64, "tile_n": 64, "tile_k": 32, "mma_m": 16, "mma_n": 16, "mma_k": 16, "subgroups_m": 2, "subgroups_n": 2, "vector_width": 8)";
}
std::vector<EpilogueCase> nvidiaEpilogueCases() {
  return {
      {{{130, 48}, {48, 200}}, 1.25},                       // whole and edge tiles in one product
      {{{128, 32}, {32, 128}}, -0.5, false},                // whole tiles, alpha without addend
      {{{2, 64, 32}, {2, 32, 72}}, 2.0},                    // batched, edge tiles along N
      {{{128, 64}, {64, 64}}, 0.75, true, true},            // cancellation on whole tiles
      {{{96, 40}, {72, 40}, false, true}, 1.0},             // addend only, transposed rhs
      {{{2, 37, 19}, {23, 19}, false, true}, 0.5},          // rows not 16-byte aligned: scratch
  };
}
TEST(KernelNumericsEpilogue, CoopMatNvidiaBf16) {
  std::string p = variantProfile("coopmat-nv-bf16", nvidiaCoop("bf16"), kNvidiaDevice);
  runEpilogues(nvidiaEpilogueCases(), p, "coopmat", "bf16", "bf16", "bf16");
  runEpilogues(nvidiaEpilogueCases(), p, "coopmat", "bf16", "bf16", "f32");
  runEpilogues(nvidiaEpilogueCases(), p, "coopmat", "bf16", "f32", "bf16");
}
TEST(KernelNumericsEpilogue, CoopMatNvidiaF16) {
  std::string p = variantProfile("coopmat-nv-f16", nvidiaCoop("f16"), kNvidiaDevice);
  runEpilogues(nvidiaEpilogueCases(), p, "coopmat", "f16", "f16", "f16");
  runEpilogues(nvidiaEpilogueCases(), p, "coopmat", "f16", "f32", "f16");
}

// Workgroup-scope matrices (VK_NV_cooperative_matrix2; exported here, run on
// the H200 with tessera-kcheck): one 64 x 64 matrix per workgroup of
// `invocations`, K 32 at a time from the operands' buffers, the epilogue on
// the matrix; shapes the tiles divide (the selection gives others to the
// next variant), plain, batched, transposed and split over K.
std::string nvidiaWorkgroup(const std::string &precision, int subgroupsN, int splitK = 1) {
  return R"("kind": "coopmat", "scope": "workgroup", "precision": ")" + precision +
         R"(", "tile_m": 64, "tile_n": 64, "tile_k": 32, "mma_m": 16, "mma_n": 16, "mma_k": 16, "subgroups_m": 2, "subgroups_n": )" +
         std::to_string(subgroupsN) + R"(, "split_k": )" + std::to_string(splitK) + R"(, "vector_width": 8)";
}
std::vector<EpilogueCase> workgroupEpilogueCases() {
  return {
      {{{128, 64}, {64, 192}}, 1.25},                    // addend and alpha
      {{{128, 32}, {32, 128}}, -0.5, false},             // alpha without addend
      {{{2, 64, 96}, {2, 96, 64}}, 2.0},                 // batched
      {{{128, 64}, {64, 64}}, 0.75, true, true},         // cancellation
      {{{64, 128}, {128, 64}, true, true}, 1.0},         // both transposed
  };
}
TEST(KernelNumericsEpilogue, CoopMatNvidiaWorkgroupBf16) {
  std::string p = variantProfile("coopmat-wg-bf16", nvidiaWorkgroup("bf16", 2), kNvidiaDevice);
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "bf16", "bf16", "bf16");
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "bf16", "bf16", "f32");
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "bf16", "f32", "bf16");
}
TEST(KernelNumericsEpilogue, CoopMatNvidiaWorkgroup256F16) {
  std::string p = variantProfile("coopmat-wg-f16", nvidiaWorkgroup("f16", 4), kNvidiaDevice);
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "f16", "f16", "f16");
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "f16", "f32", "f16");
}
TEST(KernelNumericsEpilogue, CoopMatNvidiaWorkgroupSplitK) {
  std::string p = variantProfile("coopmat-wg-split", nvidiaWorkgroup("bf16", 2, 2), kNvidiaDevice);
  runEpilogues(workgroupEpilogueCases(), p, "coopmat", "bf16", "f32", "bf16");
}

} // namespace
