// BitNet b1.58 weights derived at load (runtime/weights/TernaryWeights.h):
// the codes and scale equal transformers' rule (in torch: ternary_codes.py)
// on the fixture's weights, also through TQ2_0 blocks; hand-made cases
// pin ties to even, the clamp and an all-zero weight (eps).
#include "runtime/gguf/Quant.h"
#include "runtime/weights/OnnxWeights.h"
#include "runtime/weights/TernaryWeights.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

using namespace tessera;

namespace {

const std::string kFixture = std::string(TESSERA_TEST_SOURCE_DIR) + "/../../fixtures/hf/bitnet/model.onnx";

TEST(Ternary, TiesClampAndZeros) {
  // mean |w| = 1: s = 1; 0.5 -> 0, 1.5 -> 2 -> 1 (clamped), -2.5 -> -2 -> -1.
  std::vector<float> w = {0.5f, 1.5f, -2.5f, -0.5f, 0.25f, -0.25f, 1.5f, -1.0f}; // mean |w| = 1
  weights::Ternarized t = weights::ternarize(w.data(), w.size(), 1e-5f);
  EXPECT_EQ(t.codes, (std::vector<float>{0, 1, -1, 0, 0, 0, 1, -1}));
  EXPECT_EQ(t.scale, 1.0f);
  std::vector<float> z(8, 0.0f);
  weights::Ternarized tz = weights::ternarize(z.data(), z.size(), 1e-5f);
  EXPECT_EQ(tz.codes, z);
  EXPECT_EQ(tz.scale, 1.0f / (1.0f / 1e-5f)); // eps keeps it finite
}

TEST(Ternary, FixtureCodesEqualTransformersRule) {
  test::TempDir dir;
  test::RunResult r = test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR +
                                    "/ternary_codes.py " + test::quote(kFixture) + " " + test::quote(dir / "codes"),
                                dir);
  ASSERT_EQ(r.code, 0) << r.err;
  weights::OnnxWeights onnx(kFixture);
  int checked = 0;
  std::istringstream names(r.out);
  for (std::string name; std::getline(names, name);) {
    if (name.empty()) continue;
    std::vector<uint8_t> bytes = test::readBytes(dir / ("codes/" + name + ".bin"));
    std::vector<int64_t> shape = onnx.shape(name);
    ASSERT_EQ(shape.size(), 2u) << name;
    const size_t n = size_t(shape[0] * shape[1]);
    ASSERT_EQ(bytes.size(), n + 4) << name;
    float wantScale;
    std::memcpy(&wantScale, bytes.data() + n, 4);

    plan::Buffer codes;
    codes.name = name, codes.kind = plan::BufferKind::Weight, codes.dtype = plan::DType::TQ2_0;
    codes.shape = shape, codes.ternary = plan::Ternary::Codes, codes.ternary_eps = 1e-5f;
    codes.bytes = plan::bufferBytes(codes.dtype, n);
    std::vector<uint8_t> blocks(codes.bytes);
    weights::loadTernaryInto(onnx, codes, blocks.data());
    std::vector<float> got(n);
    gguf::decode(gguf::TensorType::TQ2_0, blocks.data(), n, got.data());
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i)
      if (got[i] != float(int8_t(bytes[i])) && bad++ < 5)
        ADD_FAILURE() << name << "[" << i << "]: runtime code " << got[i] << ", transformers " << int(int8_t(bytes[i]));

    plan::Buffer scale = codes;
    scale.dtype = plan::DType::F32, scale.shape = {}, scale.ternary = plan::Ternary::Scale, scale.bytes = 4;
    float gotScale = 0;
    weights::loadTernaryInto(onnx, scale, &gotScale);
    // numpy sums |w| in f32 (pairwise), the runtime in double: the mean may
    // differ in its last bit.
    EXPECT_LE(std::fabs(gotScale - wantScale), 2 * std::nextafter(wantScale, 1.0f) - 2 * wantScale) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

} // namespace
