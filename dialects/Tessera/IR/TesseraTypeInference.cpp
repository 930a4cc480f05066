//===- TesseraTypeInference.cpp - result types of the tensor ops ----------===//
//
// One shape rule per op, used twice: by the builders (InferTypeOpInterface:
// `b.create<BinaryOp>(loc, BinaryFn::add, x, y)` takes no result type) and
// by the verifiers (TesseraOps.cpp), which compare a given result type with
// the inferred one. Element types come from the operands, never a fixed f32:
// elementwise ops promote two float types to the wider one, contractions and
// data movement keep their input's.
//
// Each rule reports a malformed op through `emit`, which is the op's
// emitOpError when verifying and an optional-location error when building,
// so both paths say the same thing.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Traits.h"
#include "mlir/IR/Diagnostics.h"

using namespace mlir;
using namespace mlir::tessera;

FailureOr<SmallVector<int64_t>> mlir::tessera::broadcastShapes(ArrayRef<int64_t> a,
                                                               ArrayRef<int64_t> b) {
  SmallVector<int64_t> out;
  if (!OpTrait::util::getBroadcastedShape(a, b, out))
    return failure();
  return out;
}

FailureOr<Type> mlir::tessera::promotedElementType(Type a, Type b) {
  if (a == b)
    return a;
  auto fa = dyn_cast<FloatType>(a), fb = dyn_cast<FloatType>(b);
  if (!fa || !fb)
    return failure();
  if (fa.getWidth() == fb.getWidth()) // f16 with bf16: neither holds the other
    return Type(Float32Type::get(a.getContext()));
  return fa.getWidth() > fb.getWidth() ? a : b;
}

std::string mlir::tessera::shapeString(ArrayRef<int64_t> s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

namespace {

ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }
Type elementOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }

/// The error sink of a shape rule: returns failure after reporting.
using Emit = function_ref<InFlightDiagnostic()>;

/// `emit` for inferReturnTypes: "'<op>' op <message>" at the location, if any.
template <typename OpT>
auto emitAt(std::optional<Location> loc) {
  return [loc]() -> InFlightDiagnostic {
    if (!loc)
      return InFlightDiagnostic();
    InFlightDiagnostic d = mlir::emitError(*loc);
    d << "'" << OpT::getOperationName() << "' op ";
    return d;
  };
}

RankedTensorType tensor(ArrayRef<int64_t> shape, Type element) {
  return RankedTensorType::get(shape, element);
}

FailureOr<Type> promoted(Value a, Value b, Emit emit) {
  FailureOr<Type> t = promotedElementType(elementOf(a), elementOf(b));
  if (failed(t))
    return (emit() << "element types " << elementOf(a) << " and " << elementOf(b)
                   << " do not promote"),
           failure();
  return t;
}

} // namespace

//===----------------------------------------------------------------------===//
// Shape rules
//===----------------------------------------------------------------------===//

FailureOr<RankedTensorType> mlir::tessera::inferBinaryType(Value lhs, Value rhs, Emit emit) {
  auto s = broadcastShapes(shapeOf(lhs), shapeOf(rhs));
  if (failed(s))
    return (emit() << "operands " << shapeString(shapeOf(lhs)) << " and "
                   << shapeString(shapeOf(rhs)) << " do not broadcast"),
           failure();
  FailureOr<Type> e = promoted(lhs, rhs, emit);
  if (failed(e))
    return failure();
  return tensor(*s, *e);
}

FailureOr<RankedTensorType> mlir::tessera::inferSelectType(Value cond, Value lhs, Value rhs,
                                                           Emit emit) {
  auto s = broadcastShapes(shapeOf(lhs), shapeOf(rhs));
  if (succeeded(s))
    s = broadcastShapes(*s, shapeOf(cond));
  if (failed(s))
    return (emit() << "operands do not broadcast"), failure();
  FailureOr<Type> e = promoted(lhs, rhs, emit);
  if (failed(e))
    return failure();
  return tensor(*s, *e);
}

FailureOr<RankedTensorType> mlir::tessera::inferMatmulType(Value lhs, Value rhs, bool tl, bool tr,
                                                           Emit emit) {
  ArrayRef<int64_t> l = shapeOf(lhs), r = shapeOf(rhs);
  if (l.size() < 2 || r.size() < 2)
    return (emit() << "operands must have rank >= 2"), failure();
  auto batch = broadcastShapes(l.drop_back(2), r.drop_back(2));
  if (failed(batch))
    return (emit() << "batch dimensions do not broadcast"), failure();
  SmallVector<int64_t> s = *batch;
  s.push_back(tl ? l[l.size() - 1] : l[l.size() - 2]);
  s.push_back(tr ? r[r.size() - 2] : r[r.size() - 1]);
  return tensor(s, elementOf(lhs));
}

