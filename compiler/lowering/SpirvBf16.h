// SpirvBf16.h - bf16 cooperative matrices without a bf16 type in MLIR 19.
//
// MLIR 19's SPIR-V dialect cannot name bf16, so a kernel that multiplies
// bf16 fragments (VK_KHR_shader_bfloat16 + VK_KHR_cooperative_matrix) is
// built with f16 types holding bf16 bits: its values are only loaded,
// stored, bitcast and multiplied, never computed with (kernels/
// MatmulCoopMat.cpp). Its spirv.module carries the unit attribute below, and
// after serialisation every 16-bit float type of the binary is retyped as
// bf16 (OpTypeFloat 16 BFloat16KHR) with the SPV_KHR_bfloat16 capabilities
// declared.
#pragma once

#include "Tessera/IR/TesseraDialect.h"

#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <string>

namespace tessera::lowering {

/// Unit attribute of a gpu.module / spirv.module whose f16 types mean bf16.
inline constexpr ::llvm::StringLiteral kBf16AsF16Attr = ::mlir::tessera::attrs::bf16AsF16;
/// Unit attribute of a gpu.module / spirv.module whose cooperative matrices
/// are of workgroup scope (VK_NV_cooperative_matrix2; the plan then needs
/// plan::kFeatureWorkgroupCoopMat).
inline constexpr ::llvm::StringLiteral kWorkgroupMatricesAttr = "tessera.workgroup_matrices";

/// Retypes the module's OpTypeFloat 16 as bf16 and declares BFloat16TypeKHR,
/// BFloat16CooperativeMatrixKHR and SPV_KHR_bfloat16. Returns false (with
/// `error`) on a malformed binary.
bool retypeHalfAsBf16(llvm::SmallVectorImpl<uint32_t> &words, std::string &error);

} // namespace tessera::lowering
