// Dialects.h - the one list of MLIR dialects the compiler uses: Tessera, and
// the upstream dialects its passes create (func for the tensor-level
// programs; gpu, arith, math, memref, scf and spirv for the kernels).
#pragma once

namespace mlir {
class DialectRegistry;
}

namespace tessera {
void registerCompilerDialects(mlir::DialectRegistry &registry);
} // namespace tessera