FailureOr<RankedTensorType> mlir::tessera::inferReduceType(Value input, ArrayRef<int64_t> axes,
                                                           bool keepdims, Emit emit) {
  ArrayRef<int64_t> in = shapeOf(input);
  SmallVector<bool> reduced(in.size(), false);
  for (int64_t a : axes) {
    if (a < 0 || a >= (int64_t)in.size())
      return (emit() << "axis " << a << " out of range for rank " << in.size()), failure();
    if (reduced[a])
      return (emit() << "axis " << a << " repeated"), failure();
    reduced[a] = true;
  }
  SmallVector<int64_t> s;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!reduced[i])
      s.push_back(in[i]);
    else if (keepdims)
      s.push_back(1);
  }
  return tensor(s, elementOf(input));
}

FailureOr<RankedTensorType> mlir::tessera::inferTransposeType(Value input, ArrayRef<int64_t> perm,
                                                              Emit emit) {
  ArrayRef<int64_t> in = shapeOf(input);
  if (perm.size() != in.size())
    return (emit() << "permutation size must equal rank"), failure();
  SmallVector<bool> seen(in.size(), false);
  SmallVector<int64_t> s;
  for (int64_t p : perm) {
    if (p < 0 || p >= (int64_t)in.size() || seen[p])
      return (emit() << "invalid permutation"), failure();
    seen[p] = true;
    s.push_back(in[p]);
  }
  return tensor(s, elementOf(input));
}

FailureOr<SmallVector<int64_t>> mlir::tessera::permuteKeepingLast(ArrayRef<int64_t> shape,
                                                                  std::optional<ArrayRef<int64_t>> perm) {
  if (!perm)
    return SmallVector<int64_t>(shape);
  if (perm->size() != shape.size() || shape.empty() || perm->back() != (int64_t)shape.size() - 1)
    return failure();
  SmallVector<bool> seen(shape.size(), false);
  SmallVector<int64_t> s;
  for (int64_t p : *perm) {
    if (p < 0 || p >= (int64_t)shape.size() || seen[p])
      return failure();
    seen[p] = true;
    s.push_back(shape[p]);
  }
  return s;
}

FailureOr<RankedTensorType> mlir::tessera::inferSliceType(Value input, ArrayRef<int64_t> starts,
                                                          ArrayRef<int64_t> limits,
                                                          ArrayRef<int64_t> strides, Emit emit) {
  ArrayRef<int64_t> in = shapeOf(input);
  size_t r = in.size();
  if (starts.size() != r || limits.size() != r || strides.size() != r)
    return (emit() << "starts/limits/strides must have one entry per dim"), failure();
  SmallVector<int64_t> s;
  for (size_t i = 0; i < r; ++i) {
    if (strides[i] < 1 || starts[i] < 0 || limits[i] > in[i] || starts[i] > limits[i])
      return (emit() << "invalid slice on dim " << i), failure();
    s.push_back((limits[i] - starts[i] + strides[i] - 1) / strides[i]);
  }
  return tensor(s, elementOf(input));
}

FailureOr<RankedTensorType> mlir::tessera::inferPadType(Value input, ArrayRef<int64_t> low,
                                                        ArrayRef<int64_t> high,
                                                        ArrayRef<int64_t> interior, Emit emit) {
  ArrayRef<int64_t> in = shapeOf(input);
  size_t r = in.size();
  if (low.size() != r || high.size() != r || interior.size() != r)
    return (emit() << "low/high/interior must have one entry per dim"), failure();
  SmallVector<int64_t> s;
  for (size_t i = 0; i < r; ++i) {
    int64_t d = low[i] + high[i] + in[i] + (in[i] > 0 ? (in[i] - 1) * interior[i] : 0);
    if (low[i] < 0 || high[i] < 0 || interior[i] < 0)
      return (emit() << "low/high/interior of dim " << i << " must be >= 0"), failure();
    s.push_back(d);
  }
  return tensor(s, elementOf(input));
}

FailureOr<RankedTensorType> mlir::tessera::inferConcatType(ValueRange inputs, int64_t axis,
                                                           Emit emit) {
  if (inputs.empty())
    return (emit() << "needs at least one input"), failure();
  ArrayRef<int64_t> first = shapeOf(inputs.front());
  if (axis < 0 || axis >= (int64_t)first.size())
    return (emit() << "axis out of range"), failure();
  SmallVector<int64_t> s(first);
  s[axis] = 0;
  for (Value v : inputs) {
    ArrayRef<int64_t> vs = shapeOf(v);
    if (vs.size() != first.size())
      return (emit() << "inputs must have the same rank"), failure();
    for (size_t i = 0; i < vs.size(); ++i)
      if ((int64_t)i != axis && vs[i] != first[i])
        return (emit() << "input dim " << i << " differs between inputs"), failure();
    if (elementOf(v) != elementOf(inputs.front()))
      return (emit() << "inputs have different element types"), failure();
    s[axis] += vs[axis];
  }
  return tensor(s, elementOf(inputs.front()));
}

