//===- TesseraDialect.cpp - dialect registration --------------------------===//
#include "Tessera/IR/TesseraDialect.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::tessera;

#include "Tessera/IR/TesseraDialect.cpp.inc"
#include "Tessera/IR/TesseraEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "Tessera/IR/TesseraAttrs.cpp.inc"

//===----------------------------------------------------------------------===//
// Kernel configurations (TesseraKernelConfigs.td)
//===----------------------------------------------------------------------===//

static bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

LogicalResult MatmulConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError, StringAttr,
                                       MatmulKind kind, ArrayRef<int64_t> tile, ArrayRef<int64_t> thread,
                                       int64_t splitK, ArrayRef<int64_t> mma, ArrayRef<int64_t> subgroups,
                                       Type operands) {
  if (tile.size() != 3 || thread.size() != 2)
    return emitError() << "matmul_config needs tile = [m, n, k] and thread = [m, n]";
  for (int64_t v : {tile[0], tile[1], tile[2], thread[0], thread[1], splitK})
    if (v < 1)
      return emitError() << "matmul_config sizes must be >= 1";
  if (kind == MatmulKind::coopmat) {
    if (mma.size() != 3 || subgroups.size() != 2)
      return emitError() << "a coopmat matmul_config needs mma = [m, n, k] and subgroups = [m, n]";
    for (int64_t v : {mma[0], mma[1], mma[2], subgroups[0], subgroups[1]})
      if (v < 1)
        return emitError() << "matmul_config sizes must be >= 1";
    // Bounded before they are multiplied (a product must not wrap to 0).
    for (int64_t v : {mma[0], mma[1], mma[2], subgroups[0], subgroups[1]})
      if (v > 1024)
        return emitError() << "coopmat mma and subgroups sizes must be <= 1024";
    if (!isPowerOfTwo(thread[0]))
      return emitError() << "coopmat subgroup size (thread[0]) must be a power of two";
    if (tile[0] % (subgroups[0] * mma[0]) || tile[1] % (subgroups[1] * mma[1]) || tile[2] % mma[2])
      return emitError() << "coopmat tile [" << tile[0] << ", " << tile[1] << ", " << tile[2]
                         << "] is not a multiple of subgroups x mma";
    if (!isPowerOfTwo(thread[1]) || thread[1] > 8)
      return emitError() << "coopmat vector width (thread[1]) must be 1, 2, 4 or 8";
    if (!operands || !(operands.isF16() || operands.isBF16()))
      return emitError() << "a coopmat matmul_config needs operands = f16 or bf16";
    return success();
  }
  if (!mma.empty() || !subgroups.empty() || operands)
    return emitError() << "mma, subgroups and operands belong to coopmat configs";
  if (tile[0] % thread[0] || tile[1] % thread[1])
    return emitError() << "matmul_config tile [" << tile[0] << ", " << tile[1]
                       << "] is not a multiple of the thread tile [" << thread[0] << ", "
                       << thread[1] << "]";
  return success();
}

LogicalResult ReductionConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                          ReductionStrategy strategy, int64_t workgroupSize) {
  if (workgroupSize < 1 || (strategy == ReductionStrategy::workgroup && !isPowerOfTwo(workgroupSize)))
    return emitError() << "reduction_config workgroup_size must be >= 1 (a power of two for the "
                          "workgroup strategy), got "
                       << workgroupSize;
  return success();
}

LogicalResult ElementwiseConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                            int64_t workgroupSize) {
  if (workgroupSize < 1)
    return emitError() << "elementwise_config workgroup_size must be >= 1, got " << workgroupSize;
  return success();
}

LogicalResult TesseraDialect::verifyOperationAttribute(Operation *op, NamedAttribute attr) {
  if (attr.getName() == getKernelConfigAttrName()) {
    Attribute c = attr.getValue();
    bool ok = isa<MatmulOp>(op) ? isa<MatmulConfigAttr>(c)
              : isa<ReduceOp, SoftmaxOp>(op) ? isa<ReductionConfigAttr>(c)
                                              : isa<ElementwiseConfigAttr>(c);
    if (!ok)
      return op->emitOpError("kernel config ") << c << " does not fit this op";
    return success();
  }
  if (attr.getName() == getKernelTargetAttrName()) {
    auto d = dyn_cast<DictionaryAttr>(attr.getValue());
    if (!isa<ModuleOp>(op) || !d || !d.getAs<StringAttr>("profile") ||
        !d.getAs<IntegerAttr>("max_workgroup_count") ||
        d.getAs<IntegerAttr>("max_workgroup_count").getInt() < 1 ||
        !d.getAs<ElementwiseConfigAttr>("elementwise") || !d.getAs<ReductionConfigAttr>("reduce") ||
        d.getAs<ReductionConfigAttr>("reduce").getStrategy() != ReductionStrategy::workgroup)
      return op->emitOpError(getKernelTargetAttrName())
             << " must be a module dictionary {profile = \"name\", max_workgroup_count = N >= 1, "
                "elementwise = #tessera.elementwise_config, reduce = #tessera.reduction_config "
                "(workgroup strategy)}";
    return success();
  }
  return success();
}

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
