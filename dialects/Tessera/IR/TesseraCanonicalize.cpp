//===- TesseraCanonicalize.cpp - folders and canonicalization patterns ----===//
//
// The algebra exports spell out and the core has a better op for, applied by
// the greedy driver (the importer's cleanup runs the canonicalizer, so the
// importer itself emits plain ops):
//
//   folders        reshape(x) -> x and reshape(reshape(x)) -> reshape(x);
//                  identity transpose, slice, broadcast, one-input concat and
//                  same-type cast -> their input
//   unary          reciprocal(sqrt(x)) -> rsqrt(x)
//   binary         pow(x, c) for a scalar c in {1, 2, 0.5, -0.5, -1} -> x,
//                  x * x, sqrt, rsqrt, reciprocal; 1 / y -> reciprocal(y);
//                  x * sigmoid(x) -> silu(x)
//   matmul         a transpose of the last two dims of an operand -> the
//                  transpose_lhs / transpose_rhs flag (a weight stays a param)
//
// Each rewrite keeps the result type, so it applies only where the scalar
// does not broadcast the other operand to a larger shape.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

#include <optional>

using namespace mlir;
using namespace mlir::tessera;

namespace {

/// The value of a one-element float constant.
std::optional<double> scalarValue(Value v) {
  DenseElementsAttr attr;
  if (!matchPattern(v, m_Constant(&attr)) || attr.getNumElements() != 1 ||
      !isa<FloatType>(attr.getElementType()))
    return std::nullopt;
  return (*attr.getValues<APFloat>().begin()).convertToDouble();
}

/// The input of `v` when `v` is `unary fn`.
Value inputOf(Value v, UnaryFn fn) {
  auto u = v.getDefiningOp<UnaryOp>();
  return u && u.getFn() == fn ? u.getInput() : Value();
}

/// reciprocal(sqrt(x)) -> rsqrt(x)
struct ReciprocalOfSqrt : OpRewritePattern<UnaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(UnaryOp op, PatternRewriter &rewriter) const override {
    Value x = op.getFn() == UnaryFn::reciprocal ? inputOf(op.getInput(), UnaryFn::sqrt) : Value();
    if (!x || x.getType() != op.getType())
      return failure();
    rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::rsqrt, x);
    return success();
  }
};

/// pow(x, c) for c in {1, 2, 0.5, -0.5, -1}.
struct PowByConstant : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp op, PatternRewriter &rewriter) const override {
    std::optional<double> c = op.getFn() == BinaryFn::pow ? scalarValue(op.getRhs()) : std::nullopt;
    Value x = op.getLhs();
    if (!c || x.getType() != op.getType())
      return failure();
    if (*c == 1)
      rewriter.replaceOp(op, x);
    else if (*c == 2)
      rewriter.replaceOpWithNewOp<BinaryOp>(op, BinaryFn::mul, x, x);
    else if (*c == 0.5)
      rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::sqrt, x);
    else if (*c == -0.5)
      rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::rsqrt, x);
    else if (*c == -1)
      rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::reciprocal, x);
    else
      return failure();
    return success();
  }
};

/// 1 / y -> reciprocal(y)
struct OneOver : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp op, PatternRewriter &rewriter) const override {
    std::optional<double> c = op.getFn() == BinaryFn::div ? scalarValue(op.getLhs()) : std::nullopt;
    if (!c || *c != 1 || op.getRhs().getType() != op.getType())
      return failure();
    rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::reciprocal, op.getRhs());
    return success();
  }
};

/// x * sigmoid(x) (either order) -> silu(x)
struct TimesSigmoid : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp op, PatternRewriter &rewriter) const override {
    if (op.getFn() != BinaryFn::mul)
      return failure();
    for (auto [x, s] : {std::pair(op.getLhs(), op.getRhs()), std::pair(op.getRhs(), op.getLhs())}) {
      if (inputOf(s, UnaryFn::sigmoid) == x && x.getType() == op.getType()) {
        rewriter.replaceOpWithNewOp<UnaryOp>(op, UnaryFn::silu, x);
        return success();
      }
    }
    return failure();
  }
};

/// The input of a transpose that swaps the last two dims only.
Value swappedLastTwo(Value v) {
  auto t = v.getDefiningOp<TransposeOp>();
  if (!t)
    return {};
  ArrayRef<int64_t> perm = t.getPerm();
  int64_t r = perm.size();
  for (int64_t d = 0; d < r - 2; ++d)
    if (perm[d] != d)
      return {};
  return r >= 2 && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 ? t.getInput() : Value();
}

/// matmul(transpose(a), transpose(w)) -> matmul(a, w) with the flags toggled.
struct MatmulOfTranspose : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MatmulOp op, PatternRewriter &rewriter) const override {
    Value lhs = swappedLastTwo(op.getLhs()), rhs = swappedLastTwo(op.getRhs());
    if (!lhs && !rhs)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      if (rhs) {
        op.getRhsMutable().assign(rhs);
        op.setTransposeRhs(!op.getTransposeRhs());
      }
      if (lhs) {
        op.getLhsMutable().assign(lhs);
        op.setTransposeLhs(!op.getTransposeLhs());
      }
    });
    return success();
  }
};

} // namespace

void UnaryOp::getCanonicalizationPatterns(RewritePatternSet &patterns, MLIRContext *ctx) {
  patterns.add<ReciprocalOfSqrt>(ctx);
}

void BinaryOp::getCanonicalizationPatterns(RewritePatternSet &patterns, MLIRContext *ctx) {
  patterns.add<PowByConstant, OneOver, TimesSigmoid>(ctx);
}

void MatmulOp::getCanonicalizationPatterns(RewritePatternSet &patterns, MLIRContext *ctx) {
  patterns.add<MatmulOfTranspose>(ctx);
}

OpFoldResult CastOp::fold(FoldAdaptor) {
  return getInput().getType() == getType() ? getInput() : OpFoldResult();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) { // reshape(reshape(x)) -> reshape(x)
    getInputMutable().assign(inner.getInput());
    return getResult();
  }
  return {};
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  for (auto [i, p] : llvm::enumerate(getPerm()))
    if (p != (int64_t)i)
      return {};
  return getInput().getType() == getType() ? getInput() : OpFoldResult();
}

OpFoldResult SliceOp::fold(FoldAdaptor) {
  auto in = cast<ShapedType>(getInput().getType());
  for (int64_t i = 0; i < in.getRank(); ++i)
    if (getStarts()[i] != 0 || getLimits()[i] != in.getDimSize(i) || getStrides()[i] != 1)
      return {};
  return getInput().getType() == getType() ? getInput() : OpFoldResult();
}

OpFoldResult BroadcastOp::fold(FoldAdaptor) {
  return getInput().getType() == getType() ? getInput() : OpFoldResult();
}

OpFoldResult ConcatOp::fold(FoldAdaptor) {
  return getInputs().size() == 1 && getInputs()[0].getType() == getType() ? getInputs()[0]
                                                                           : OpFoldResult();
}