FailureOr<RankedTensorType> mlir::tessera::inferGatherType(Value input, Value indices, int64_t axis,
                                                           Emit emit) {
  ArrayRef<int64_t> in = shapeOf(input), idx = shapeOf(indices);
  if (axis < 0 || axis >= (int64_t)in.size())
    return (emit() << "axis out of range"), failure();
  SmallVector<int64_t> s(in.begin(), in.begin() + axis);
  s.append(idx.begin(), idx.end());
  s.append(in.begin() + axis + 1, in.end());
  return tensor(s, elementOf(input));
}

FailureOr<RankedTensorType> mlir::tessera::inferEmbeddingType(Value table, Value ids, Emit emit) {
  ArrayRef<int64_t> t = shapeOf(table);
  if (t.size() != 2)
    return (emit() << "table must be [vocab, hidden]"), failure();
  SmallVector<int64_t> s(shapeOf(ids));
  s.push_back(t[1]);
  return tensor(s, elementOf(table));
}

//===----------------------------------------------------------------------===//
// InferTypeOpInterface
//===----------------------------------------------------------------------===//

namespace {
/// Stores the one inferred result type, or fails.
LogicalResult result(FailureOr<RankedTensorType> t, SmallVectorImpl<Type> &types) {
  if (failed(t))
    return failure();
  types.push_back(*t);
  return success();
}
} // namespace

#define TESSERA_INFER(OP)                                                                          \
  LogicalResult OP::inferReturnTypes(MLIRContext *, std::optional<Location> loc, Adaptor a,        \
                                     SmallVectorImpl<Type> &types)

TESSERA_INFER(RopeOp) {
  auto t = cast<RankedTensorType>(a.getInput().getType());
  FailureOr<SmallVector<int64_t>> s = permuteKeepingLast(t.getShape(), a.getInputPermutation());
  if (succeeded(s))
    s = permuteKeepingLast(*s, a.getResultPermutation());
  if (failed(s))
    return emitAt<RopeOp>(loc)() << "input_permutation and result_permutation must permute the input's dims "
                                    "and keep the last in place",
           failure();
  return types.push_back(t.clone(*s)), success();
}
TESSERA_INFER(AttentionOp) { return types.push_back(a.getQuery().getType()), success(); }
// out has the query's type; lse is [B, H, T] f32 (an unranked query is
// left to the verifier).
TESSERA_INFER(FlashAttentionOp) {
  auto q = dyn_cast<RankedTensorType>(a.getQuery().getType());
  if (!q || q.getRank() != 4)
    return failure();
  types.push_back(q);
  types.push_back(tensor(q.getShape().take_front(3), Float32Type::get(q.getContext())));
  return success();
}
TESSERA_INFER(FlashAttentionGradOp) {
  types.append({a.getQuery().getType(), a.getKey().getType(), a.getValue().getType()});
  return success();
}
TESSERA_INFER(CrossEntropyGradOp) { return types.push_back(a.getLogits().getType()), success(); }

TESSERA_INFER(CrossEntropyOp) {
  return types.push_back(tensor({}, elementOf(a.getLogits()))), success();
}

TESSERA_INFER(BinaryOp) {
  return result(inferBinaryType(a.getLhs(), a.getRhs(), emitAt<BinaryOp>(loc)), types);
}

TESSERA_INFER(SelectOp) {
  return result(inferSelectType(a.getCond(), a.getLhs(), a.getRhs(), emitAt<SelectOp>(loc)), types);
}

TESSERA_INFER(MatmulOp) {
  return result(inferMatmulType(a.getLhs(), a.getRhs(), a.getTransposeLhs(), a.getTransposeRhs(),
                                emitAt<MatmulOp>(loc)),
                types);
}

TESSERA_INFER(ReduceOp) {
  return result(inferReduceType(a.getInput(), a.getAxes(), a.getKeepdims(), emitAt<ReduceOp>(loc)),
                types);
}

TESSERA_INFER(TransposeOp) {
  return result(inferTransposeType(a.getInput(), a.getPerm(), emitAt<TransposeOp>(loc)), types);
}

TESSERA_INFER(SliceOp) {
  return result(inferSliceType(a.getInput(), a.getStarts(), a.getLimits(), a.getStrides(),
                               emitAt<SliceOp>(loc)),
                types);
}

TESSERA_INFER(PadOp) {
  return result(inferPadType(a.getInput(), a.getLow(), a.getHigh(), a.getInterior(),
                             emitAt<PadOp>(loc)),
                types);
}

TESSERA_INFER(ConcatOp) {
  return result(inferConcatType(a.getInputs(), a.getAxis(), emitAt<ConcatOp>(loc)), types);
}

TESSERA_INFER(GatherOp) {
  return result(inferGatherType(a.getInput(), a.getIndices(), a.getAxis(), emitAt<GatherOp>(loc)),
                types);
}

TESSERA_INFER(EmbeddingOp) {
  return result(inferEmbeddingType(a.getTable(), a.getIds(), emitAt<EmbeddingOp>(loc)), types);
}

#undef TESSERA_INFER
