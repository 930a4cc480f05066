// The Vulkan executor on the local device (lavapipe here): a plan with the
// `add` kernel assembled from kernels/add.spvasm at build time.
#include "runtime/vulkan/Executor.h"
#include "runtime/vulkan/KernelCheck.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

using namespace tessera;
using namespace tessera::plan;
using tessera::test::f32;

namespace {


std::vector<uint8_t> u32Bytes(uint32_t v) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}

// c = a + b over n of N elements (the rest of c must stay untouched), then
// d = c + b through an alias of c.
Plan addPlan(uint32_t n, int64_t N, BufferKind aKind = BufferKind::Input) {
  Plan p;
  p.buffers = {f32("a", aKind, N), f32("b", BufferKind::Constant, N), f32("c", BufferKind::Activation, N),
               f32("c_alias", BufferKind::Activation, N), f32("d", BufferKind::Output, N)};
  p.buffers[3].alias_of = 2;
  p.blobs.push_back(test::kernel("add", {{"@NAME@", "add"}, {"@N@", std::to_string(N)}}));
  std::vector<uint8_t> bdata(size_t(N) * 4);
  for (int64_t i = 0; i < N; ++i) {
    float v = float(i) * 0.5f;
    std::memcpy(bdata.data() + i * 4, &v, 4);
  }
  p.blobs.push_back(bdata);
  p.buffers[1].init_blob = 1;
  Kernel k;
  k.name = "add";
  k.spirv_blob = 0;
  k.num_bindings = 3;
  k.local_size = {64, 1, 1};
  k.push_constant_bytes = 4;
  p.kernels = {k};
  Program prog;
  prog.name = "main";
  Dispatch d1;
  d1.kernel = 0;
  d1.bindings = {0, 1, 2};
  d1.groups = {(n + 63) / 64, 1, 1};
  d1.push_constants = u32Bytes(n);
  Dispatch d2 = d1;
  d2.bindings = {3, 1, 4};
  prog.dispatches = {d1, d2};
  p.programs = {prog};
  test::finishInterfaces(p);
  return parse(serialize(p), "add.tplan"); // validated like a real plan
}

} // namespace

TEST(Vulkan, ListsDevices) {
  std::vector<vk::DeviceInfo> devs = vk::Context::listDevices();
  ASSERT_FALSE(devs.empty());
  EXPECT_EQ(devs[0].index, 0u);
  EXPECT_FALSE(devs[0].name.empty());
  EXPECT_GT(devs[0].maxStorageBufferRange, 0u);
  EXPECT_GT(devs[0].subgroupSize, 0u);
}

TEST(Vulkan, RejectsMissingDevice) {
  try {
    vk::Context ctx(99);
    FAIL();
  } catch (const vk::VulkanError &e) {
    EXPECT_EQ(std::string(e.what()).rfind("device 99 does not exist (", 0), 0u) << e.what();
  }
}

TEST(Vulkan, AddKernelRecordedOnceReplayed) {
  const uint32_t n = 1000;
  const int64_t N = 1024;
  Plan p = addPlan(n, N);
  vk::Context ctx(0);
  vk::Executor ex(ctx, p);
  EXPECT_TRUE(ex.hasProgram("main"));
  EXPECT_FALSE(ex.hasProgram("eval"));
  EXPECT_EQ(ex.data(3), ex.data(2)); // alias shares storage
  std::memcpy(ex.data(1), p.blobs[1].data(), p.blobs[1].size());

  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-10, 10);
  for (int round = 0; round < 3; ++round) {
    std::vector<float> a(N);
    for (float &v : a) v = dist(gen);
    std::memcpy(ex.f32(0), a.data(), a.size() * 4);
    for (int64_t i = 0; i < N; ++i) {
      ex.f32(2)[i] = -1;
      ex.f32(4)[i] = -2;
    }
    vk::ProgramTiming t = ex.run("main");
    EXPECT_GE(t.wall_ms, 0);
    if (ctx.info().timestamps) {
      EXPECT_GE(t.gpu_ms, 0);
    }
    for (int64_t i = 0; i < N; ++i) {
      float b = float(i) * 0.5f;
      if (i < int64_t(n)) {
        ASSERT_EQ(ex.f32(2)[i], a[size_t(i)] + b) << "round " << round << " i " << i;
        ASSERT_EQ(ex.f32(4)[i], (a[size_t(i)] + b) + b) << "round " << round << " i " << i;
      } else {
        ASSERT_EQ(ex.f32(2)[i], -1) << "bounds check, i " << i;
        ASSERT_EQ(ex.f32(4)[i], -2) << "bounds check, i " << i;
      }
    }
  }
  EXPECT_THROW(ex.run("nope"), vk::VulkanError);
}

