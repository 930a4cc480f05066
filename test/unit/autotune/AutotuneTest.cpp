// The tuner's plain-C++ parts: profiles with device match and exact
// entries (round trip, matching, the bundled database, rules from a
// device's properties), the search space (every candidate valid on the
// profile's devices, seeds first, llvmpipe's loop limit), the tuning-plan
// container (round trip, every kind of corruption is one clear error), the
// cost model and the robust median.
#include "autotune/Bench.h"
#include "autotune/CostModel.h"
#include "autotune/SearchSpace.h"
#include "autotune/TuneCommand.h"
#include "autotune/TuningPlan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>
#include <set>

using namespace tessera::autotune;

namespace {

std::string errorOf(const std::function<void()> &f) {
  try {
    f();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

DeviceIdentity lavapipe() { return {0x10005, 0, 1, "llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe Mesa", "CPU"}; }
DeviceIdentity h200() { return {0x10de, 0x2335, 2432614400u, "NVIDIA H200", "NVIDIA 580.159.04", "discrete GPU"}; }

ProblemShape matmul(int64_t m, int64_t n, int64_t k, int64_t batch = 1) {
  ProblemShape s;
  s.op = "matmul";
  s.family = RuleFamily::Matmul;
  s.m = m, s.n = n, s.k = k, s.batch = batch;
  return s;
}

TEST(Profile, RoundTripKeepsEverything) {
  DeviceProfile p = defaultProfile();
  p.name = "t";
  p.match.vendor_id = 0x10de;
  p.match.device_id = 7;
  p.match.driver_version = 4000000000ll; // above INT32_MAX: NVIDIA's packed versions are
  p.match.name = "NVIDIA X";
  p.exact.push_back({"matmul a", KernelConfig::ofMatmul({"direct", 32, 16, 16, 4, 2, 2}), 3, 10.5, 20.25, "r"});
  p.exact.push_back({"softmax b", KernelConfig::ofReduction(true, 32), 1, 0, 0, ""});
  p.exact.push_back({"unary c", KernelConfig::ofElementwise(96), 1, 0, 0, ""});
  p.tuning = R"({"date":"2026-12-01","tool":"tessera tune"})";
  p.indexExact();
  DeviceProfile q = parseProfile(profileToJson(p), "rt.json");
  EXPECT_EQ(profileToJson(q), profileToJson(p));
  ASSERT_EQ(q.exact.size(), 3u);
  EXPECT_EQ(q.exact[0].config, p.exact[0].config);
  EXPECT_EQ(q.exact[1].config, p.exact[1].config);
  EXPECT_EQ(q.exact[2].config.workgroup_size, 96);
  ASSERT_NE(q.findExact("softmax b"), nullptr);
  EXPECT_EQ(q.findExact("nothing"), nullptr);
  EXPECT_EQ(q.match.driver_version, 4000000000ll);
  EXPECT_EQ(q.exact[0].us, 10.5);
}

TEST(Profile, DeviceMatching) {
  DeviceMatch vendor;
  vendor.vendor_id = 0x10de;
  EXPECT_EQ(vendor.score(h200()), 1);
  EXPECT_EQ(vendor.score(lavapipe()), -1);
  DeviceMatch tuned = vendor;
  tuned.device_id = 0x2335, tuned.name = "NVIDIA H200", tuned.driver_version = 2432614400u;
  EXPECT_GT(tuned.score(h200()), vendor.score(h200())); // the most specific profile wins
  EXPECT_TRUE(tuned.exact(h200()));
  DeviceIdentity newer = h200();
  newer.driver_version += 1;
  EXPECT_GE(tuned.score(newer), 2); // still this GPU's, after a driver update
  EXPECT_FALSE(tuned.exact(newer));
  EXPECT_TRUE(DeviceMatch{}.score(lavapipe()) == 0);

  DeviceProfile p = defaultProfile();
  p.match = tuned;
  p.origin = "h200.json";
  EXPECT_EQ(errorOf([&] { checkProfileForDevice(p, h200()); }), "");
  EXPECT_EQ(errorOf([&] { checkProfileForDevice(p, lavapipe()); }),
            "h200.json: a profile of 'NVIDIA H200' (vendor 0x10de device 0x2335), not of device 'llvmpipe (LLVM "
            "15.0.6, 256 bits)' (vendor 0x10005 device 0x0): use this device's profile (tessera devices lists them) "
            "or tune it (tessera tune)");
}

TEST(Profile, BundledDatabase) {
  std::set<std::string> names;
  for (const BundledProfile &b : bundledProfiles())
    names.insert(b.profile.name);
  EXPECT_TRUE(names.count("default") && names.count("lavapipe") && names.count("nvidia"));
  const BundledProfile *nv = matchBundledProfile(h200());
  ASSERT_NE(nv, nullptr);
  EXPECT_EQ(nv->profile.match.vendor_id, 0x10de);
  // No tool-written profile names the H200 now (the one of 2026-12-03 was
  // tuned against rules without workgroup-scope matrices, and nvidia.json's
  // rules train faster: bench/results/2026-12-03-h200-s6/h200-tuned-bundled.json);
  // the device-id match over the vendor's is the lavapipe pair's below.
  EXPECT_EQ(nv->profile.name, "nvidia");
  DeviceIdentity h100 = h200();
  h100.device_id = 0x2330;
  h100.name = "NVIDIA H100 80GB HBM3";
  ASSERT_NE(matchBundledProfile(h100), nullptr);
  EXPECT_EQ(matchBundledProfile(h100)->profile.name, "nvidia");
  // The tool-written lavapipe profile (same device and driver string) is more
  // specific than the hand-written one.
  const BundledProfile *lp = matchBundledProfile(lavapipe());
  ASSERT_NE(lp, nullptr);
  EXPECT_EQ(lp->profile.name, "lavapipe-tuned");
  DeviceIdentity amd{0x1002, 0x744c, 1, "AMD Radeon RX 7900", "radv", "discrete GPU"};
  EXPECT_EQ(matchBundledProfile(amd), nullptr);
  EXPECT_NE(describeProfileMatch(amd).find("rules from its properties"), std::string::npos);
  EXPECT_EQ(loadProfileOrDefault("lavapipe").name, "lavapipe"); // by name
}

TEST(Profile, BundledNameBesideAFolderOfThatName) {
  // A folder named like a bundled profile in the working directory (e.g.
  // build/default, written by scripts/run_default.sh) is not a profile file.
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("tessera-profile-" + std::to_string(::getpid()));
  fs::create_directories(dir / "nvidia");
  fs::path was = fs::current_path();
  fs::current_path(dir);
  std::string name;
  try {
    name = loadProfileOrDefault("nvidia").name;
  } catch (const std::exception &e) {
    name = e.what();
  }
  fs::current_path(was);
  fs::remove_all(dir);
  EXPECT_EQ(name, "nvidia");
}

TEST(Profile, RulesFromProperties) {
  DeviceIdentity amd{0x1002, 0x744c, 1, "AMD Radeon RX 7900", "radv", "discrete GPU"};
  DeviceLimits l;
  l.subgroup_size = 64, l.max_workgroup_invocations = 1024, l.shared_memory_bytes = 65536;
  l.copy_queue = true;
  DeviceProfile p = profileFromProperties(amd, l);
  EXPECT_EQ(p.subgroup_size, 64);
  EXPECT_TRUE(p.copy_queue); // --memory-budget streams weights early on it
  EXPECT_EQ(p.max_workgroup_invocations, 1024);
  EXPECT_EQ(p.shared_memory_bytes, 49152); // capped where the generators are tested
  EXPECT_EQ(p.elementwise_workgroup, 256);
  EXPECT_EQ(p.match.vendor_id, 0x1002);
  EXPECT_EQ(p.matmul.back().kind, "tiled");
  // It reads back (it is written next to the tuned profile by tessera tune).
  EXPECT_EQ(profileToJson(parseProfile(profileToJson(p), "x")), profileToJson(p));
  DeviceProfile cpu = profileFromProperties(lavapipe(), l);
  for (const MatmulVariant &v : cpu.matmul)
    EXPECT_EQ(v.kind, "direct");
  DeviceLimits tiny;
  tiny.max_workgroup_invocations = 128, tiny.shared_memory_bytes = 512;
  DeviceProfile small = profileFromProperties(amd, tiny); // validated: the tree reductions fit
  EXPECT_LE(small.reduce_workgroup * 8, small.shared_memory_bytes);
  for (const MatmulVariant &v : small.matmul)
    EXPECT_EQ(whyInvalid(v.config(), small), "") << v.name;
}

TEST(SearchSpace, CandidatesAreValidAndSeedsComeFirst) {
  for (const char *name : {"default", "lavapipe", "nvidia"}) {
    DeviceProfile p = loadProfileOrDefault(name);
    for (ProblemShape s : {matmul(512, 128, 128), matmul(512, 8, 1024), matmul(8, 1024, 512),
                           matmul(128, 151936, 64), matmul(64, 64, 64, 12)}) {
      KernelConfig rule = ruleConfig(s, p);
      std::vector<KernelConfig> space = searchSpace(s, p, {rule}, 0);
      ASSERT_FALSE(space.empty()) << name;
      EXPECT_EQ(space.front(), rule) << name << " M=" << s.m;
      std::set<std::string> seen;
      for (const KernelConfig &c : space) {
        EXPECT_EQ(whyInvalid(c, p), "") << c.label();
        EXPECT_LE(c.threads(), p.max_workgroup_invocations);
        EXPECT_TRUE(seen.insert(c.label()).second) << "duplicate " << c.label();
        if (s.batch > 1)
          EXPECT_EQ(c.matmul.split_k, 1) << c.label();
      }
      EXPECT_EQ(searchSpace(s, p, {rule}, 5).size(), std::min<size_t>(5, space.size()));
    }
  }
}

TEST(SearchSpace, LoopLimitAndSplits) {
  DeviceProfile p = loadProfileOrDefault("lavapipe");
  // A vocabulary-long K: the generator raises split-K for llvmpipe's loop
  // limit; the space records the split it will use.
  ProblemShape vocab = matmul(128, 1024, 151936);
  for (const KernelConfig &c : searchSpace(vocab, p, {}, 0)) {
    int64_t tilesK = (vocab.k + c.matmul.tile_k - 1) / c.matmul.tile_k;
    int64_t kPer = (tilesK + c.matmul.split_k - 1) / c.matmul.split_k;
    EXPECT_LE(kPer * findMatmulKind(c.matmul.kind)->loops_per_k_tile(c.matmul), kLoopBudget) << c.label();
  }
  // A batched product over the loop limit (no split-K for batches): only the
  // skinny kernel, which spreads K over the workgroup's threads, stays.
  for (const KernelConfig &c : searchSpace(matmul(64, 64, 200000, 4), p, {}, 0))
    EXPECT_EQ(c.matmul.kind, "skinny") << c.label();
  // LoRA-shaped products (few tiles, long K) get split-K candidates.
  bool split = false;
  for (const KernelConfig &c : searchSpace(matmul(512, 8, 4096), p, {}, 0))
    split |= c.matmul.split_k > 1;
  EXPECT_TRUE(split);
  EXPECT_EQ(whyPruned(KernelConfig::ofMatmul({"tiled", 128, 128, 16, 8, 8, 1}), matmul(16, 16, 64), p),
            "tile larger than the problem");
}

TEST(SearchSpace, SmallFamilies) {
  DeviceProfile p = loadProfileOrDefault("nvidia");
  ProblemShape sm;
  sm.op = "softmax", sm.family = RuleFamily::Softmax, sm.outputs = 4096, sm.extent = 151936;
  std::vector<KernelConfig> space = searchSpace(sm, p, {ruleConfig(sm, p)}, 0);
  for (const KernelConfig &c : space)
    EXPECT_FALSE(c.reduction.serial()) << "serial rows of 151,936 pass llvmpipe's loop limit";
  EXPECT_FALSE(referenceConfig(sm).reduction.serial());
  ProblemShape ce;
  ce.op = "cross_entropy", ce.family = RuleFamily::CrossEntropy, ce.elements = 512, ce.extent = 256;
  for (const KernelConfig &c : searchSpace(ce, p, {}, 0))
    EXPECT_EQ(c.workgroup_size & (c.workgroup_size - 1), 0) << c.label();
}

TuningPlan smallPlan() {
  TuningPlan t;
  t.compiler_version = tesseraVersion();
  t.model_file = "m.onnx";
  t.profile_json = profileToJson(defaultProfile());
  TuneProblem p;
  p.key = "unary x";
  p.shape.op = "unary";
  p.shape.family = RuleFamily::Elementwise;
  p.shape.elements = 64;
  p.count = 3;
  p.dtype = "f32";
  p.summary = "n=64";
  p.buffers = {{"input", {}}, {"output", {BufferFill::None}}};
  p.reference = {KernelConfig::ofElementwise(64), "reference", "reference"};
  p.candidates = {{KernelConfig::ofElementwise(128), "c0", "rule"}};
  t.blobs.push_back({1, 2, 3});
  t.problems.push_back(p);
  return t;
}

TEST(TuningPlan, RoundTripAndErrors) {
  TuningPlan t = smallPlan();
  std::vector<uint8_t> bytes = serializeTuningPlan(t);
  TuningPlan u = parseTuningPlan(bytes, "t.ttune");
  EXPECT_EQ(serializeTuningPlan(u), bytes);
  EXPECT_EQ(u.problems[0].candidates[0].config.workgroup_size, 128);

  std::vector<uint8_t> flipped = bytes;
  flipped.back() ^= 1;
  EXPECT_EQ(errorOf([&] { parseTuningPlan(flipped, "t.ttune"); }),
            "t.ttune: checksum mismatch: the file is corrupt or truncated");
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + 20);
  EXPECT_NE(errorOf([&] { parseTuningPlan(cut, "t.ttune"); }).find("truncated"), std::string::npos);
  EXPECT_NE(errorOf([&] { parseTuningPlan({'T', 'E', 'S', 'S', 'P', 'L', 'A', 'N'}, "p"); })
                .find("this is a training plan"),
            std::string::npos);
  TuningPlan old = t;
  old.compiler_version = "v0";
  EXPECT_NE(errorOf([&] { parseTuningPlan(serializeTuningPlan(old), "t.ttune"); })
                .find("t.ttune: written by tessera v0, this is tessera"),
            std::string::npos);
  TuningPlan badRule = t;
  badRule.problems[0].rule = 4;
  EXPECT_EQ(errorOf([&] { parseTuningPlan(serializeTuningPlan(badRule), "t.ttune"); }),
            "t.ttune: problems[0].rule must be an integer in [0, 0]");
  TuningPlan badBlob = t;
  badBlob.problems[0].plan_blob = 9;
  EXPECT_NE(errorOf([&] { parseTuningPlan(serializeTuningPlan(badBlob), "t.ttune"); }).find("plan_blob"),
            std::string::npos);
  // The problem's blob must be a plan: reported when it is read.
  EXPECT_NE(errorOf([&] { u.problemPlan(0, "t.ttune"); }).find("not a Tessera plan"), std::string::npos);
}

TEST(CostModel, FitsALogLinearTime) {
  // time = 100 * 2^(x1) * 0.5^(x2): the model recovers the ranking.
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 3; ++b) {
      x.push_back({1.0, double(a), double(b)});
      y.push_back(100 * std::pow(2.0, a) * std::pow(0.5, b));
    }
  CostModel m;
  m.fit(x, y, 1e-6);
  ASSERT_TRUE(m.ready());
  EXPECT_NEAR(m.predictUs({1.0, 5.0, 0.0}), 3200, 3200 * 1e-3);
  EXPECT_LT(m.predictUs({1.0, 0.0, 4.0}), m.predictUs({1.0, 1.0, 0.0}));
}

TEST(Bench, RobustMedianDropsOutliers) {
  std::vector<double> s = {10.0, 10.2, 9.9, 10.1, 55.0};
  int rejected = 0;
  EXPECT_NEAR(robustMedian(s, &rejected), 10.05, 1e-9);
  EXPECT_EQ(rejected, 1);
  EXPECT_EQ(s.size(), 4u);
}

TEST(TuneCommand, Durations) {
  EXPECT_EQ(parseDuration("120s", "--budget"), 120);
  EXPECT_EQ(parseDuration("5m", "--budget"), 300);
  EXPECT_EQ(parseDuration("90", "--budget"), 90);
  EXPECT_EQ(parseDuration("1h", "--budget"), 3600);
  EXPECT_EQ(errorOf([] { parseDuration("soon", "--budget"); }),
            "--budget soon: expected a positive duration such as 120s, 5m or 1h");
  EXPECT_NE(errorOf([] { parseDuration("-3s", "--timeout"); }).find("--timeout -3s"), std::string::npos);
}

} // namespace
