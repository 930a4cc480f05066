//===- TesseraDialect.h - Tessera dialect declaration ---------*- C++ -*-===//
#ifndef TESSERA_DIALECT_TESSERA_IR_TESSERADIALECT_H
#define TESSERA_DIALECT_TESSERA_IR_TESSERADIALECT_H

#include "mlir/IR/Dialect.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Operation.h"

#include <optional>

// Attributes first: the dialect's discardable-attribute helpers name them.
#include "Tessera/IR/TesseraEnums.h.inc"
#define GET_ATTRDEF_CLASSES
#include "Tessera/IR/TesseraAttrs.h.inc"

#include "Tessera/IR/TesseraDialect.h.inc"

// The names of the dialect's discardable attributes (TesseraDialect.td,
// discardableAttrs), for code that reads or writes them without a dialect
// instance at hand (function argument and result attributes).
namespace mlir::tessera::attrs {
constexpr ::llvm::StringLiteral layer = TesseraDialect::LayerAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral module = TesseraDialect::ModuleAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral lora = TesseraDialect::LoraAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral arch = TesseraDialect::ArchAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral precision = TesseraDialect::PrecisionAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral vocab = TesseraDialect::VocabAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral memory = TesseraDialect::MemoryAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral gradOf = TesseraDialect::GradOfAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral buffer = TesseraDialect::BufferAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral bufferKind = TesseraDialect::BufferKindAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral role = TesseraDialect::RoleAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral config = TesseraDialect::ConfigAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral bf16AsF16 = TesseraDialect::Bf16AsF16AttrHelper::getNameStr();
constexpr ::llvm::StringLiteral quant = TesseraDialect::QuantAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral quantTransposed = TesseraDialect::QuantTransposedAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral ternary = TesseraDialect::TernaryAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral ternaryEps = TesseraDialect::TernaryEpsAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral hostResident = TesseraDialect::HostResidentAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral stream = TesseraDialect::StreamAttrHelper::getNameStr();
constexpr ::llvm::StringLiteral streamedWeights = TesseraDialect::StreamedWeightsAttrHelper::getNameStr();
} // namespace mlir::tessera::attrs

namespace mlir::tessera {
// The function's role (tessera.role), or std::nullopt.
std::optional<ProgramRole> programRole(Operation *func);
void setProgramRole(Operation *func, ProgramRole role);
} // namespace mlir::tessera

#endif
