// KernelConfigs.h - between kernel ops and the plain-C++ configs of
// autotune/: the key and shape of an op's kernel problem, and the
// #tessera.*_config attribute of an autotune::KernelConfig.
//
// The key names what determines the kernel's code apart from its config:
// the op, the attributes that shape the kernel and the operand and result
// types. It is what tuning plans and the exact entries of a tuned profile
// are keyed by, e.g.
//   matmul {transpose_rhs = true} (tensor<4x128x128xf32>, tensor<8x128xf32>) -> tensor<4x128x8xf32>
#pragma once

#include "autotune/SearchSpace.h"

#include "mlir/IR/Operation.h"

#include <string>

namespace tessera::lowering {

/// The op's problem key (see above); "" for ops that are no kernel.
std::string problemKey(mlir::Operation *op);

/// Family and sizes of the op's kernel problem (family None for ops that
/// are no kernel).
autotune::ProblemShape problemShape(mlir::Operation *op);

/// The IR attribute of a config; `variant` names the profile entry it came
/// from (matmul only).
mlir::Attribute configAttr(mlir::MLIRContext *ctx, const autotune::KernelConfig &c, llvm::StringRef variant = "");
/// The config of an attribute (failure for other attributes).
mlir::FailureOr<autotune::KernelConfig> configOf(mlir::Attribute attr);

} // namespace tessera::lowering
