// KernelNumericsBitLinearTest - tessera.bitlinear_matmul (kernels/BitLinear.cpp)
// on the local Vulkan device: BitNet's int8 activation codes times ternary
// codes (TQ2_0 blocks), summed in int32, then / a_row * scale in f32.
//
// The reference is independent of the kernels' arithmetic: the codes by
// act_quant's f32 steps (as KernelNumerics.ActQuant), the sum of the code
// products exactly in int64, then the two f32 roundings the op defines
// (float(S) is exact here: |S| <= 128 K < 2^24). So the results must be equal
// bit for bit, and the packed codes the first kernel writes must be the
// reference codes byte for byte. Under the default profile (no
// integer_dot_product: integer multiply-adds) and lavapipe's (OpSDot on
// packed 4x8-bit words; the plan must ask for the feature, and lavapipe,
// Vulkan 1.3, has it). Shapes: rows and columns off the 4 x 4 register tiles,
// a batch folded into rows, K of 2 and 3 TQ2_0 blocks, a row of ties, an
// all-zero row, rows whose codes reach -128 and 127.
#include "KernelTestSupport.h"

#include "runtime/weights/QuantizedWeights.h"

#include <algorithm>
#include <cmath>

using namespace tessera;

namespace {

using namespace tessera::kerneltest;

struct BitLinearCase {
  std::vector<int64_t> x; // [..., M, K]
  int64_t n = 0;          // output features
};

// act_quant's a and codes of one row, in transformers' f32 steps.
void quantiseRow(const float *x, int64_t k, float &a, std::vector<int32_t> &q) {
  double m = 0;
  for (int64_t j = 0; j < k; ++j)
    m = std::max(m, std::fabs((double)x[j]));
  a = (float)((double)(float)(1.0 / std::max(m, (double)1e-5f)) * 127.0);
  q.resize(k);
  for (int64_t j = 0; j < k; ++j) {
    double xa = (double)(float)((double)x[j] * (double)a);
    q[j] = (int32_t)std::min(127.0, std::max(-128.0, std::nearbyint(xa)));
  }
}

void runBitLinear(const std::string &profile, bool wantIntegerDot) {
  const std::vector<BitLinearCase> cases = {
      {{2, 37, 512}, 23}, // batch folded into 74 rows, N off the tiles
      {{6, 768}, 66},     // K of three blocks
  };
  std::string body;
  std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>> keep;
  for (size_t c = 0; c < cases.size(); ++c) {
    const std::vector<int64_t> &xs = cases[c].x;
    std::vector<int64_t> ws = {cases[c].n, xs.back()}, ys = xs;
    ys.back() = cases[c].n;
    std::string n = std::to_string(c);
    body += param("x" + n, xs) + "    %w" + n + " = tessera.param frozen \"w" + n +
            "\" {tessera.quant = \"tq2_0\"} : " + tensorType(ws) + "\n" + param("s" + n, {}) + "    %y" + n +
            " = tessera.bitlinear_matmul %x" + n + ", %w" + n + ", %s" + n + " : (" + tensorType(xs) + ", " +
            tensorType(ws) + ", tensor<f32>) -> " + tensorType(ys) + " loc(\"y" + n + "\")\n";
    keep.push_back({"%y" + n, ys, "f32"});
  }
  GpuRun r(lossModule(body, keep), profile);
  bool dot = std::find(r.plan.features.begin(), r.plan.features.end(), plan::kFeatureIntegerDot) !=
             r.plan.features.end();
  ASSERT_EQ(dot, wantIntegerDot) << "plan feature integer_dot_product under profile '" << profile << "'";
  int products = 0;
  for (const plan::Kernel &k : r.plan.kernels)
    products += k.name.rfind("bitlinear_matmul", 0) == 0;
  ASSERT_EQ(products, 2) << "one integer product kernel per shape";

  for (size_t c = 0; c < cases.size(); ++c) {
    const std::vector<int64_t> &xs = cases[c].x;
    const int64_t k = xs.back(), rows = numel(xs) / k, n = cases[c].n;
    const std::string id = std::to_string(c);
    std::vector<float> x = uniform(numel(xs), -3, 3);
    const float ties[8] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 126.5f};
    std::copy(ties, ties + 8, x.begin());                // row 0: a = 1, ties to even
    std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);   // row 1: all zero (eps)
    x[2 * k + 5] = -40.0f;                               // row 2: its code -128 is clamped from -127
    x[3 * k + 7] = 50.0f;                                // row 3: 127
    // Ternary codes, about a third each, as floats the runtime's TQ2_0 writer stores exactly.
    std::vector<float> w = uniform(n * k, -1.5, 1.5);
    for (float &v : w)
      v = std::nearbyint(v);
    const float scale = 0.0371f;
    r.set("x" + id, x);
    size_t wi = r.buffer("w" + id);
    ASSERT_EQ(r.plan.buffers[wi].dtype, plan::DType::TQ2_0);
    weights::quantizeInto(r.plan.buffers[wi], w.data(), static_cast<uint8_t *>(r.data(wi)));
    r.set("s" + id, {scale});
    r.run();

    std::vector<double> want(rows * n);
    std::vector<int32_t> wantWords;
    for (int64_t row = 0; row < rows; ++row) {
      float a;
      std::vector<int32_t> q;
      quantiseRow(x.data() + row * k, k, a, q);
      for (int64_t j = 0; j < k; j += 4) {
        uint32_t word = 0;
        for (int b = 0; b < 4; ++b)
          word |= uint32_t(q[j + b] & 0xff) << (8 * b);
        wantWords.push_back(int32_t(word));
      }
      for (int64_t col = 0; col < n; ++col) {
        int64_t s = 0;
        for (int64_t j = 0; j < k; ++j)
          s += int64_t(q[j]) * int64_t(w[col * k + j]);
        float d = (float)((double)(float)s / (double)a); // one correctly rounded division
        want[row * n + col] = (double)(float)((double)d * (double)scale);
      }
    }
    expectClose(r.get("y" + id), want, {}, "bitlinear_matmul " + id + " " + profile, 0.0, 0.0);
    // The packed int8 codes of the first kernel (its scratch "<value>.codes";
    // the two cases' differ in size).
    int found = 0;
    for (size_t i = 0; i < r.plan.buffers.size(); ++i) {
      const plan::Buffer &b = r.plan.buffers[i];
      bool codes = b.name.size() > 6 && b.name.compare(b.name.size() - 6, 6, ".codes") == 0;
      if (b.dtype != plan::DType::I32 || !codes || b.bytes != wantWords.size() * 4)
        continue;
      std::vector<int32_t> got(wantWords.size());
      std::memcpy(got.data(), r.data(i), b.bytes);
      expectEqual(got, wantWords, "packed int8 codes " + id + " " + profile);
      ++found;
    }
    EXPECT_EQ(found, 1) << "the packed codes buffer of case " << id;
  }
}

} // namespace

TEST(KernelNumerics, BitLinearIntegerMultiplyAdd) { runBitLinear("", false); }
TEST(KernelNumerics, BitLinearIntegerDotLavapipe) { runBitLinear(kProfileDir + "/lavapipe.json", true); }
