// The SPIR-V declaration reader (runtime/plan/SpirvModule.h) against modules
// assembled by spirv-as, and the test module writer (TestSpirv.h) against
// spirv-val: both sides of the interface checks meet an independent toolchain.
#include "runtime/plan/SpirvModule.h"

#include "TestSpirv.h"
#include "TestUtil.h"

#include <gtest/gtest.h>

using namespace tessera;
using namespace tessera::plan;

namespace {

bool spirvValAccepts(const std::vector<uint8_t> &module, std::string &why) {
  test::TempDir dir;
  std::string path = dir / "m.spv";
  test::writeText(path, std::string(module.begin(), module.end()));
  test::RunResult r = test::run(std::string(TESSERA_TEST_SPIRV_VAL) + " --target-env vulkan1.1 " + test::quote(path), dir);
  why = r.err + r.out;
  return r.code == 0;
}

} // namespace

TEST(Spirv, ReadsAnAssembledKernel) {
  std::vector<uint8_t> add = test::kernel("add", {{"@NAME@", "add"}, {"@N@", "1000"}});
  SpirvModule m = inspectSpirv(add.data(), add.size());
  EXPECT_EQ(m.capabilities, std::vector<uint32_t>{1});
  ASSERT_EQ(m.entry_points.size(), 1u);
  EXPECT_EQ(m.entry_points[0].name, "add");
  EXPECT_EQ(m.entry_points[0].model, 5u);
  EXPECT_TRUE(m.entry_points[0].has_local_size);
  EXPECT_EQ(m.entry_points[0].local_size, (std::array<uint32_t, 3>{64, 1, 1}));
  ASSERT_EQ(m.buffers.size(), 3u);
  for (uint32_t b = 0; b < 3; ++b) {
    const SpirvBuffer &buf = m.buffers[b];
    EXPECT_EQ(buf.binding, b);
    EXPECT_EQ(buf.set, 0u);
    EXPECT_EQ(buf.storage_class, 12u);
    EXPECT_TRUE(buf.block && buf.sized && buf.is_float);
    EXPECT_EQ(buf.element_bits, 32u);
    EXPECT_EQ(buf.bytes, 4000u);
    EXPECT_EQ(buf.read, b < 2) << b;
    EXPECT_EQ(buf.written, b == 2) << b;
  }
  EXPECT_EQ(m.push_constant_blocks, 1u);
  EXPECT_EQ(m.push_constant_bytes, 4u);
  EXPECT_TRUE(m.unsupported.empty()) << m.unsupported;

  std::vector<uint8_t> f = test::kernel("first_to_float", {{"@IDS@", "8"}, {"@OUT@", "1"}});
  m = inspectSpirv(f.data(), f.size());
  ASSERT_EQ(m.buffers.size(), 2u);
  EXPECT_FALSE(m.buffers[0].is_float);
  EXPECT_EQ(m.buffers[0].bytes, 32u);
  EXPECT_TRUE(m.buffers[0].read && !m.buffers[0].written);
  EXPECT_TRUE(m.buffers[1].written && !m.buffers[1].read);
}

TEST(Spirv, TestModulesAreValid) {
  std::vector<test::SpirvKernel> shapes(4);
  shapes[0].bindings = {{DType::F32, 6, true, false}, {DType::I32, 3, true, true}, {DType::F32, 1, false, true}};
  shapes[0].localSize = {8, 8, 2};
  shapes[1].bindings = {{DType::F32, 6, true, false}};
  shapes[1].pushConstantBytes = 8;
  shapes[2].bindings = {{DType::F32, 1, true, false, /*runtimeArray=*/true}};
  shapes[3].bindings = {{DType::F32, 4, false, true}, {DType::F32, 4, false, true, false, 1}};
  for (size_t i = 0; i < shapes.size(); ++i) {
    std::vector<uint8_t> m = test::spirvKernel(shapes[i]);
    std::string why;
    EXPECT_TRUE(spirvValAccepts(m, why)) << "shape " << i << ": " << why;
    SpirvModule s = inspectSpirv(m.data(), m.size());
    ASSERT_EQ(s.buffers.size(), shapes[i].bindings.size());
    for (size_t b = 0; b < s.buffers.size(); ++b) {
      EXPECT_EQ(s.buffers[b].read, shapes[i].bindings[b].read);
      EXPECT_EQ(s.buffers[b].written, shapes[i].bindings[b].write);
      EXPECT_EQ(s.buffers[b].sized, !shapes[i].bindings[b].runtimeArray);
    }
  }
}

TEST(Spirv, RejectsMalformedBinaries) {
  auto error = [](std::vector<uint8_t> b) {
    try {
      inspectSpirv(b.data(), b.size());
    } catch (const SpirvError &e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  std::vector<uint8_t> good = test::spirvKernel({});
  EXPECT_EQ(error(std::vector<uint8_t>(good.begin(), good.begin() + 12)), "not a SPIR-V module (12 bytes)");
  std::vector<uint8_t> bad = good;
  bad[0] = 0;
  EXPECT_EQ(error(bad).rfind("not a SPIR-V module (magic ", 0), 0u);
  bad = good;
  bad[22] = 0xff; // the first instruction's word count
  EXPECT_EQ(error(bad), "instruction at word 5 runs past the end of the module");
  bad = good;
  bad[22] = 0; // a zero word count
  EXPECT_EQ(error(bad), "instruction at word 5 runs past the end of the module");
}
