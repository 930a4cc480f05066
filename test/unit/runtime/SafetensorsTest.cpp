// safetensors and PEFT adapter files, read back by an independent python reader.
#include "runtime/train/AdapterIO.h"
#include "runtime/util/Safetensors.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

using namespace tessera;
using tessera::test::TempDir;
using json = nlohmann::json;

namespace {

plan::Plan adapterPlan() {
  plan::Plan p;
  p.model_file = "tiny-llama.onnx";
  p.lora_rank = 2;
  p.lora_alpha = 16;
  p.rslora = false;
  const char *modules[] = {"layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj", "layers.1.self_attn.q_proj"};
  for (const char *m : modules) {
    plan::Adapter a;
    a.module = m;
    a.in_features = 3;
    a.out_features = 4;
    a.rank = 2;
    p.adapters.push_back(a);
  }
  return p;
}

} // namespace

TEST(Safetensors, WrittenFileReadsInPython) {
  TempDir dir;
  std::vector<util::TensorF32> t = {{"b.second", {2, 3}, {1, 2, 3, 4, 5, -6.5f}}, {"a.first", {1}, {0.125f}},
                                    {"scalar", {}, {42}}};
  util::writeSafetensors(dir / "t.safetensors", t);
  json py = test::pythonSafetensors(dir / "t.safetensors", dir);
  ASSERT_FALSE(py.contains("python_error")) << py["python_error"];
  EXPECT_EQ(py["__metadata__"], (json{{"format", "pt"}}));
  EXPECT_EQ(py["b.second"]["dtype"], "F32");
  EXPECT_EQ(py["b.second"]["shape"], (json{2, 3}));
  EXPECT_EQ(py["b.second"]["values"].get<std::vector<float>>(), t[0].data);
  EXPECT_EQ(py["a.first"]["values"].get<std::vector<float>>(), t[1].data);
  EXPECT_EQ(py["scalar"]["shape"], json::array());
  // And the runtime's own reader agrees.
  auto back = util::readSafetensors(dir / "t.safetensors");
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back["b.second"].data, t[0].data);
  EXPECT_EQ(back["b.second"].shape, (std::vector<int64_t>{2, 3}));
}

TEST(Safetensors, ReaderErrors) {
  TempDir dir;
  test::writeText(dir / "short.safetensors", "abc");
  EXPECT_THROW(util::readSafetensors(dir / "short.safetensors"), std::runtime_error);
  std::string header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  std::string bytes(8, '\0');
  bytes[0] = char(header.size());
  test::writeText(dir / "cut.safetensors", bytes + header + std::string(8, '\0'));
  try {
    util::readSafetensors(dir / "cut.safetensors");
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), dir / "cut.safetensors" + ": tensor 'x': data_offsets [0,16] beyond the end of the file");
  }
}

TEST(Adapter, PeftDirectoryAndConfig) {
  TempDir dir;
  plan::Plan p = adapterPlan();
  std::vector<std::vector<float>> a, b;
  for (int i = 0; i < 3; ++i) {
    std::vector<float> va(6), vb(8);
    for (int k = 0; k < 6; ++k) va[size_t(k)] = float(i * 100 + k) * 0.5f;
    for (int k = 0; k < 8; ++k) vb[size_t(k)] = -float(i * 100 + k);
    a.push_back(va);
    b.push_back(vb);
  }
  std::string out = dir / "adapter";
  train::writeAdapter(out, p, a, b);
  // Nothing but the adapter is left in the parent directory.
  size_t entries = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir.path)) entries += e.path().filename() != "cmd.stdout" && e.path().filename() != "cmd.stderr";
  EXPECT_EQ(entries, 1u);

  json py = test::pythonSafetensors(out + "/adapter_model.safetensors", dir);
  ASSERT_FALSE(py.contains("python_error")) << py["python_error"];
  EXPECT_EQ(py.size(), 7u); // 6 tensors + metadata
  json qA = py["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
  EXPECT_EQ(qA["shape"], (json{2, 3}));
  EXPECT_EQ(qA["values"].get<std::vector<float>>(), a[2]);
  json vB = py["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"];
  EXPECT_EQ(vB["shape"], (json{4, 2}));
  EXPECT_EQ(vB["values"].get<std::vector<float>>(), b[1]);

  json c = json::parse(test::readText(out + "/adapter_config.json"));
  EXPECT_EQ(c["peft_type"], "LORA");
  EXPECT_EQ(c["task_type"], "CAUSAL_LM");
  EXPECT_EQ(c["r"], 2);
  EXPECT_EQ(c["lora_alpha"], 16);
  EXPECT_EQ(c["use_rslora"], false);
  EXPECT_EQ(c["lora_dropout"], 0.0);
  EXPECT_EQ(c["bias"], "none");
  EXPECT_EQ(c["target_modules"], (json{"q_proj", "v_proj"}));
  EXPECT_EQ(c["base_model_name_or_path"], "tiny-llama.onnx");
  EXPECT_EQ(c["fan_in_fan_out"], false);

  // Read back, then overwrite the existing directory in place.
  std::vector<std::vector<float>> ra, rb;
  train::readAdapter(out, p, ra, rb);
  EXPECT_EQ(ra, a);
  EXPECT_EQ(rb, b);
  test::writeText(out + "/README.md", "keep me");
  a[0][0] = 1234;
  train::writeAdapter(out, p, a, b);
  train::readAdapter(out, p, ra, rb);
  EXPECT_EQ(ra[0][0], 1234);
  EXPECT_EQ(test::readText(out + "/README.md"), "keep me");
  size_t files = 0;
  for (const auto &e : std::filesystem::directory_iterator(out)) files += !e.path().filename().string().empty();
  EXPECT_EQ(files, 3u); // no temporaries left
}

TEST(Adapter, ReadsF16AndChecksShapes) {
  TempDir dir;
  plan::Plan p = adapterPlan();
  p.adapters.resize(1);
  std::string ad = dir / "f16";
  auto r = test::run(std::string(TESSERA_TEST_PYTHON) + " " + TESSERA_TEST_SOURCE_DIR + "/make_safetensors_f16.py " +
                         test::quote(ad) + " layers.0.self_attn.q_proj 2 3 4",
                     dir);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::vector<float>> a, b;
  train::readAdapter(ad, p, a, b);
  EXPECT_EQ(a[0], (std::vector<float>{-1, -0.75f, -0.5f, -0.25f, 0, 0.25f}));
  EXPECT_EQ(b[0], (std::vector<float>{0, -0.5f, -1, -1.5f, -2, -2.5f, -3, -3.5f}));

  p.adapters[0].in_features = 5;
  try {
    train::readAdapter(ad, p, a, b);
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), ad + "/adapter_model.safetensors: tensor "
                                          "'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape "
                                          "[2,3] but the plan expects [2,5]");
  }
  p.adapters[0].module = "layers.0.mlp.up_proj";
  try {
    train::readAdapter(ad, p, a, b);
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              ad + "/adapter_model.safetensors: tensor 'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight' not found");
  }
  EXPECT_THROW(train::readAdapter(dir / "none", p, a, b), std::runtime_error);
}
