// Device profiles: the shipped files parse, the built-in default equals
// default.json, overrides merge onto the default, and errors name the file
// and the field.
#include "autotune/Profile.h"
#include "autotune/SearchSpace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

using namespace tessera::autotune;

namespace {

const std::string kDir = TESSERA_PROFILE_DIR;

std::string readFile(const std::string &path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string errorOf(const std::string &text) {
  try {
    parseProfile(text, "p.json");
  } catch (const ProfileError &e) {
    return e.what();
  }
  return "";
}

TEST(Profile, ShippedProfilesParse) {
  for (const char *name : {"default", "lavapipe", "nvidia"}) {
    DeviceProfile p = loadProfile(kDir + "/" + name + ".json");
    EXPECT_EQ(p.name, name);
    EXPECT_FALSE(p.matmul.empty());
  }
}

TEST(Profile, BuiltInDefaultIsDefaultJson) {
  DeviceProfile file = loadProfile(kDir + "/default.json");
  const DeviceProfile &builtIn = defaultProfile();
  EXPECT_EQ(builtIn.origin, "<built-in default>");
  EXPECT_EQ(readFile(kDir + "/default.json"), defaultProfileJson());
  EXPECT_EQ(file.elementwise_workgroup, builtIn.elementwise_workgroup);
  ASSERT_EQ(file.matmul.size(), builtIn.matmul.size());
  for (size_t i = 0; i < file.matmul.size(); ++i) {
    EXPECT_EQ(file.matmul[i].tile_m, builtIn.matmul[i].tile_m);
    EXPECT_EQ(file.matmul[i].thread_n, builtIn.matmul[i].thread_n);
  }
  EXPECT_EQ(loadProfileOrDefault("").name, "default");
}

// Integer dot products (BitNet's int8 x ternary products): off in the
// built-in default, on in the shipped profiles of devices that have them,
// read and written back under device.features.integer_dot_product.
TEST(Profile, IntegerDotProductFeature) {
  EXPECT_FALSE(defaultProfile().features.integer_dot_product);
  for (const char *name : {"lavapipe", "nvidia", "lavapipe-tuned"})
    EXPECT_TRUE(loadProfile(kDir + "/" + name + ".json").features.integer_dot_product) << name;
  DeviceProfile p =
      parseProfile(R"({"name": "x", "device": {"features": {"integer_dot_product": true}}})", "x.json");
  EXPECT_TRUE(p.features.integer_dot_product);
  EXPECT_TRUE(parseProfile(profileToJson(p), "back.json").features.integer_dot_product);
  EXPECT_FALSE(parseProfile(profileToJson(defaultProfile()), "d.json").features.integer_dot_product);
}

TEST(Profile, OverridesMergeOntoDefault) {
  DeviceProfile p = parseProfile(R"({"name": "x", "softmax": {"workgroup_size": 64}})", "x.json");
  EXPECT_EQ(p.softmax_workgroup, 64);
  EXPECT_EQ(p.reduce_workgroup, defaultProfile().reduce_workgroup);
  EXPECT_EQ(p.matmul.size(), defaultProfile().matmul.size());
}

// grad_norm.workgroup_size (the gradient norm's one-workgroup reductions):
// a file without it takes its own reduce rule; written back explicitly, so a
// tuned profile keeps its base's size whatever the tuner votes for reduce.
TEST(Profile, GradNormWorkgroup) {
  DeviceProfile p = parseProfile(R"({"name": "x", "reduce": {"workgroup_size": 64}})", "x.json");
  EXPECT_EQ(p.grad_norm_workgroup, 64);
  DeviceProfile q = parseProfile(R"({"name": "x", "reduce": {"workgroup_size": 64}, "grad_norm": {"workgroup_size": 128}})",
                                 "q.json");
  EXPECT_EQ(q.grad_norm_workgroup, 128);
  q.reduce_workgroup = 32;
  EXPECT_EQ(parseProfile(profileToJson(q), "back.json").grad_norm_workgroup, 128);
  EXPECT_EQ(loadProfile(kDir + "/nvidia.json").grad_norm_workgroup, 1024);
  EXPECT_NE(errorOf(R"({"grad_norm": {"workgroup_size": 96}})").find("grad_norm.workgroup_size: must be a power of two"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"grad_norm": {"workgroups": 64}})").find("grad_norm"), std::string::npos);
}

TEST(Profile, CopyQueue) {
  EXPECT_FALSE(parseProfile(R"({"name": "x"})", "x.json").copy_queue);
  DeviceProfile q = parseProfile(R"({"name": "x", "device": {"copy_queue": true}})", "q.json");
  EXPECT_TRUE(q.copy_queue);
  EXPECT_TRUE(parseProfile(profileToJson(q), "back.json").copy_queue);
  EXPECT_TRUE(loadProfile(kDir + "/nvidia.json").copy_queue);
  EXPECT_FALSE(loadProfile(kDir + "/lavapipe.json").copy_queue);
  EXPECT_NE(errorOf(R"({"device": {"copy_queue": 1}})").find("device.copy_queue: must be true or false"),
            std::string::npos);
}

TEST(Profile, SelectMatmulVariant) {
  const DeviceProfile &p = defaultProfile();
  EXPECT_EQ(p.selectMatmul(4096, 8, 2048).name, "lora_down");
  EXPECT_EQ(p.selectMatmul(8, 2048, 4096).name, "lora_grad");
  EXPECT_EQ(p.selectMatmul(4096, 8, 64).name, "narrow_n");
  EXPECT_EQ(p.selectMatmul(8, 2048, 64).name, "narrow_m");
  EXPECT_EQ(p.selectMatmul(512, 512, 512).name, "general");
  DeviceProfile q = parseProfile(R"({"matmul": {"variants": [
      {"name": "big", "min_tiles": 100, "tile_m": 128, "tile_n": 128, "tile_k": 8, "thread_m": 8, "thread_n": 16},
      {"name": "split", "max_n": 16, "min_k": 1024, "split_k": 8, "thread_m": 4, "thread_n": 16},
      {"name": "rest", "thread_m": 4, "thread_n": 8}]}})", "q.json");
  EXPECT_EQ(q.selectMatmul(2048, 2048, 64).name, "big");       // 256 tiles
  EXPECT_EQ(q.selectMatmul(1024, 1024, 64).name, "rest");      // 64 tiles
  EXPECT_EQ(q.selectMatmul(128, 128, 64, 200).name, "big");    // 200 batched tiles
  EXPECT_EQ(q.selectMatmul(1024, 8, 4096).name, "split");
  EXPECT_EQ(q.selectMatmul(1024, 8, 512).name, "rest");
  EXPECT_EQ(q.matmul[1].split_k, 8);
  EXPECT_NE(errorOf(R"({"matmul": {"variants": [{"split_k": 0}]}})").find("split_k: must be in [1, 1024]"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"matmul": {"variants": [{"min_tiles": 4, "thread_m": 4, "thread_n": 8}]}})")
                .find("the last variant"),
            std::string::npos);
}

