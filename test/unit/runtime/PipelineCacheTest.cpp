// Startup (issue 10 item 4) on the local device (lavapipe here): the pipeline
// cache file (written, found, checked before the driver sees it: truncated,
// damaged, another device's or driver's file ignored with one note; an
// unwritable folder a warning), identical kernels sharing one pipeline, and
// the buffers filled while the pipelines are built. Kernels: kernels/add.spvasm.
#include "runtime/vulkan/Executor.h"
#include "runtime/vulkan/PipelineCache.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

using namespace tessera;
using namespace tessera::plan;
using tessera::test::f32;
namespace fs = std::filesystem;

namespace {


// d = (a + b) + b through `kernels` add kernels: kernels 0 and 1 are the add
// of N elements under two names (a plan's kernel names are unique, and the
// entry point is the kernel's name: their modules differ in that name only),
// kernel 2 (when asked for) is the add of 2N elements, another module.
Plan addPlan(int64_t N, int kernels) {
  Plan p;
  p.buffers = {f32("a", BufferKind::Input, 2 * N), f32("b", BufferKind::Input, 2 * N),
               f32("c", BufferKind::Activation, 2 * N), f32("d", BufferKind::Output, 2 * N)};
  for (int k = 0; k < kernels; ++k) {
    const std::string name = k == 0 ? "add" : k == 1 ? "add_again" : "add_wide";
    p.blobs.push_back(test::kernel("add", {{"@NAME@", name}, {"@N@", std::to_string(k < 2 ? N : 2 * N)}}));
    Kernel kernel;
    kernel.name = name;
    kernel.spirv_blob = uint32_t(k);
    kernel.num_bindings = 3;
    kernel.local_size = {64, 1, 1};
    kernel.push_constant_bytes = 4;
    p.kernels.push_back(kernel);
  }
  Program prog;
  prog.name = "main";
  uint32_t n = uint32_t(N);
  std::vector<uint8_t> pc(4);
  std::memcpy(pc.data(), &n, 4);
  for (int k = 0; k < kernels; ++k) {
    Dispatch d;
    d.kernel = uint32_t(k);
    d.bindings = k == 0 ? std::vector<uint32_t>{0, 1, 2} : std::vector<uint32_t>{2, 1, 3};
    d.groups = {(n + 63) / 64, 1, 1};
    d.push_constants = pc;
    prog.dispatches.push_back(d);
  }
  p.programs = {prog};
  test::finishInterfaces(p);
  return parse(serialize(p), "add.tplan");
}

// Runs `main` with a = i, b = 1 and returns d.
std::vector<float> runAdd(vk::Executor &ex, int64_t N) {
  for (int64_t i = 0; i < 2 * N; ++i) {
    ex.f32(0)[i] = float(i);
    ex.f32(1)[i] = 1;
    ex.f32(3)[i] = -1;
  }
  ex.run("main");
  return std::vector<float>(ex.f32(3), ex.f32(3) + N);
}

std::string cacheFile(const vk::Context &ctx, const std::string &dir) {
  return (fs::path(dir) / vk::pipelineCacheFileName(ctx.properties())).string();
}

// An executor of `p` with the cache in `dir`; its stderr in `err`.
std::unique_ptr<vk::Executor> open(vk::Context &ctx, const Plan &p, const std::string &dir, std::string &err) {
  vk::ExecutorOptions o;
  o.pipeline_cache_dir = dir;
  testing::internal::CaptureStderr();
  std::unique_ptr<vk::Executor> ex;
  try {
    ex = std::make_unique<vk::Executor>(ctx, p, o);
  } catch (...) {
    err = testing::internal::GetCapturedStderr();
    throw;
  }
  err = testing::internal::GetCapturedStderr();
  return ex;
}

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

} // namespace

TEST(Startup, IdenticalKernelsShareOnePipeline) {
  const int64_t N = 256;
  Plan p = addPlan(N, 3);
  vk::Context ctx(0);
  vk::Executor ex(ctx, p);
  EXPECT_EQ(ex.startup().kernels, 3u);
  EXPECT_EQ(ex.pipelineCount(), 2u); // kernels 0 and 1 share one, kernel 2 has its own
  EXPECT_EQ(ex.startup().pipelines, 2u);
  EXPECT_EQ(vk::describePipelines(ex.startup()).rfind("2 pipelines for 3 kernels (no pipeline cache) in ", 0), 0u)
      << vk::describePipelines(ex.startup());
  // The shared pipeline runs both dispatches: d = (a + 1) + 1, then kernel 2 (2N elements) d = c + 1 again.
  std::vector<float> d = runAdd(ex, N);
  for (int64_t i = 0; i < N; ++i) ASSERT_EQ(d[size_t(i)], float(i) + 2) << i;
  EXPECT_NE(p.blobs[0], p.blobs[1]); // the entry point's name differs
  // The same module, another layout: its own pipeline.
  Plan q = addPlan(N, 2);
  q.kernels[1].push_constant_bytes = 8;
  q.programs[0].dispatches[1].push_constants.resize(8);
  test::finishInterfaces(q);
  q = parse(serialize(q), "add.tplan");
  vk::Executor two(ctx, q);
  EXPECT_EQ(two.pipelineCount(), 2u);
  EXPECT_EQ(runAdd(two, N)[5], 7.0f);
}

