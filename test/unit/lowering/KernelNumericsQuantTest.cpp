// KernelNumericsQuantTest - the matmul kernels reading block-quantised
// weights (Q8_0, Q4_0, TQ2_0; tessera.quant on the param, compiler/precision/
// Quantized.h), on the local Vulkan device, against a float64 product of the
// same dequantised values (runtime/gguf/Quant.h's decoder on the bytes the
// runtime's quantiser wrote).
//
// Every way the training graph reads a linear weight, in both storage
// orientations: the forward x W^T of a [out, in] weight (blocks along axis 1)
// and x W of an [in, out] one (transposed storage, blocks along axis 0), the
// activation gradients dY W and dY W^T (the reduction runs across the
// blocks), a batched activation folded into M, the weight as the lhs; M and N
// off the tiles (edges), under the tiled, direct and split-K kernels.
// Tolerance as KernelNumerics: 1e-5 (|ref| + sum |ab|).
// The cooperative-matrix kernels (KernelNumerics.CoopMatQuant*, f16
// activations, the lavapipe-coopmat profile: exported here, run on Debian 13's
// lavapipe by ctest kcheck_coopmat_trixie) round each dequantised value to the
// operand type while staging: the reference multiplies those rounded values.
#include "KernelTestSupport.h"

#include "runtime/gguf/Quant.h"
#include "runtime/weights/QuantizedWeights.h"

#include <fstream>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

struct QuantCase {
  std::vector<int64_t> x, w; // activation and weight shapes
  bool tx = false, tw = false;
  bool weightIsLhs = false;
  bool transposedStorage = false; // blocks along axis 0 of w
};

std::string quantModule(const std::vector<QuantCase> &cases, const std::string &kind, const std::string &act) {
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (size_t k = 0; k < cases.size(); ++k) {
    const QuantCase &c = cases[k];
    MatmulCase m = c.weightIsLhs ? MatmulCase{c.w, c.x, c.tw, c.tx} : MatmulCase{c.x, c.w, c.tx, c.tw};
    int64_t M, N, K;
    std::vector<int64_t> os = matmulShape(m, M, N, K);
    std::string n = std::to_string(k);
    std::string attrs;
    if (m.tl || m.tr)
      attrs = std::string(" {") + (m.tl ? "transpose_lhs = true" : "") + (m.tl && m.tr ? ", " : "") +
              (m.tr ? "transpose_rhs = true" : "") + "}";
    std::string q = " {tessera.quant = \"" + kind + "\"" + (c.transposedStorage ? ", tessera.quant_transposed" : "") + "}";
    body += "    %x" + n + " = tessera.param frozen \"x" + n + "\" : " + tensorType(c.x, act) + "\n" +
            "    %w" + n + " = tessera.param frozen \"w" + n + "\"" + q + " : " + tensorType(c.w, act) + "\n";
    std::string lhs = c.weightIsLhs ? "%w" + n : "%x" + n, rhs = c.weightIsLhs ? "%x" + n : "%w" + n;
    body += "    %r" + n + " = tessera.matmul " + lhs + ", " + rhs + attrs + " : (" + tensorType(m.lhs, act) + ", " +
            tensorType(m.rhs, act) + ") -> " + tensorType(os) + " loc(\"r" + n + "\")\n";
    keep.push_back({"%r" + n, os, "f32"});
  }
  return lossModule(body, keep);
}

// The float64 product and its condition sum |a b|.
void reference(const MatmulCase &c, const std::vector<float> &a, const std::vector<float> &b, std::vector<double> &ref,
               std::vector<double> &scale) {
  int64_t M, N, K;
  std::vector<int64_t> out = matmulShape(c, M, N, K);
  const int64_t batch = numel(out) / (M * N), aBatch = numel(c.lhs) / (M * K);
  ref.assign(numel(out), 0.0);
  scale.assign(numel(out), 0.0);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0, sa = 0;
        const int64_t la = aBatch > 1 ? bi * M * K : 0;
        for (int64_t kk = 0; kk < K; ++kk) {
          double x = a[la + (c.tl ? kk * M + m : m * K + kk)], y = b[c.tr ? n * K + kk : kk * N + n];
          s += x * y;
          sa += std::fabs(x * y);
        }
        ref[(bi * M + m) * N + n] = s;
        scale[(bi * M + m) * N + n] = sa;
      }
}