// attention.variants: nvidia.json's tensor-core attention for bf16 and f16
// q, k, v (the rule's config, its variant named), SIMT for f32; round trip;
// only coopmat variants of shapes the device offers.
TEST(Profile, AttentionVariants) {
  DeviceProfile p = loadProfile(kDir + "/nvidia.json");
  ASSERT_EQ(p.attention.size(), 2u);
  EXPECT_TRUE(p.fused_attention); // measured faster on the H200 (docs/benchmarks.md, 2026-12-03)
  ProblemShape s;
  s.op = "flash_attention", s.family = RuleFamily::Attention, s.operands = "bf16";
  std::string variant;
  KernelConfig c = ruleConfig(s, p, &variant);
  ASSERT_EQ(c.kind, ConfigKind::Matmul);
  EXPECT_EQ(variant, "fa_tc_bf16");
  EXPECT_TRUE(c.matmul.coopmat());
  EXPECT_EQ(c.matmul.operands, "bf16");
  EXPECT_EQ(c.matmul.mma_m, 16);
  EXPECT_EQ(c.matmul.thread_m, 32); // the subgroup size
  s.operands = "f16";
  EXPECT_EQ(ruleConfig(s, p, &variant).matmul.operands, "f16");
  EXPECT_EQ(variant, "fa_tc");
  s.operands = "f32";
  EXPECT_EQ(ruleConfig(s, p).kind, ConfigKind::Reduction);
  EXPECT_EQ(ruleConfig(s, loadProfile(kDir + "/lavapipe.json")).kind, ConfigKind::Reduction);
  DeviceProfile q = parseProfile(profileToJson(p), "rt.json");
  ASSERT_EQ(q.attention.size(), 2u);
  EXPECT_EQ(q.attention[0].tile_n, p.attention[0].tile_n);
  EXPECT_EQ(profileToJson(q), profileToJson(p));
  const std::string device = R"("device": {"features": {"float16": true, "storage16": true, "cooperative_matrix":
      [{"m": 16, "n": 16, "k": 16, "a": "f16", "b": "f16", "c": "f32", "result": "f32"}]}})";
  auto variantError = [&](const std::string &v) { return errorOf("{" + device + R"(, "attention": {"variants": [)" + v + "]}}"); };
  EXPECT_EQ(variantError(R"({"kind": "coopmat", "precision": "f16", "tile_m": 64, "tile_n": 32, "subgroups_m": 4, "subgroups_n": 1})"), "");
  EXPECT_NE(variantError(R"({"kind": "tiled"})").find("attention.variants[0].kind: attention variants are of kind coopmat"),
            std::string::npos);
  EXPECT_NE(variantError(R"({"kind": "coopmat", "precision": "bf16", "subgroups_m": 4, "subgroups_n": 1})")
                .find("is not in device.features.cooperative_matrix"),
            std::string::npos);
  EXPECT_NE(variantError(R"({"kind": "coopmat", "precision": "f16", "tile_m": 48, "subgroups_m": 3, "subgroups_n": 1})")
                .find("must be powers of two"),
            std::string::npos);
}

