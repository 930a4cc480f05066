// SpirvBf16Test - the bf16 retyping of cooperative-matrix kernels
// (compiler/lowering/SpirvBf16.cpp) on hand-assembled SPIR-V words: every
// OpTypeFloat 16 becomes OpTypeFloat 16 BFloat16KHR, the capabilities and the
// extension are declared in the places SPIR-V's module layout allows, and
// nothing else moves.
#include "compiler/lowering/SpirvBf16.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using tessera::lowering::retypeHalfAsBf16;

namespace {

uint32_t op(uint32_t count, uint32_t opcode) { return (count << 16) | opcode; }

// header, OpCapability Shader, OpCapability Float16, OpExtension "SPV_X",
// OpMemoryModel, %1 = OpTypeFloat 16, %2 = OpTypeFloat 32, %3 = OpTypeInt 16 0
std::vector<uint32_t> sample() {
  return {0x07230203u, 0x00010600u, 0, 10, 0,
          op(2, 17), 1,                  // OpCapability Shader
          op(2, 17), 9,                  // OpCapability Float16
          op(3, 10), 0x5f565053u, 0x58, // OpExtension "SPV_X"
          op(3, 14), 0, 1,              // OpMemoryModel Logical GLSL450
          op(3, 22), 1, 16,             // %1 = OpTypeFloat 16
          op(3, 22), 2, 32,             // %2 = OpTypeFloat 32
          op(4, 21), 3, 16, 0};         // %3 = OpTypeInt 16 0
}

struct Inst {
  uint32_t opcode;
  std::vector<uint32_t> operands;
};

std::vector<Inst> decode(const llvm::SmallVectorImpl<uint32_t> &w) {
  std::vector<Inst> out;
  for (size_t i = 5; i < w.size();) {
    uint32_t count = w[i] >> 16;
    out.push_back({w[i] & 0xffff, std::vector<uint32_t>(w.begin() + i + 1, w.begin() + i + count)});
    i += count;
  }
  return out;
}

std::string text(const std::vector<uint32_t> &words) {
  std::string s(reinterpret_cast<const char *>(words.data()), words.size() * 4);
  return s.substr(0, s.find('\0'));
}

} // namespace

TEST(SpirvBf16, RetypesHalfAndDeclaresTheExtension) {
  std::vector<uint32_t> in = sample();
  llvm::SmallVector<uint32_t> w(in.begin(), in.end());
  std::string error;
  ASSERT_TRUE(retypeHalfAsBf16(w, error)) << error;
  EXPECT_EQ(w[3], 10u) << "the id bound is unchanged";
  std::vector<Inst> insts = decode(w);
  ASSERT_EQ(insts.size(), 10u);
  // Capabilities: the old two, then BFloat16TypeKHR and BFloat16CooperativeMatrixKHR.
  EXPECT_EQ(insts[0].opcode, 17u);
  EXPECT_EQ(insts[1].opcode, 17u);
  EXPECT_EQ(insts[2].opcode, 17u);
  EXPECT_EQ(insts[2].operands, (std::vector<uint32_t>{5116}));
  EXPECT_EQ(insts[3].operands, (std::vector<uint32_t>{5118}));
  // Extensions: the old one, then SPV_KHR_bfloat16; before OpMemoryModel.
  EXPECT_EQ(insts[4].opcode, 10u);
  EXPECT_EQ(text(insts[4].operands), "SPV_X");
  EXPECT_EQ(insts[5].opcode, 10u);
  EXPECT_EQ(text(insts[5].operands), "SPV_KHR_bfloat16");
  EXPECT_EQ(insts[6].opcode, 14u);
  // %1 is bf16 now; f32 and i16 are untouched.
  EXPECT_EQ(insts[7].opcode, 22u);
  EXPECT_EQ(insts[7].operands, (std::vector<uint32_t>{1, 16, 0}));
  EXPECT_EQ(insts[8].operands, (std::vector<uint32_t>{2, 32}));
  EXPECT_EQ(insts[9].operands, (std::vector<uint32_t>{3, 16, 0}));
  EXPECT_EQ(insts[9].opcode, 21u);
}

TEST(SpirvBf16, ExtensionGoesAfterTheCapabilitiesWhenThereIsNone) {
  std::vector<uint32_t> in = {0x07230203u, 0x00010600u, 0, 4, 0, op(2, 17), 1, op(3, 14), 0, 1, op(3, 22), 1, 16};
  llvm::SmallVector<uint32_t> w(in.begin(), in.end());
  std::string error;
  ASSERT_TRUE(retypeHalfAsBf16(w, error)) << error;
  std::vector<Inst> insts = decode(w);
  ASSERT_EQ(insts.size(), 6u);
  EXPECT_EQ(insts[0].opcode, 17u);
  EXPECT_EQ(insts[1].opcode, 17u);
  EXPECT_EQ(insts[2].opcode, 17u);
  EXPECT_EQ(insts[3].opcode, 10u);
  EXPECT_EQ(insts[4].opcode, 14u);
  EXPECT_EQ(insts[5].operands, (std::vector<uint32_t>{1, 16, 0}));
}

TEST(SpirvBf16, RejectsWhatItCannotRetype) {
  std::string error;
  llvm::SmallVector<uint32_t> notSpirv = {1, 2, 3, 4, 5};
  EXPECT_FALSE(retypeHalfAsBf16(notSpirv, error));
  EXPECT_EQ(error, "not a SPIR-V module");
  llvm::SmallVector<uint32_t> noHalf = {0x07230203u, 0x00010600u, 0, 4, 0, op(2, 17), 1, op(3, 22), 2, 32};
  EXPECT_FALSE(retypeHalfAsBf16(noHalf, error));
  EXPECT_EQ(error, "no 16-bit float type to retype");
  llvm::SmallVector<uint32_t> truncated = {0x07230203u, 0x00010600u, 0, 4, 0, op(5, 17), 1};
  EXPECT_FALSE(retypeHalfAsBf16(truncated, error));
  EXPECT_EQ(error, "malformed instruction at word 5");
}