void runQuantMatmuls(const std::string &kind, const std::string &profile, int64_t block, const std::string &act = "f32",
                     bool coopmat = false) {
  const int64_t K = 2 * block, F = block; // reduction lengths of whole blocks
  std::vector<QuantCase> cases = {
      {{2, 37, K}, {23, K}, false, true},                  // forward x W^T, [out, in], batch folded, ragged
      {{37, K}, {K, 23}, false, false, false, true},       // forward x W, [in, out] stored transposed
      {{37, 23}, {23, F}, false, false},                   // dY W: reduction across the rows of blocks
      {{2, 19, 23}, {F, 23}, false, true, false, true},    // dY W^T of an [in, out] weight
      {{K, 21}, {29, K}, false, false, true},              // the weight as lhs
      {{70, K}, {66, K}, false, true},                     // several tiles in M and N
  };
  GpuRun r(quantModule(cases, kind, act), profile, /*deferrable=*/coopmat);
  // Cooperative-matrix kernels read the weights exactly when the test says so.
  int coop = 0, matmuls = 0;
  for (const plan::Dispatch &d : r.plan.program("eval")->dispatches) {
    const std::string &config = r.plan.kernels[d.kernel].config;
    if (config.rfind("matmul", 0) == 0 && config.rfind("matmul_splitk_sum", 0) != 0)
      ++matmuls, coop += config.find("kind = coopmat") != std::string::npos;
  }
  EXPECT_EQ(coop, coopmat ? matmuls : 0) << "matmul dispatches of kind coopmat under " << profile;
  if (!r.skipReason().empty())
    GTEST_SKIP() << r.skipReason();
  std::vector<std::vector<float>> xs, ws;
  for (size_t k = 0; k < cases.size(); ++k) {
    const QuantCase &c = cases[k];
    std::string n = std::to_string(k);
    xs.push_back(uniform(numel(c.x), -1, 1));
    for (float &v : xs.back())
      v = roundedTo(act, v);
    r.set("x" + n, xs.back());
    std::vector<float> w = uniform(numel(c.w), -1, 1);
    size_t i = r.buffer("w" + n);
    const plan::Buffer &b = r.plan.buffers[i];
    ASSERT_EQ(plan::dtypeName(b.dtype), kind);
    ASSERT_EQ(b.transposed, c.transposedStorage);
    weights::quantizeInto(b, w.data(), static_cast<uint8_t *>(r.data(i)));
    // The values the kernel must see: the blocks decoded on the host, back in w's layout.
    const int64_t R = c.w[0], C = c.w[1];
    std::vector<float> stored(size_t(R * C));
    gguf::decode(gguf::TensorType(weights::ggufTypeOf(b.dtype)), static_cast<const uint8_t *>(r.data(i)),
                 stored.size(), stored.data());
    std::vector<float> values(stored.size());
    for (int64_t rr = 0; rr < R; ++rr)
      for (int64_t cc = 0; cc < C; ++cc)
        values[size_t(rr * C + cc)] = c.transposedStorage ? stored[size_t(cc * R + rr)] : stored[size_t(rr * C + cc)];
    // SIMT kernels multiply the dequantised values in f32; cooperative
    // matrices take them in the operand type.
    if (coopmat)
      for (float &v : values)
        v = roundedTo(act, v);
    double moved = 0;
    for (size_t e = 0; e < w.size(); ++e)
      moved = std::max(moved, double(std::fabs(values[e] - w[e])));
    EXPECT_GT(moved, 0.0) << "the weight must be quantised";
    ws.push_back(values);
  }
  r.run();
  for (size_t k = 0; k < cases.size(); ++k) {
    const QuantCase &c = cases[k];
    MatmulCase m = c.weightIsLhs ? MatmulCase{c.w, c.x, c.tw, c.tx} : MatmulCase{c.x, c.w, c.tx, c.tw};
    std::vector<double> ref, scale;
    reference(m, c.weightIsLhs ? ws[k] : xs[k], c.weightIsLhs ? xs[k] : ws[k], ref, scale);
    expectClose(r.get("r" + std::to_string(k)), ref, scale,
                kind + " matmul case " + std::to_string(k) + " profile '" + profile + "'");
  }
}

std::string profileFile(const std::string &name, const std::string &json) {
  std::string path = testing::TempDir() + "/" + name + ".json";
  std::ofstream(path) << json;
  return path;
}

const std::string kSplit = R"({"name": "splitq", "matmul": {"variants": [
    {"name": "split", "min_k": 16, "split_k": 3, "tile_m": 32, "tile_n": 32, "tile_k": 8, "thread_m": 4, "thread_n": 2},
    {"name": "general", "tile_m": 16, "tile_n": 16, "tile_k": 8, "thread_m": 2, "thread_n": 2}]}})";