// Dispatch timestamps: one time per dispatch, which add up to the program's
// time (the last dispatch's end to the program's end is only the final
// barrier), results unchanged; none without the option.
TEST(Vulkan, DispatchTimestampsAddUpToTheProgram) {
  const uint32_t n = 1 << 16;
  Plan p = addPlan(n, n);
  vk::Context ctx(0);
  if (!ctx.info().timestamps) GTEST_SKIP() << "no timestamps";
  vk::ExecutorOptions eo;
  eo.dispatch_timestamps = true;
  vk::Executor ex(ctx, p, eo);
  std::memcpy(ex.data(1), p.blobs[1].data(), p.blobs[1].size());
  for (uint32_t i = 0; i < n; ++i) ex.f32(0)[i] = float(i);
  EXPECT_TRUE(ex.dispatchTimes("main").empty()); // before a run
  vk::ProgramTiming t = ex.run("main");
  const std::vector<double> &ms = ex.dispatchTimes("main");
  ASSERT_EQ(ms.size(), 2u);
  double sum = 0;
  for (double m : ms) {
    EXPECT_GE(m, 0);
    sum += m;
  }
  EXPECT_LE(sum, t.gpu_ms + 1e-9);
  EXPECT_GT(sum, 0.5 * t.gpu_ms) << "dispatch times " << ms[0] << " + " << ms[1] << " of " << t.gpu_ms << " ms";
  EXPECT_EQ(ex.f32(4)[n - 1], float(n - 1) + 2 * float(n - 1) * 0.5f);
  vk::Executor plain(ctx, p);
  plain.run("main");
  EXPECT_TRUE(plain.dispatchTimes("main").empty());
}

// Cold-cache groups (the autotuner's timed runs): one time per group of
// cold_cache_period dispatches, each after a scrub fill, within the program's
// time; results as without them (the second dispatch reads the first's).
TEST(Vulkan, ColdCacheGroupsTimeEachGroup) {
  const uint32_t n = 1 << 16;
  Plan p = addPlan(n, n);
  p.programs[0].dispatches.push_back(p.programs[0].dispatches[0]); // 3 dispatches: groups of 2 and 1
  vk::Context ctx(0);
  if (!ctx.info().timestamps) GTEST_SKIP() << "no timestamps";
  for (size_t period : {1, 2}) {
    vk::ExecutorOptions eo;
    eo.cold_cache_bytes = 4 << 20;
    eo.cold_cache_period = period;
    vk::Executor ex(ctx, p, eo);
    std::memcpy(ex.data(1), p.blobs[1].data(), p.blobs[1].size());
    for (uint32_t i = 0; i < n; ++i) ex.f32(0)[i] = float(i);
    vk::ProgramTiming t = ex.run("main");
    const std::vector<double> &g = ex.groupTimes("main");
    ASSERT_EQ(g.size(), period == 1 ? 3u : 2u);
    double sum = 0;
    for (double ms : g) {
      EXPECT_GT(ms, 0);
      sum += ms;
    }
    EXPECT_LT(sum, t.gpu_ms) << "the fills are not part of the groups";
    EXPECT_TRUE(ex.dispatchTimes("main").empty());
    EXPECT_EQ(ex.f32(4)[n - 1], float(n - 1) + 2 * float(n - 1) * 0.5f) << "period " << period;
  }
}

