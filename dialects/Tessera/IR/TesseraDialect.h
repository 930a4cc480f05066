//===- TesseraDialect.h - Tessera dialect declaration ---------*- C++ -*-===//
#ifndef TESSERA_DIALECT_TESSERA_IR_TESSERADIALECT_H
#define TESSERA_DIALECT_TESSERA_IR_TESSERADIALECT_H

#include "mlir/IR/Dialect.h"

#include "Tessera/IR/TesseraDialect.h.inc"
#include "Tessera/IR/TesseraEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Tessera/IR/TesseraAttrs.h.inc"

#endif