const std::string kDirect = R"({"name": "directq", "matmul": {"variants": [
    {"name": "general", "kind": "direct", "tile_m": 16, "tile_n": 32, "tile_k": 8, "thread_m": 2, "thread_n": 4}]}})";

// Cooperative matrices (lavapipe's 8x8x8 f16 shapes) reading the quantised weights.
const std::string kCoopMatLavapipeProfile = std::string(TESSERA_TEST_PROFILE_DIR) + "/lavapipe-coopmat.json";
TEST(KernelNumerics, CoopMatQuantQ8_0) { runQuantMatmuls("q8_0", kCoopMatLavapipeProfile, 32, "f16", true); }
TEST(KernelNumerics, CoopMatQuantQ4_0) { runQuantMatmuls("q4_0", kCoopMatLavapipeProfile, 32, "f16", true); }
TEST(KernelNumerics, CoopMatQuantTq2_0) { runQuantMatmuls("tq2_0", kCoopMatLavapipeProfile, 256, "f16", true); }

TEST(KernelNumericsQuant, Q8_0Lavapipe) { runQuantMatmuls("q8_0", kProfileDir + "/lavapipe.json", 32); }
TEST(KernelNumericsQuant, Q4_0Lavapipe) { runQuantMatmuls("q4_0", kProfileDir + "/lavapipe.json", 32); }
TEST(KernelNumericsQuant, Tq2_0Lavapipe) { runQuantMatmuls("tq2_0", kProfileDir + "/lavapipe.json", 256); }
TEST(KernelNumericsQuant, Q8_0Default) { runQuantMatmuls("q8_0", "", 32); }
TEST(KernelNumericsQuant, Q4_0SplitK) { runQuantMatmuls("q4_0", profileFile("splitq", kSplit), 32); }
TEST(KernelNumericsQuant, Tq2_0Direct) { runQuantMatmuls("tq2_0", profileFile("directq", kDirect), 256); }
// The H200's cooperative matrices (16x16x16 bf16, nvidia.json's device and its
// tc_bf16 tiles, here for every product): the dequantising runs of 8 that go
// to shared memory as 16-byte words, in both storage orientations, with edge
// tiles. Exported for tessera-kcheck on the GPU (bench/kernel_numerics_gpu.sh);
// Debian 13's spirv-val checks the modules; lavapipe has no bf16 shapes.
const std::string kNvidiaCoopMat = R"({"name": "nvidia-coopmat-quant",
  "device": {"match": {"vendor_id": 4318}, "subgroup_size": 32, "max_workgroup_invocations": 1024,
    "shared_memory_bytes": 49152, "max_workgroup_count": 65535, "max_buffer_bytes": 4294967295,
    "features": {"float16": true, "int16": true, "storage16": true, "bfloat16": true, "int8": true,
      "cooperative_matrix": [{"m": 16, "n": 16, "k": 16, "a": "bf16", "b": "bf16", "c": "f32", "result": "f32"}]}},
  "matmul": {"variants": [{"name": "tc_bf16", "kind": "coopmat", "precision": "bf16", "tile_m": 64, "tile_n": 64,
    "tile_k": 32, "mma_m": 16, "mma_n": 16, "mma_k": 16, "subgroups_m": 2, "subgroups_n": 2, "vector_width": 8},
    {"name": "general", "tile_m": 64, "tile_n": 64, "tile_k": 16, "thread_m": 4, "thread_n": 4}]}})";
TEST(KernelNumerics, CoopMatNvidiaQuantQ8_0) {
  runQuantMatmuls("q8_0", profileFile("nvidia-coopmat-quant", kNvidiaCoopMat), 32, "bf16", true);
}
TEST(KernelNumerics, CoopMatNvidiaQuantQ4_0) {
  runQuantMatmuls("q4_0", profileFile("nvidia-coopmat-quant", kNvidiaCoopMat), 32, "bf16", true);
}
TEST(KernelNumerics, CoopMatNvidiaQuantTq2_0) {
  runQuantMatmuls("tq2_0", profileFile("nvidia-coopmat-quant", kNvidiaCoopMat), 256, "bf16", true);
}

// The tensor-core profile falls back to SIMT kernels for quantised operands.
TEST(KernelNumericsQuant, Q4_0NvidiaFallsBackToSimt) { runQuantMatmuls("q4_0", kProfileDir + "/nvidia.json", 32); }

} // namespace