// read() returns what the GPU wrote, directly from a host-cached mapping and
// through the staging copy a discrete GPU's uncached memory takes (forced here
// in chunks that do not divide the buffer), aliases included.
TEST(Vulkan, ReadBackDirectAndStaged) {
  const int64_t N = 300000; // 1.2 MB: above read()'s direct-copy threshold
  Plan p = addPlan(uint32_t(N), N);
  vk::Context ctx(0);
  vk::Executor ex(ctx, p);
  std::memcpy(ex.data(1), p.blobs[1].data(), p.blobs[1].size());
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-10, 10);
  std::vector<float> a(N);
  for (float &v : a) v = dist(gen);
  std::memcpy(ex.f32(0), a.data(), a.size() * 4);
  ex.run("main");
  auto check = [&](const char *how) {
    std::vector<float> c(N, -7), d(N, -7);
    ex.read(3, c.data(), c.size() * 4); // the alias of c
    ex.read(4, d.data(), d.size() * 4);
    for (int64_t i = 0; i < N; ++i) {
      float b = float(i) * 0.5f;
      ASSERT_EQ(c[size_t(i)], a[size_t(i)] + b) << how << " i " << i;
      ASSERT_EQ(d[size_t(i)], (a[size_t(i)] + b) + b) << how << " i " << i;
    }
  };
  check("direct");
  setenv("TESSERA_READBACK_CHUNK", "300001", 1);
  check("staged");
  unsetenv("TESSERA_READBACK_CHUNK");
}

TEST(Vulkan, RejectsBufferBeyondStorageRange) {
  vk::Context ctx(0);
  uint64_t range = ctx.properties().limits.maxStorageBufferRange;
  if (range > (uint64_t(512) << 20)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed cheaply";
  int64_t N = int64_t(range / 4) + 16;
  Plan p = addPlan(64, N);
  try {
    vk::Executor ex(ctx, p);
    FAIL();
  } catch (const vk::VulkanError &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("buffer 'a' (buffers[0]) is ", 0), 0u) << msg;
    EXPECT_NE(msg.find("more than this device's maxStorageBufferRange"), std::string::npos) << msg;
    EXPECT_NE(msg.find("compile the plan with a smaller --batch, --seq or --loss-chunk-tokens"), std::string::npos) << msg;
  }
  // A weight does not shrink with the batch: the hint says so.
  Plan w = addPlan(64, N, BufferKind::Weight);
  try {
    vk::Executor ex(ctx, w);
    FAIL();
  } catch (const vk::VulkanError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("compile it for this device: tessera compile --profile with device.max_buffer_bytes <= " +
                       std::to_string(range) + " (maxStorageBufferRange)"),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find("--batch"), std::string::npos) << msg;
  }
  // A plan that records its target's limit names it.
  w.target.max_buffer_bytes = uint64_t(1) << 30;
  try {
    vk::Executor ex(ctx, w);
    FAIL();
  } catch (const vk::VulkanError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("the plan was compiled for buffers up to 1024.0 MiB"), std::string::npos) << msg;
  }
}

TEST(Vulkan, RejectsBadEntryPoint) {
  Plan p = addPlan(64, 64);
  p.kernels[0].name = "not_in_module";
  vk::Context ctx(0);
  try {
    vk::Executor ex(ctx, p);
    FAIL() << "pipeline creation with a missing entry point succeeded";
  } catch (const vk::VulkanError &e) {
    EXPECT_EQ(std::string(e.what()), "kernel 'not_in_module' (kernels[0]): its SPIR-V module (blob 0) has no compute "
                                     "entry point 'not_in_module' (it has 'add')");
  }
}

// A module the plan reader accepts (its declarations match the interface)
// but that is not valid SPIR-V: OpFAdd turned into OpIAdd on floats. It must
// never reach the driver.
TEST(Vulkan, ValidatesSpirvBeforePipelineCreation) {
  if (!vk::spirvValidatorLinked()) GTEST_SKIP() << "built without the SPIR-V validator";
  Plan p = addPlan(64, 64);
  std::vector<uint8_t> &spv = p.blobs[p.kernels[0].spirv_blob];
  bool changed = false;
  for (size_t i = 20; i + 4 <= spv.size();) {
    uint32_t w;
    std::memcpy(&w, spv.data() + i, 4);
    if ((w & 0xffff) == 129) { // OpFAdd
      w = (w & 0xffff0000u) | 128; // OpIAdd
      std::memcpy(spv.data() + i, &w, 4);
      changed = true;
      break;
    }
    i += 4 * (w >> 16);
  }
  ASSERT_TRUE(changed);
  Plan q = parse(serialize(p), "add.tplan"); // the reader's checks pass
  vk::Context ctx(0);
  try {
    vk::Executor ex(ctx, q);
    FAIL() << "an invalid module reached pipeline creation";
  } catch (const vk::VulkanError &e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("kernel 'add' (kernels[0]): its SPIR-V module is not valid (", 0), 0u) << msg;
  }
}