TEST(Startup, CacheFileWrittenThenFound) {
  const int64_t N = 256;
  Plan p = addPlan(N, 3);
  vk::Context ctx(0);
  test::TempDir dir;
  const std::string cache = dir / "cache";
  std::string err;
  std::vector<float> first, second, none;
  {
    auto ex = open(ctx, p, cache, err);
    EXPECT_EQ(ex->startup().cached, 0u);
    EXPECT_EQ(ex->startup().cache, cacheFile(ctx, cache));
    EXPECT_EQ(err, "");
    first = runAdd(*ex, N);
  }
  const std::string file = cacheFile(ctx, cache);
  ASSERT_TRUE(fs::exists(file));
  std::vector<uint8_t> bytes = test::readBytes(file);
  std::string why;
  auto parsed = vk::parsePipelineCacheFile(bytes, ctx.properties(), why);
  ASSERT_TRUE(parsed) << why;
  EXPECT_EQ(parsed->keys.size(), 2u);           // the two distinct pipelines
  EXPECT_GE(parsed->driverData.size(), 32u);     // at least the driver's VkPipelineCacheHeaderVersionOne
  {
    auto ex = open(ctx, p, cache, err);
    EXPECT_EQ(ex->startup().cached, 2u);
    EXPECT_NE(vk::describePipelines(ex->startup()).find("(2 from cache"), std::string::npos);
    EXPECT_EQ(err, "");
    second = runAdd(*ex, N);
  }
  EXPECT_EQ(test::readBytes(file), bytes); // nothing new: not rewritten
  {
    auto ex = open(ctx, p, "", err);
    EXPECT_EQ(ex->startup().cache, "");
    none = runAdd(*ex, N);
  }
  EXPECT_EQ(first, second);
  EXPECT_EQ(first, none);
  // Another plan adds its pipeline to the same file; the first plan's stay.
  Plan q = addPlan(2 * N, 1);
  {
    auto ex = open(ctx, q, cache, err);
    EXPECT_EQ(ex->startup().cached, 0u);
  }
  parsed = vk::parsePipelineCacheFile(test::readBytes(file), ctx.properties(), why);
  ASSERT_TRUE(parsed) << why;
  EXPECT_EQ(parsed->keys.size(), 3u);
}