TEST(Profile, WorkgroupScopeMatmul) {
  // nvidia.json's layer variant: one 128 x 128 matrix per workgroup of 256
  // (VK_NV_cooperative_matrix2), the config's mma the tile; whole tiles only.
  DeviceProfile p = loadProfile(kDir + "/nvidia.json");
  ASSERT_TRUE(p.features.workgroup_cooperative_matrix);
  auto named = [&](const std::string &n) {
    auto it = std::find_if(p.matmul.begin(), p.matmul.end(), [&](const MatmulVariant &m) { return m.name == n; });
    EXPECT_NE(it, p.matmul.end()) << n;
    return it == p.matmul.end() ? MatmulVariant{} : *it;
  };
  // In front of it the vocabulary-long K (the LM head's activation gradient:
  // 32 tiles of 512 x 1024 on 132 SMs) split 8 ways; layer products pass on.
  const MatmulVariant vocab = p.matmul.front();
  EXPECT_EQ(vocab.name, "vocab_k_wg_bf16");
  EXPECT_TRUE(vocab.workgroupScope());
  EXPECT_EQ(vocab.split_k, 8);
  EXPECT_TRUE(vocab.admits(512, 1024, 151936, 1, "bf16"));
  EXPECT_FALSE(vocab.admits(4096, 1024, 3072, 1, "bf16"));
  const MatmulVariant v = named("layers_wg_bf16");
  ASSERT_TRUE(v.workgroupScope()) << v.name;
  MatmulConfig c = v.config(32);
  EXPECT_TRUE(c.workgroupScope());
  EXPECT_EQ(c.mma_m, 128);
  EXPECT_EQ(c.mma_k, 64);
  EXPECT_EQ(v.threads(32), 256);
  EXPECT_TRUE(v.admits(4096, 1024, 3072, 1, "bf16"));
  EXPECT_FALSE(v.admits(4096, 16, 1024, 1, "bf16")); // a LoRA factor: the next variant
  EXPECT_FALSE(v.admits(4096, 1024, 16, 1, "bf16"));
  EXPECT_FALSE(v.admits(4096, 1024, 1024, 1, "f16"));
  DeviceProfile q = parseProfile(profileToJson(p), "rt.json");
  EXPECT_TRUE(q.matmul.front().workgroupScope());
  EXPECT_EQ(q.matmul.front().split_k, 8);
  EXPECT_EQ(profileToJson(q), profileToJson(p));
  // Without the device feature, or with an unknown scope: one error naming the field.
  const std::string device = R"("device": {"subgroup_size": 32, "max_workgroup_invocations": 1024, "shared_memory_bytes": 49152,
      "features": {"float16": true, "storage16": true, "bfloat16": true, "cooperative_matrix":
      [{"m": 16, "n": 16, "k": 16, "a": "bf16", "b": "bf16", "c": "f32", "result": "f32"}]}})";
  auto matmulError = [&](const std::string &v) {
    return errorOf("{" + device + R"(, "matmul": {"variants": [)" + v + R"(, {"kind": "tiled"}]}})");
  };
  const std::string wg = R"({"kind": "coopmat", "precision": "bf16", "tile_m": 128, "tile_n": 128, "tile_k": 64, "subgroups_m": 2, "subgroups_n": 4, )";
  EXPECT_NE(matmulError(wg + R"("scope": "workgroup"})").find("matmul.variants[0].scope: workgroup-scope variants need "
                                                                 "device.features.workgroup_cooperative_matrix"),
            std::string::npos)
      << matmulError(wg + R"("scope": "workgroup"})");
  EXPECT_NE(matmulError(wg + R"("scope": "grid"})").find("matmul.variants[0].scope: must be subgroup or workgroup"),
            std::string::npos);
  // The same tile staged by our own kernel does not fit 48 KiB of shared memory.
  EXPECT_NE(matmulError(wg + R"("scope": "subgroup"})").find("tiles need 81920 bytes of shared memory"),
            std::string::npos);
}

