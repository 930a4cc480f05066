// SpirvBf16.cpp - see SpirvBf16.h. SPIR-V is a stream of instructions, each
// led by a word holding (word count << 16) | opcode; nothing refers to
// word offsets, so instructions can be widened and inserted in place.
#include "compiler/lowering/SpirvBf16.h"

#include <cstring>

namespace tessera::lowering {
namespace {

constexpr uint32_t kOpExtension = 10, kOpCapability = 17, kOpTypeFloat = 22;
constexpr uint32_t kCapBFloat16TypeKHR = 5116, kCapBFloat16CooperativeMatrixKHR = 5118;
constexpr uint32_t kFPEncodingBFloat16KHR = 0;
constexpr size_t kHeaderWords = 5;

uint32_t head(uint32_t count, uint32_t opcode) { return (count << 16) | opcode; }

llvm::SmallVector<uint32_t> literalString(const char *s) {
  size_t n = std::strlen(s) + 1; // with the terminating NUL
  llvm::SmallVector<uint32_t> words((n + 3) / 4, 0);
  std::memcpy(words.data(), s, n);
  return words;
}

} // namespace

bool retypeHalfAsBf16(llvm::SmallVectorImpl<uint32_t> &words, std::string &error) {
  if (words.size() < kHeaderWords || words[0] != 0x07230203u) {
    error = "not a SPIR-V module";
    return false;
  }
  llvm::SmallVector<uint32_t> out(words.begin(), words.begin() + kHeaderWords);
  size_t lastCapability = 0, lastExtension = 0; // positions in `out` after the last such instruction
  bool retyped = false;
  for (size_t i = kHeaderWords; i < words.size();) {
    uint32_t count = words[i] >> 16, opcode = words[i] & 0xffff;
    if (count == 0 || i + count > words.size()) {
      error = "malformed instruction at word " + std::to_string(i);
      return false;
    }
    if (opcode == kOpTypeFloat && count == 3 && words[i + 2] == 16) {
      out.append({head(4, kOpTypeFloat), words[i + 1], 16, kFPEncodingBFloat16KHR});
      retyped = true;
    } else {
      out.append(words.begin() + i, words.begin() + i + count);
    }
    if (opcode == kOpCapability)
      lastCapability = out.size();
    if (opcode == kOpExtension)
      lastExtension = out.size();
    i += count;
  }
  if (!retyped) {
    error = "no 16-bit float type to retype";
    return false;
  }
  if (!lastCapability) {
    error = "no OpCapability";
    return false;
  }
  // Capabilities first, then extensions (the module layout SPIR-V requires).
  llvm::SmallVector<uint32_t> ext = literalString("SPV_KHR_bfloat16");
  llvm::SmallVector<uint32_t> extension = {head(uint32_t(1 + ext.size()), kOpExtension)};
  extension.append(ext.begin(), ext.end());
  size_t extAt = lastExtension ? lastExtension : lastCapability;
  out.insert(out.begin() + extAt, extension.begin(), extension.end());
  uint32_t caps[] = {head(2, kOpCapability), kCapBFloat16TypeKHR, head(2, kOpCapability),
                     kCapBFloat16CooperativeMatrixKHR};
  out.insert(out.begin() + lastCapability, std::begin(caps), std::end(caps));
  words.assign(out.begin(), out.end());
  return true;
}

} // namespace tessera::lowering
