//===- Raise.h - pieces of tessera-raise shared between files ---*- C++ -*-===//
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::tessera::raise {

/// Replaces recognised generic op chains of `f` by tessera.rms_norm, rope,
/// attention, glu and embedding (and spelled-out GELU by unary gelu_tanh);
/// erases the ops that die. Leaves everything else as it is.
void raiseFusedOps(func::FuncOp f);

} // namespace mlir::tessera::raise
