//===- TesseraDialect.cpp - dialect registration --------------------------===//
#include "Tessera/IR/TesseraDialect.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::tessera;

#include "Tessera/IR/TesseraDialect.cpp.inc"
#include "Tessera/IR/TesseraEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "Tessera/IR/TesseraAttrs.cpp.inc"

void TesseraDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Tessera/IR/TesseraAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "Tessera/IR/TesseraOps.cpp.inc"
      >();
}
