//===- GradientBuilder.h - what a gradient rule builds with -----*- C++ -*-===//
//
// The state of one backward sweep (tessera-autodiff) as the gradient rules of
// GradientOpInterface see it: which values are active, the gradient
// accumulated so far for each, and tensor arithmetic at the location of the
// op being differentiated. Result types are the ops' own inference; scalar
// constants take the element type of the value they combine with and are
// created once per (value, type) for the whole sweep.
//
//===----------------------------------------------------------------------===//
#ifndef TESSERA_DIALECT_TESSERA_IR_GRADIENTBUILDER_H
#define TESSERA_DIALECT_TESSERA_IR_GRADIENTBUILDER_H

#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Builders.h"

#include <map>

namespace mlir::tessera {

class GradientBuilder {
public:
  GradientBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  OpBuilder &b;
  Location loc; // of the op being differentiated

  //===- the sweep --------------------------------------------------------===//
  /// Values that depend on a LoRA parameter and that the loss depends on.
  DenseSet<Value> active;
  bool isActive(Value v) const { return active.contains(v); }
  /// Adds `g` to the gradient of `v` (nothing when `v` is not active).
  void accumulate(Value v, Value g);
  /// The gradient accumulated for `v`, or null.
  Value gradientOf(Value v) const { return grads.lookup(v); }
  void setGradient(Value v, Value g) { grads[v] = g; }

  //===- tensor arithmetic ------------------------------------------------===//
  static ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }
  static Type elementOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }

  /// A rank-0 constant of `like`'s element type.
  Value cst(double v, Value like);
  Value zeros(RankedTensorType type);

  Value unary(UnaryFn fn, Value x) { return b.create<UnaryOp>(loc, fn, x); }
  Value binary(BinaryFn fn, Value x, Value y) { return b.create<BinaryOp>(loc, fn, x, y); }
  Value add(Value x, Value y) { return binary(BinaryFn::add, x, y); }
  Value sub(Value x, Value y) { return binary(BinaryFn::sub, x, y); }
  Value mul(Value x, Value y) { return binary(BinaryFn::mul, x, y); }
  Value div(Value x, Value y) { return binary(BinaryFn::div, x, y); }
  Value mul(Value x, double c) { return c == 1.0 ? x : mul(x, cst(c, x)); }
  Value neg(Value x) { return unary(UnaryFn::neg, x); }
  /// x != 0, elementwise, as an i1 mask (the core has no comparison op).
  Value nonzero(Value x);
  Value select(Value cond, Value x, Value y) { return b.create<SelectOp>(loc, cond, x, y); }
  Value reduce(ReduceFn fn, Value x, ArrayRef<int64_t> axes, bool keepdims) {
    return b.create<ReduceOp>(loc, fn, x, axes, keepdims);
  }
  /// x itself when it already has the shape.
  Value reshape(Value x, ArrayRef<int64_t> shape);
  Value broadcastTo(Value x, ArrayRef<int64_t> shape);
  Value transpose(Value x, ArrayRef<int64_t> perm) { return b.create<TransposeOp>(loc, x, perm); }
  Value matmul(Value x, Value y, bool tx, bool ty) { return b.create<MatmulOp>(loc, x, y, tx, ty); }
  Value slice(Value x, ArrayRef<int64_t> starts, ArrayRef<int64_t> limits, ArrayRef<int64_t> strides) {
    return b.create<SliceOp>(loc, x, starts, limits, strides);
  }
  Value pad(Value x, ArrayRef<int64_t> low, ArrayRef<int64_t> high, ArrayRef<int64_t> interior) {
    return b.create<PadOp>(loc, x, low, high, interior);
  }
  /// Sums a gradient of a broadcast result back to an operand's shape: reduce
  /// over the broadcast axes, then reshape away the leading/unit dims.
  Value unbroadcast(Value g, ArrayRef<int64_t> target);

private:
  DenseMap<Value, Value> grads;
  std::map<std::pair<double, void *>, Value> scalars; // (value, element type)
};

} // namespace mlir::tessera

#endif