// Each damage: the file is ignored with one note naming it and why, the
// pipelines are built afresh (same results), and the file is replaced by a good one.
TEST(Startup, BadCacheFilesAreIgnoredWithOneNote) {
  const int64_t N = 256;
  Plan p = addPlan(N, 2);
  vk::Context ctx(0);
  test::TempDir dir;
  const std::string cache = dir / "cache";
  std::string err;
  std::vector<float> want;
  {
    auto ex = open(ctx, p, cache, err);
    want = runAdd(*ex, N);
  }
  const std::string file = cacheFile(ctx, cache);
  const std::vector<uint8_t> good = test::readBytes(file);
  std::string why;
  auto parsed = vk::parsePipelineCacheFile(good, ctx.properties(), why);
  ASSERT_TRUE(parsed) << why;
  auto withDriverHeader = [&](size_t offset, uint32_t value) {
    std::vector<uint8_t> data = parsed->driverData;
    std::memcpy(data.data() + offset, &value, 4);
    return vk::serializePipelineCacheFile(parsed->keys, data);
  };
  std::vector<uint8_t> otherUuid = parsed->driverData;
  otherUuid[16] ^= 0xff;
  struct Case {
    const char *name;
    std::vector<uint8_t> bytes;
    const char *why;
  };
  std::vector<uint8_t> flipped = good;
  flipped.back() ^= 1;
  std::vector<uint8_t> wrongMagic = good;
  wrongMagic[0] = 'X';
  const Case cases[] = {
      {"truncated header", std::vector<uint8_t>(good.begin(), good.begin() + 10), "truncated (10 bytes)"},
      {"truncated body", std::vector<uint8_t>(good.begin(), good.end() - 5), "truncated or damaged"},
      {"empty", {}, "truncated (0 bytes)"},
      {"wrong magic", wrongMagic, "not a tessera pipeline cache"},
      {"flipped bit", flipped, "checksum mismatch"},
      {"other vendor", withDriverHeader(8, ctx.properties().vendorID + 1), "made for another device or driver"},
      {"other device", withDriverHeader(12, ctx.properties().deviceID ^ 0x1234), "made for another device or driver"},
      {"other driver", vk::serializePipelineCacheFile(parsed->keys, otherUuid), "made for another device or driver"},
      {"driver header version", withDriverHeader(4, 7), "no VkPipelineCacheHeaderVersionOne"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> bytes = c.bytes;
    EXPECT_FALSE(vk::parsePipelineCacheFile(bytes, ctx.properties(), why));
    EXPECT_NE(why.find(c.why), std::string::npos) << why;
    {
      std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
    }
    auto ex = open(ctx, p, cache, err);
    EXPECT_EQ(count(err, "note: pipeline cache " + file + " is ignored: "), 1u) << err;
    EXPECT_NE(err.find(c.why), std::string::npos) << err;
    EXPECT_EQ(count(err, "\n"), 1u) << err;
    EXPECT_EQ(ex->startup().cached, 0u);
    EXPECT_EQ(runAdd(*ex, N), want);
    EXPECT_TRUE(vk::parsePipelineCacheFile(test::readBytes(file), ctx.properties(), why)) << why; // replaced
  }
}

TEST(Startup, UnwritableCacheFolderWarns) {
  const int64_t N = 256;
  Plan p = addPlan(N, 2);
  vk::Context ctx(0);
  test::TempDir dir;
  test::writeText(dir / "file", "x"); // a folder under a regular file cannot be made, even by root
  std::string err;
  auto ex = open(ctx, p, dir / "file/cache", err);
  EXPECT_EQ(count(err, "warning: pipeline cache not written ("), 1u) << err;
  EXPECT_NE(err.find(dir / "file"), std::string::npos) << err;
  EXPECT_EQ(count(err, "\n"), 1u) << err;
  std::vector<float> d = runAdd(*ex, N);
  for (int64_t i = 0; i < N; ++i) ASSERT_EQ(d[size_t(i)], float(i) + 2) << i;
}

// ExecutorOptions::fill runs while the pipelines are built; the executor is
// ready when both are done; a failure of either is the constructor's.
TEST(Startup, FillOverlapsPipelineCreation) {
  const int64_t N = 256;
  Plan p = addPlan(N, 3);
  vk::Context ctx(0);
  vk::ExecutorOptions o;
  o.threads = 2;
  bool filled = false;
  o.fill = [&](vk::Executor &ex) {
    for (int64_t i = 0; i < 2 * N; ++i) ex.f32(1)[i] = 1;
    filled = true;
  };
  vk::Executor ex(ctx, p, o);
  EXPECT_TRUE(filled);
  EXPECT_GE(ex.startup().fill_s, 0);
  EXPECT_EQ(runAdd(ex, N)[10], 12.0f);
  o.fill = [](vk::Executor &) { throw std::runtime_error("weights.onnx: broken"); };
  try {
    vk::Executor bad(ctx, p, o);
    FAIL() << "no error";
  } catch (const std::runtime_error &e) {
    EXPECT_STREQ(e.what(), "weights.onnx: broken");
  }
  // A kernel the device cannot take is reported as before (the first such kernel), after the fill.
  Plan q = addPlan(N, 3);
  q.kernels[1].name = "nope";
  q.kernels[2].name = "nope2";
  o.fill = [](vk::Executor &) {};
  try {
    vk::Executor bad(ctx, q, o);
    FAIL() << "no error";
  } catch (const vk::VulkanError &e) {
    EXPECT_EQ(std::string(e.what()).rfind("kernel 'nope' (kernels[1]): its SPIR-V module (blob 1) has no compute entry point", 0), 0u)
        << e.what();
  }
}

TEST(Startup, CacheFolderChoice) {
  const char *saved[3] = {std::getenv("TESSERA_PIPELINE_CACHE"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")};
  std::string keep[3];
  for (int i = 0; i < 3; ++i) keep[i] = saved[i] ? saved[i] : "";
  unsetenv("TESSERA_PIPELINE_CACHE");
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::nullopt, false), "/x/cache/tessera");
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::nullopt, false), "/home/u/.cache/tessera");
  setenv("TESSERA_PIPELINE_CACHE", "/env/dir", 1);
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::nullopt, false), "/env/dir");
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::string("/flag"), false), "/flag");
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::string("/flag"), true), "");
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::string(""), false), "");
  setenv("TESSERA_PIPELINE_CACHE", "", 1);
  EXPECT_EQ(vk::resolvePipelineCacheDir(std::nullopt, false), "");
  const char *names[3] = {"TESSERA_PIPELINE_CACHE", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i) {
    if (saved[i]) setenv(names[i], keep[i].c_str(), 1);
    else unsetenv(names[i]);
  }
}
