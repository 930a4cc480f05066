// OnnxWeights against ONNX files written at test time by python3-onnx.
#include "runtime/weights/OnnxWeights.h"
#include "runtime/util/Half.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

using namespace tessera;
using tessera::test::TempDir;
using weights::OnnxWeights;
using weights::WeightsError;

namespace {

class OnnxWeightsTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    auto r = test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/make_onnx.py " +
                           test::quote(dir_->path.string()),
                       *dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    expected_ = new nlohmann::json(nlohmann::json::parse(test::readText(*dir_ / "expected.json")));
  }
  static void TearDownTestSuite() {
    delete expected_;
    delete dir_;
  }
  static std::string file(const std::string &name) { return *dir_ / name; }
  static std::vector<float> expected(const std::string &name) { return (*expected_)[name].get<std::vector<float>>(); }

  static std::string error(const std::function<void()> &f) {
    try {
      f();
    } catch (const WeightsError &e) {
      return e.what();
    }
    return "(no error)";
  }

  static TempDir *dir_;
  static nlohmann::json *expected_;
};

TempDir *OnnxWeightsTest::dir_ = nullptr;
nlohmann::json *OnnxWeightsTest::expected_ = nullptr;

} // namespace

TEST_F(OnnxWeightsTest, IndexesInitializersAndConstants) {
  OnnxWeights w(file("model.onnx"));
  for (const char *name : {"w_raw", "w_float_data", "w_fp16", "w_fp16_int32", "w_bf16", "w_double", "const_out",
                           "model.layers.0.mlp.up_proj.weight", "w_int64"})
    EXPECT_TRUE(w.contains(name)) << name;
  EXPECT_FALSE(w.contains("x"));
  EXPECT_EQ(w.shape("w_raw"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.shape("model.layers.0.mlp.up_proj.weight"), (std::vector<int64_t>{64, 128}));
}

TEST_F(OnnxWeightsTest, DecodesEveryStorage) {
  OnnxWeights w(file("model.onnx"));
  EXPECT_EQ(w.load("w_raw", {2, 3}), expected("w_raw"));                 // raw_data
  EXPECT_EQ(w.load("w_float_data", {4}), expected("w_float_data"));     // packed float_data
  EXPECT_EQ(w.load("w_fp16", {6}), expected("w_fp16"));                 // raw fp16 incl. subnormal and 65504
  EXPECT_EQ(w.load("w_fp16_int32", {2, 2}), expected("w_fp16_int32")); // fp16 bit patterns in int32_data
  EXPECT_EQ(w.load("w_bf16", {3}), expected("w_bf16"));
  EXPECT_EQ(w.load("w_double", {3}), expected("w_double"));             // double_data -> f32
  EXPECT_EQ(w.load("const_out", {5}), expected("const_out"));           // Constant node value
  EXPECT_EQ(w.load("model.layers.0.mlp.up_proj.weight", {64, 128}), expected("model.layers.0.mlp.up_proj.weight"));
  // Size-1 dimensions may differ.
  EXPECT_EQ(w.load("w_float_data", {1, 4}), expected("w_float_data"));
  std::vector<float> into(6, -1);
  w.loadInto("w_raw", {2, 3}, into.data());
  EXPECT_EQ(into, expected("w_raw"));
}

TEST_F(OnnxWeightsTest, ExternalData) {
  OnnxWeights w(file("model_ext.onnx"));
  EXPECT_EQ(w.load("w_raw", {2, 3}), expected("w_raw"));
  EXPECT_EQ(w.load("big", {64, 128}), expected("model.layers.0.mlp.up_proj.weight"));
  EXPECT_EQ(w.load("w_fp16", {6}), expected("w_fp16"));
}

TEST_F(OnnxWeightsTest, Errors) {
  std::string m = file("model.onnx");
  OnnxWeights w(m);
  EXPECT_EQ(error([&] { w.load("x", {1}); }), m + ": initializer 'x' not found");
  EXPECT_EQ(error([&] { w.load("model.layers.0.mlp.up_proj.weight", {64, 64}); }),
            m + ": initializer 'model.layers.0.mlp.up_proj.weight' has shape [64,128] but the plan expects [64,64]");
  EXPECT_EQ(error([&] { w.load("w_raw", {3, 2}); }), m + ": initializer 'w_raw' has shape [2,3] but the plan expects [3,2]");
  EXPECT_EQ(error([&] { w.load("w_int64", {2}); }),
            m + ": initializer 'w_int64' has data type INT64 (7); weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE");
  EXPECT_EQ(error([&] { w.load("w_uint8", {2, 2}); }),
            m + ": initializer 'w_uint8' has data type UINT8 (2); weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE");
  EXPECT_EQ(error([&] { w.load("w_int4", {4}); }),
            m + ": initializer 'w_int4' has data type INT4 (22); weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE");
  uint16_t half[2];
  EXPECT_EQ(error([&] { w.loadInto("w_string", {2}, OnnxWeights::Storage::F16, half); }),
            m + ": initializer 'w_string' has data type STRING (8); weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE");

  std::string noext = file("model_noext.onnx");
  OnnxWeights w2(noext);
  EXPECT_EQ(error([&] { w2.load("w_raw", {2, 3}); }), noext + ": external data file 'nothere.onnx.data' missing");

  std::string badoff = file("model_badoff.onnx");
  OnnxWeights w3(badoff);
  std::string e = error([&] { w3.load("w_raw", {2, 3}); });
  EXPECT_NE(e.find(badoff + ": initializer 'w_raw': offset+length ("), std::string::npos) << e;
  EXPECT_NE(e.find(") beyond end of 'model_ext.onnx.data'"), std::string::npos) << e;

  EXPECT_EQ(error([&] { OnnxWeights missing(file("nope.onnx")); }), file("nope.onnx") + ": cannot open: No such file or directory");
  test::writeText(file("garbage.onnx"), std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  e = error([&] { OnnxWeights bad(file("garbage.onnx")); });
  EXPECT_EQ(e.rfind(file("garbage.onnx") + ": not a valid ONNX file", 0), 0u) << e;
  test::writeText(file("empty.onnx"), "");
  EXPECT_EQ(error([&] { OnnxWeights bad(file("empty.onnx")); }), file("empty.onnx") + ": not a valid ONNX file (no graph)");
}

// Into a half plan's storage: f16 rounds to nearest even and saturates finite
// values beyond +-65504 (reported), keeps infinities; bf16 rounds to nearest
// even; a tensor stored in the plan's type is copied bit for bit.
TEST_F(OnnxWeightsTest, ConvertsToHalfStorage) {
  OnnxWeights w(file("model.onnx"));
  using S = OnnxWeights::Storage;
  std::vector<uint16_t> h(6), b(6);
  OnnxWeights::Conversion c = w.loadInto("w_large", {6}, S::F16, h.data());
  EXPECT_EQ(h, (std::vector<uint16_t>{0x7bff, 0xfbff, 0x7bff, 0x3c00, 0x7bff, 0x7c00}));
  EXPECT_EQ(c.saturated, 3u); // 1e5, -70000 and 65519 (which rounds to 65504 anyway); not inf
  EXPECT_EQ(c.largest, 1e5f);
  c = w.loadInto("w_large", {6}, S::BF16, b.data());
  EXPECT_EQ(b, (std::vector<uint16_t>{0x47c3, 0xc789, 0x4780, 0x3f80, 0x4780, 0x7f80}));
  EXPECT_EQ(c.saturated, 0u);
  c = w.loadInto("w_raw", {2, 3}, S::F16, h.data());
  EXPECT_EQ(c.saturated, 0u);
  // f16 weights into f16 storage: the file's bits (numpy's float16).
  std::vector<float> f16 = expected("w_fp16");
  w.loadInto("w_fp16", {6}, S::F16, h.data());
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(util::halfToFloat(h[i]), f16[i]) << i;
  std::vector<uint16_t> b3(3);
  w.loadInto("w_bf16", {3}, S::BF16, b3.data());
  EXPECT_EQ(b3, (std::vector<uint16_t>{0x3f80, 0xc020, 0x4049}));
  // Doubles go through f32: 0.125, -1e10 (bf16 0xd015), 2.5.
  w.loadInto("w_double", {3}, S::BF16, b3.data());
  EXPECT_EQ(b3, (std::vector<uint16_t>{0x3e00, 0xd015, 0x4020}));
}

// A plan's tile of a weight: rows [offset, offset + n) of every storage, converted on the way.
TEST_F(OnnxWeightsTest, LoadsRowRanges) {
  OnnxWeights w(file("model.onnx"));
  auto rows = [](const std::vector<float> &all, size_t cols, size_t r0, size_t n) {
    return std::vector<float>(all.begin() + r0 * cols, all.begin() + (r0 + n) * cols);
  };
  using S = OnnxWeights::Storage;
  std::vector<float> got(3 * 128);
  w.loadInto("model.layers.0.mlp.up_proj.weight", {3, 128}, S::F32, got.data(), 61); // raw_data
  EXPECT_EQ(got, rows(expected("model.layers.0.mlp.up_proj.weight"), 128, 61, 3));
  std::vector<float> row(3);
  w.loadInto("w_raw", {1, 3}, S::F32, row.data(), 1);
  EXPECT_EQ(row, rows(expected("w_raw"), 3, 1, 1));
  std::vector<float> two(2);
  w.loadInto("w_fp16_int32", {1, 2}, S::F32, two.data(), 1); // typed int32_data
  EXPECT_EQ(two, rows(expected("w_fp16_int32"), 2, 1, 1));
  std::vector<uint16_t> half(3 * 128);
  w.loadInto("model.layers.0.mlp.up_proj.weight", {3, 128}, S::BF16, half.data(), 10); // through f32 in chunks
  std::vector<float> want = rows(expected("model.layers.0.mlp.up_proj.weight"), 128, 10, 3);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(half[i], util::floatToBf16(want[i])) << i;
  OnnxWeights ext(file("model_ext.onnx"));
  ext.loadInto("big", {3, 128}, S::F32, got.data(), 61); // external data
  EXPECT_EQ(got, rows(expected("model.layers.0.mlp.up_proj.weight"), 128, 61, 3));
  // Rows beyond the tensor, or other inner dimensions: refused with the shapes.
  EXPECT_EQ(error([&] { w.loadInto("w_raw", {2, 3}, S::F32, got.data(), 1); }),
            w.path() + ": initializer 'w_raw' has shape [2,3] but the plan expects rows 1..3 of shape [2,3]");
  EXPECT_EQ(error([&] { w.loadInto("w_raw", {1, 2}, S::F32, got.data(), 0); }),
            w.path() + ": initializer 'w_raw' has shape [2,3] but the plan expects rows 0..1 of shape [1,2]");
}
