//===- TesseraOps.h - Tessera operations ----------------------*- C++ -*-===//
#ifndef TESSERA_DIALECT_TESSERA_IR_TESSERAOPS_H
#define TESSERA_DIALECT_TESSERA_IR_TESSERAOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "Tessera/IR/TesseraDialect.h"

namespace mlir::tessera {
/// Numpy broadcast of two shapes (MLIR's OpTrait::util::getBroadcastedShape,
/// the one implementation every stage uses); failure when incompatible.
FailureOr<SmallVector<int64_t>> broadcastShapes(ArrayRef<int64_t> a, ArrayRef<int64_t> b);

/// Element type of an elementwise result: the operands' when equal, else the
/// wider of two float types (f32 for f16 with bf16); failure otherwise.
FailureOr<Type> promotedElementType(Type a, Type b);

/// "[2,3,4]": shapes in diagnostics.
std::string shapeString(ArrayRef<int64_t> shape);

/// Result types of the tensor ops (TesseraTypeInference.cpp), shared by the
/// builders and the verifiers. `emit` reports why the operands admit none.
using EmitFn = function_ref<InFlightDiagnostic()>;
FailureOr<RankedTensorType> inferBinaryType(Value lhs, Value rhs, EmitFn emit);
FailureOr<RankedTensorType> inferSelectType(Value cond, Value lhs, Value rhs, EmitFn emit);
FailureOr<RankedTensorType> inferMatmulType(Value lhs, Value rhs, bool transposeLhs,
                                            bool transposeRhs, EmitFn emit);
FailureOr<RankedTensorType> inferReduceType(Value input, ArrayRef<int64_t> axes, bool keepdims,
                                            EmitFn emit);
FailureOr<RankedTensorType> inferTransposeType(Value input, ArrayRef<int64_t> perm, EmitFn emit);
/// `shape` permuted as tessera.transpose does (dim d of the result is dim
/// perm[d]); none: the shape itself. Failure unless perm permutes the dims
/// and keeps the last one in place (tessera.rope's folded transposes).
FailureOr<SmallVector<int64_t>> permuteKeepingLast(ArrayRef<int64_t> shape, std::optional<ArrayRef<int64_t>> perm);
FailureOr<RankedTensorType> inferSliceType(Value input, ArrayRef<int64_t> starts,
                                           ArrayRef<int64_t> limits, ArrayRef<int64_t> strides,
                                           EmitFn emit);
FailureOr<RankedTensorType> inferPadType(Value input, ArrayRef<int64_t> low,
                                         ArrayRef<int64_t> high, ArrayRef<int64_t> interior,
                                         EmitFn emit);
FailureOr<RankedTensorType> inferConcatType(ValueRange inputs, int64_t axis, EmitFn emit);
FailureOr<RankedTensorType> inferGatherType(Value input, Value indices, int64_t axis, EmitFn emit);
FailureOr<RankedTensorType> inferEmbeddingType(Value table, Value ids, EmitFn emit);

/// Whether v is a ranked tensor of a float element type (f32, f16, bf16).
inline bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}
} // namespace mlir::tessera

namespace mlir::tessera {
class GradientBuilder;
} // namespace mlir::tessera
#include "Tessera/IR/TesseraInterfaces.h.inc"

#define GET_OP_CLASSES
#include "Tessera/IR/TesseraOps.h.inc"

#endif
