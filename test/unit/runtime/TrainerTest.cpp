// End to end through the tessera-rt binary on the local Vulkan device, with a
// hand-made plan whose "train_step" is a few `add` dispatches:
//   grad_A = A + 0.5, grad_B = B + 0.5, A += 0.5, loss = lr + w[0]
// and whose "eval" writes loss = float(input_ids[0]). That makes every number
// the runtime produces (adapter, gradients dump, metrics, eval mean) exact.
#include "runtime/plan/Plan.h"
#include "runtime/train/Trainer.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using namespace tessera;
using namespace tessera::plan;
using tessera::test::quote;
using tessera::test::TempDir;
using json = nlohmann::json;

namespace {

const char *kModule = "layers.0.self_attn.q_proj";

Buffer mk(const std::string &name, BufferKind kind, std::vector<int64_t> shape, DType dtype = DType::F32) {
  Buffer b;
  b.name = name;
  b.kind = kind;
  b.dtype = dtype;
  b.shape = shape;
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  b.bytes = n * 4;
  return b;
}

// Kernels 0, 1, 2: `add` over 6, 8 and 1 elements (kernels are sized like their buffers).
Dispatch add(uint32_t a, uint32_t b, uint32_t c, uint32_t n) {
  Dispatch d;
  d.kernel = n == 6 ? 0 : n == 8 ? 1 : 2;
  d.bindings = {a, b, c};
  d.groups = {1, 1, 1};
  d.push_constants.resize(4);
  std::memcpy(d.push_constants.data(), &n, 4);
  return d;
}

Plan toyPlan() {
  Plan p;
  p.model_file = "toy.onnx";
  p.batch = 2;
  p.seq = 4;
  p.vocab = 50;
  p.lora_rank = 2;
  p.lora_alpha = 4;
  p.lora_scale = 2;
  p.lora_targets = {"q_proj"};
  p.seed = 1234;
  p.lr = 0.125;
  p.buffers = {mk("input_ids", BufferKind::Input, {2, 4}, DType::I32),       // 0
               mk("labels", BufferKind::Input, {2, 4}, DType::I32),          // 1
               mk("hparams", BufferKind::HParams, {8}),                      // 2
               mk("loss", BufferKind::Output, {}),                           // 3
               mk("model.w", BufferKind::Weight, {2, 3}),                    // 4
               mk(std::string(kModule) + ".lora_A", BufferKind::Lora, {2, 3}), // 5
               mk(std::string(kModule) + ".lora_B", BufferKind::Lora, {4, 2}), // 6
               mk("grad_A", BufferKind::Gradient, {2, 3}),                   // 7
               mk("grad_B", BufferKind::Gradient, {4, 2}),                   // 8
               mk("half", BufferKind::Constant, {8}),                        // 9
               mk("w_flat", BufferKind::Activation, {6}),                    // 10
               mk("m_A", BufferKind::OptimizerState, {2, 3})};               // 11
  p.buffers[9].init_blob = 2;
  p.buffers[10].alias_of = 4;
  p.input_ids = 0;
  p.labels = 1;
  p.hparams = 2;
  p.loss = 3;
  p.blobs.push_back(test::kernel("add", {{"@NAME@", "add6"}, {"@N@", "6"}}));
  p.blobs.push_back(test::kernel("first_to_float", {{"@IDS@", "8"}, {"@OUT@", "1"}}));
  std::vector<uint8_t> half(32);
  for (int i = 0; i < 8; ++i) {
    float v = 0.5f;
    std::memcpy(half.data() + 4 * i, &v, 4);
  }
  p.blobs.push_back(half);
  Kernel k0;
  k0.name = "add6";
  k0.spirv_blob = 0;
  k0.num_bindings = 3;
  k0.local_size = {64, 1, 1};
  k0.push_constant_bytes = 4;
  Kernel k1;
  k1.name = "first_to_float";
  k1.spirv_blob = 1;
  k1.num_bindings = 2;
  Kernel k8 = k0, k1add = k0;
  k8.name = "add8";
  k8.spirv_blob = uint32_t(p.blobs.size());
  p.blobs.push_back(test::kernel("add", {{"@NAME@", "add8"}, {"@N@", "8"}}));
  k1add.name = "add1";
  k1add.spirv_blob = uint32_t(p.blobs.size());
  p.blobs.push_back(test::kernel("add", {{"@NAME@", "add1"}, {"@N@", "1"}}));
  p.kernels = {k0, k8, k1add, k1};
  Program train;
  train.name = "train_step";
  train.dispatches = {add(5, 9, 7, 6), add(6, 9, 8, 8), add(5, 9, 5, 6), add(2, 10, 3, 1)};
  Program eval;
  eval.name = "eval";
  Dispatch e;
  e.kernel = 3;
  e.bindings = {0, 3};
  eval.dispatches = {e};
  p.programs = {train, eval};
  Adapter a;
  a.module = kModule;
  a.in_features = 3;
  a.out_features = 4;
  a.rank = 2;
  a.a = 5;
  a.b = 6;
  a.grad_a = 7;
  a.grad_b = 8;
  a.m_a = 11;
  p.adapters = {a};
  test::finishInterfaces(p);
  return p;
}

// The documented LoRA A initialisation.
std::vector<float> initA(uint64_t seed) {
  train::SplitMix64 rng(seed);
  std::vector<float> a(6);
  for (float &v : a) v = float((2.0 * rng.uniform01() - 1.0) / std::sqrt(3.0));
  return a;
}

std::vector<float> plus(std::vector<float> v, int times) {
  for (float &x : v)
    for (int i = 0; i < times; ++i) x += 0.5f;
  return v;
}

class TrainerTest : public ::testing::Test {
protected:
  void SetUp() override {
    writePlanFile(toyPlan(), dir / "toy.tplan");
    auto r = test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/make_tiny_onnx.py " +
                           quote(dir / "toy.onnx") + " model.w 2,3 10,1,2,3,4,5",
                       dir);
    ASSERT_EQ(r.code, 0) << r.err;
    test::writeText(dir / "train.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5, 6, 7, 8]}\n"
                                         "{\"input_ids\": [9], \"labels\": [-100]}\n");
  }