TEST(Profile, ErrorsNameFileAndField) {
  EXPECT_EQ(errorOf("{"), errorOf("{")); // deterministic
  EXPECT_NE(errorOf("{").find("p.json: invalid JSON"), std::string::npos) << errorOf("{");
  EXPECT_EQ(errorOf(R"({"softmax": {"workgroup_size": "big"}})"),
            "p.json: softmax.workgroup_size: expected an integer, got string");
  EXPECT_EQ(errorOf(R"({"reduce": {"workgroup_size": 96}})"),
            "p.json: reduce.workgroup_size: must be a power of two (got 96)");
  EXPECT_EQ(errorOf(R"({"elementwise": {"workgroup_sise": 96}})"),
            "p.json: elementwise.workgroup_sise: unknown field");
  EXPECT_EQ(errorOf(R"({"matmul": {"variants": [{"tile_m": 64, "thread_m": 5}]}})"),
            "p.json: matmul.variants[0].thread_m: must divide tile_m (64)");
  EXPECT_NE(errorOf(R"({"matmul": {"variants": [{"tile_m": 256, "tile_n": 256, "thread_m": 1, "thread_n": 1}]}})")
                .find("exceed device.max_workgroup_invocations"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"matmul": {"variants": [{"precision": "f16"}]}})").find("unsupported precision"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"matmul": {"variants": [{"max_n": 8, "thread_m": 4, "thread_n": 8}]}})").find("the last variant"),
            std::string::npos);
  try {
    loadProfile("/nonexistent/profile.json");
    FAIL();
  } catch (const ProfileError &e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/profile.json: cannot open device profile");
  }
}

TEST(Profile, SubgroupReductions) {
  // nvidia.json: innermost reductions up to 256 elements on one subgroup per
  // output (the per-head q/k RMSNorm rows); longer rows keep a workgroup, kept
  // innermost dims stay serial, and a profile without the field never asks.
  DeviceProfile p = loadProfile(kDir + "/nvidia.json");
  EXPECT_EQ(p.reduce_subgroup_max, 256);
  auto rule = [](const DeviceProfile &prof, int64_t outputs, int64_t extent, bool innermost) {
    ProblemShape s;
    s.op = "reduce", s.family = RuleFamily::Reduce, s.outputs = outputs, s.extent = extent;
    s.innermost_reduced = innermost;
    return ruleConfig(s, prof).reduction;
  };
  EXPECT_EQ(rule(p, 65536, 128, true).strategy, ReductionStrategy::subgroup);
  EXPECT_EQ(rule(p, 4096, 1024, true).strategy, ReductionStrategy::workgroup);
  EXPECT_EQ(rule(p, 65536, 128, false).strategy, ReductionStrategy::serial);
  EXPECT_NE(rule(loadProfile(kDir + "/lavapipe.json"), 65536, 128, true).strategy, ReductionStrategy::subgroup);
  // The field round-trips; a negative one is an error naming it.
  DeviceProfile q = parseProfile(profileToJson(p), "rt.json");
  EXPECT_EQ(q.reduce_subgroup_max, 256);
  EXPECT_NE(errorOf(R"({"reduce": {"subgroup_max": -1}})").find("reduce.subgroup_max: must be >= 0"), std::string::npos);
  // The config's JSON form and its validation.
  KernelConfig c = parseConfigJson(R"({"reduction": {"strategy": "subgroup", "workgroup_size": 96}})", "t");
  EXPECT_EQ(c.reduction.strategy, ReductionStrategy::subgroup);
  EXPECT_EQ(parseConfigJson(configJson(c), "t"), c);
  EXPECT_EQ(whyInvalid(c, p), ""); // whole subgroups of 32
  EXPECT_NE(whyInvalid(KernelConfig::ofReduction(ReductionStrategy::subgroup, 48), p).find("multiple of"),
            std::string::npos);
}

} // namespace
