//===- Match.h - small matchers over the generic tessera ops ----*- C++ -*-===//
//
// Shared by the raising patterns and the layer-structure walk: scalar
// constants, elementwise ops with commutative operands, and the view ops
// (reshape, transpose, broadcast) that exports wrap around computations.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Tessera/IR/TesseraOps.h"

#include <cmath>
#include <optional>

namespace mlir::tessera::raise {

inline ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }

/// The op that made `v`, looking through view ops (reshape, transpose,
/// broadcast); null for a block argument.
inline Operation *producerThroughViews(Value v) {
  while (Operation *d = v.getDefiningOp()) {
    if (!isa<ReshapeOp, TransposeOp, BroadcastOp>(d))
      return d;
    v = d->getOperand(0);
  }
  return nullptr;
}

/// The value of a constant whose elements are all equal (a scalar, a splat,
/// or a one-element tensor), also through reshape/broadcast.
inline std::optional<double> scalarConstant(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (isa<ReshapeOp, BroadcastOp>(def)) {
      v = def->getOperand(0);
      continue;
    }
    auto c = dyn_cast<ConstantOp>(def);
    if (!c)
      return std::nullopt;
    auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
    if (!dense || !dense.getElementType().isF32())
      return std::nullopt;
    if (dense.isSplat())
      return (double)dense.getSplatValue<float>();
    if (dense.getNumElements() == 1)
      return (double)*dense.getValues<float>().begin();
    return std::nullopt;
  }
  return std::nullopt;
}

inline bool isScalarConstant(Value v, double expected, double relTol = 1e-5) {
  std::optional<double> c = scalarConstant(v);
  return c && std::abs(*c - expected) <= relTol * std::max(1.0, std::abs(expected));
}

/// `v` defined by tessera.binary `fn`.
inline BinaryOp binaryOf(Value v, BinaryFn fn) {
  auto b = v.getDefiningOp<BinaryOp>();
  return b && b.getFn() == fn ? b : BinaryOp();
}

inline UnaryOp unaryOf(Value v, UnaryFn fn) {
  auto u = v.getDefiningOp<UnaryOp>();
  return u && u.getFn() == fn ? u : UnaryOp();
}

/// Calls `f(a, b)` with the operands of a binary op in both orders; true when
/// one order matches. `f` must not have side effects when it fails.
template <typename F>
bool eitherOrder(BinaryOp op, F &&f) {
  return op && (f(op.getLhs(), op.getRhs()) || f(op.getRhs(), op.getLhs()));
}

/// A linear layer: matmul whose rhs is a rank-2 frozen param (or its
/// tessera.ternary_weight: BitNet's BitLinear).
inline ParamOp linearWeight(MatmulOp mm) {
  if (!mm)
    return ParamOp();
  Value rhs = mm.getRhs();
  if (auto t = rhs.getDefiningOp<TernaryWeightOp>()) // a BitLinear's weight
    rhs = t.getWeight();
  auto p = rhs.getDefiningOp<ParamOp>();
  if (!p || p.getKind() != ParamKind::frozen || shapeOf(p.getResult()).size() != 2)
    return ParamOp();
  return p;
}

} // namespace mlir::tessera::raise