  test::RunResult rt(const std::string &args) { return test::run(std::string(TESSERA_RT_BINARY) + " " + args, dir); }

  std::string base() { return quote(dir / "toy.tplan") + " --weights " + quote(dir / "toy.onnx"); }

  // Exactly one `error:` line on stderr, and it is the last line.
  static std::string errorLine(const test::RunResult &r) {
    std::vector<std::string> ls = test::lines(r.err);
    size_t errors = 0;
    for (const std::string &l : ls) errors += l.rfind("error: ", 0) == 0;
    EXPECT_EQ(errors, 1u) << r.err;
    return ls.empty() ? "" : ls.back();
  }

  TempDir dir;
};

} // namespace

TEST_F(TrainerTest, TrainWritesAdapterMetricsAndGradients) {
  auto r = rt("train " + base() + " --data " + quote(dir / "train.jsonl") + " --steps 3 --lr 0.25 --out " +
              quote(dir / "adapter") + " --metrics " + quote(dir / "m.jsonl") + " --dump-grads " + quote(dir / "g.safetensors"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("step 3/3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warning: 1 of 3 lines"), std::string::npos) << r.err; // the 5-token line is truncated

  std::vector<std::string> metrics = test::lines(test::readText(dir / "m.jsonl"));
  ASSERT_EQ(metrics.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    json m = json::parse(metrics[i]);
    EXPECT_EQ(m["step"], i + 1);
    EXPECT_EQ(m["loss"].get<double>(), 10.25); // lr + w[0]: hparams and weights reached the GPU
    EXPECT_EQ(m["lr"].get<double>(), 0.25);
    EXPECT_GT(m["tokens_per_s"].get<double>(), 0);
    EXPECT_TRUE(m["gpu_ms"].is_number() || m["gpu_ms"].is_null());
  }

  std::vector<float> a0 = initA(1234);
  json ad = test::pythonSafetensors(dir / "adapter/adapter_model.safetensors", dir);
  ASSERT_FALSE(ad.contains("python_error")) << ad["python_error"];
  json A = ad[std::string("base_model.model.model.") + kModule + ".lora_A.weight"];
  json B = ad[std::string("base_model.model.model.") + kModule + ".lora_B.weight"];
  EXPECT_EQ(A["shape"], (json{2, 3}));
  EXPECT_EQ(B["shape"], (json{4, 2}));
  EXPECT_EQ(A["values"].get<std::vector<float>>(), plus(a0, 3));
  EXPECT_EQ(B["values"].get<std::vector<float>>(), std::vector<float>(8, 0.0f));
  json config = json::parse(test::readText(dir / "adapter/adapter_config.json"));
  EXPECT_EQ(config["r"], 2);
  EXPECT_EQ(config["lora_alpha"], 4);
  EXPECT_EQ(config["target_modules"], (json{"q_proj"}));
  EXPECT_EQ(config["base_model_name_or_path"], "toy.onnx");

  json g = test::pythonSafetensors(dir / "g.safetensors", dir);
  ASSERT_FALSE(g.contains("python_error")) << g["python_error"];
  std::string m = kModule;
  EXPECT_EQ(g[m + ".lora_A"]["values"].get<std::vector<float>>(), a0); // before the update
  EXPECT_EQ(g[m + ".lora_B"]["values"].get<std::vector<float>>(), std::vector<float>(8, 0.0f));
  EXPECT_EQ(g[m + ".lora_A.grad"]["values"].get<std::vector<float>>(), plus(a0, 1));
  EXPECT_EQ(g[m + ".lora_B.grad"]["values"].get<std::vector<float>>(), std::vector<float>(8, 0.5f));
  EXPECT_EQ(g[m + ".lora_A.grad"]["shape"], (json{2, 3}));

  // Continue from the adapter: A starts where it ended, with the plan's lr.
  auto r2 = rt("train " + base() + " --data " + quote(dir / "train.jsonl") + " --steps 1 --init-adapter " +
               quote(dir / "adapter") + " --out " + quote(dir / "adapter2") + " --metrics " + quote(dir / "m2.jsonl"));
  ASSERT_EQ(r2.code, 0) << r2.err;
  json ad2 = test::pythonSafetensors(dir / "adapter2/adapter_model.safetensors", dir);
  EXPECT_EQ(ad2[std::string("base_model.model.model.") + kModule + ".lora_A.weight"]["values"].get<std::vector<float>>(),
            plus(plus(a0, 3), 1));
  EXPECT_EQ(json::parse(test::readText(dir / "m2.jsonl"))["loss"].get<double>(), 10.125);
}

TEST(SplitMix64, ReferenceVector) {
  // The published splitmix64 test vector (seed 1234567): pins the documented stream.
  train::SplitMix64 rng(1234567);
  EXPECT_EQ(rng.next(), 6457827717110365317ull);
  EXPECT_EQ(rng.next(), 3203168211198807973ull);
  EXPECT_EQ(rng.next(), 9817491932198370423ull);
  EXPECT_EQ(rng.next(), 4593380528125082431ull);
  EXPECT_EQ(rng.next(), 16408922859458223821ull);
  train::SplitMix64 u(1);
  for (int i = 0; i < 1000; ++i) {
    double v = u.uniform01();
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
  }
}

TEST_F(TrainerTest, SeedOverride) {
  auto r = rt("train " + base() + " --data " + quote(dir / "train.jsonl") + " --steps 1 --seed 7 --out " +
              quote(dir / "adapter"));
  ASSERT_EQ(r.code, 0) << r.err;
  json ad = test::pythonSafetensors(dir / "adapter/adapter_model.safetensors", dir);
  std::vector<float> got = ad[std::string("base_model.model.model.") + kModule + ".lora_A.weight"]["values"];
  EXPECT_EQ(got, plus(initA(7), 1));
  EXPECT_NE(initA(7), initA(1234));
  for (float v : initA(7)) EXPECT_LE(std::fabs(v), 1.0f / std::sqrt(3.0f));
}

TEST_F(TrainerTest, EvalIsTokenWeighted) {
  // Batches of 2 rows; the toy eval loss of a batch is its first token.
  test::writeText(dir / "eval.jsonl",
                  "{\"input_ids\": [5, 1, 2]}\n"                    // batch 0: 2 counted
                  "{\"input_ids\": [7, 1]}\n"                       //          1 counted
                  "{\"input_ids\": [9, 1, 2, 3, 4, 5]}\n"           // batch 1: 3 counted (truncated to 4)
                  "{\"input_ids\": [11, 2], \"labels\": [3, -100]}\n" //         0 counted
                  "{\"input_ids\": [13, 1, 1]}\n");                 // batch 2: 2 counted, padded row
  auto r = rt("eval " + base() + " --data " + quote(dir / "eval.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "eval loss 8.500000 over 8 tokens\n"); // (5*3 + 9*3 + 13*2) / 8
}

TEST_F(TrainerTest, FailuresAreOneErrorLine) {
  std::string data = " --data " + quote(dir / "train.jsonl");
  auto r = rt("train missing.tplan --weights x.onnx --data d.jsonl --steps 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: missing.tplan: cannot open: No such file or directory\n");

  r = rt("train " + base() + data + " --steps 1 --device 99");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r).rfind("error: device 99 does not exist", 0), 0u) << r.err;

  test::writeText(dir / "bad.jsonl", "{\"input_ids\": [1]}\n{\"input_ids\": [1, 99]}\n");
  r = rt("train " + base() + " --data " + quote(dir / "bad.jsonl") + " --steps 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: " + dir / "bad.jsonl" + ":2: token id 99 out of range for vocabulary 50");

  r = rt("eval " + quote(dir / "toy.tplan") + data);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r).rfind("error: --weights is required", 0), 0u) << r.err;

  r = rt("train " + base() + data + " --steps 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: --steps: '0' is out of range: expected an integer in [1, 1000000000000] (run with "
                          "--help for usage)");

  ASSERT_EQ(test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/make_tiny_onnx.py " +
                          quote(dir / "wrong.onnx") + " model.w 3,3 1,2,3,4,5,6,7,8,9",
                      dir).code, 0);
  r = rt("train " + quote(dir / "toy.tplan") + " --weights " + quote(dir / "wrong.onnx") + data + " --steps 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: " + dir / "wrong.onnx" + ": initializer 'model.w' has shape [3,3] but the plan expects [2,3]");

  ASSERT_EQ(test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/make_tiny_onnx.py " +
                          quote(dir / "other.onnx") + " other.w 2,3 1,2,3,4,5,6",
                      dir).code, 0);
  r = rt("train " + quote(dir / "toy.tplan") + " --weights " + quote(dir / "other.onnx") + data + " --steps 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: " + dir / "other.onnx" +
                              ": initializer 'model.w' not found (the plan was compiled from 'toy.onnx')");

  test::writeText(dir / "junk.tplan", "TESSPLAN but not really");
  r = rt("eval " + quote(dir / "junk.tplan") + " --weights x.onnx" + data);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: " + dir / "junk.tplan" + ": the file is truncated (23 bytes, the header alone is 32)");

  r = rt("train " + base() + data + " --steps 1 --init-adapter " + quote(dir / "no-adapter"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(errorLine(r), "error: " + dir / "no-adapter" + ": adapter directory not found");
}
