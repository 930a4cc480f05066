//===- Passes.h - Tessera pass declarations -------------------*- C++ -*-===//
#ifndef TESSERA_DIALECT_TESSERA_TRANSFORMS_PASSES_H
#define TESSERA_DIALECT_TESSERA_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

#include "Tessera/IR/TesseraOps.h"

namespace mlir::tessera {

#define GEN_PASS_DECL
#include "Tessera/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Tessera/Transforms/Passes.h.inc"

} // namespace mlir::tessera

#endif
