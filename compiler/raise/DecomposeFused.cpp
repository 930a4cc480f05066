//===- DecomposeFused.cpp - tessera-decompose-fused -----------------------===//
//
// Expands each raised op into the generic core ops (the op sequences the
// importer produces for them), so that autodiff and lowering, which know the
// core only, see an ordinary graph:
//
//   rms_norm(x, w)   x * rsqrt(mean(x*x, -1, keepdims) + eps) * (w [+ offset])
//   rope(x, c, s)    x * c + concat(-x[..., D/2:], x[..., :D/2]) * s
//   attention        k, v repeated over kv_groups (reshape, broadcast, reshape);
//                    softmax(matmul(q, k^T) * scale [+ mask]) v
//   glu(g, u)        act(g) * u
//   embedding(t, i)  gather(t, i) [* scale]
//   ternary_weight   clamp(round(w * s), -1, 1) / s, s = 1 / max(mean |w|, eps)
//
// One OpRewritePattern per raised op (populateDecomposeFusedPatterns), applied
// by the greedy driver to the raised ops only. The new ops take the fused
// op's location and `tessera.layer`.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "compiler/raise/Raise.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERADECOMPOSEFUSED
#include "Tessera/Transforms/Passes.h.inc"

namespace {

/// Builds ops at one place with one location, tagging each with the layer.
/// Result types are the ops' own inference.
struct Emitter {
  OpBuilder &b;
  Location loc;
  Attribute layer;

  template <typename OpT, typename... Args>
  Value make(Args &&...args) {
    auto op = b.create<OpT>(loc, std::forward<Args>(args)...);
    if (layer)
      op->setAttr(attrs::layer, layer);
    return op->getResult(0);
  }

  /// A rank-0 constant of `like`'s element type.
  Value scalar(double v, Value like) {
    Type e = cast<ShapedType>(like.getType()).getElementType();
    auto t = RankedTensorType::get({}, e);
    return make<ConstantOp>(DenseElementsAttr::get(t, b.getFloatAttr(e, v)));
  }
};

RankedTensorType withShape(Value like, ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, cast<RankedTensorType>(like.getType()).getElementType());
}

Value decompose(RMSNormOp op, Emitter &e) {
  Value x = op.getInput();
  int64_t last = cast<RankedTensorType>(x.getType()).getRank() - 1;
  Value sq = e.make<BinaryOp>(BinaryFn::mul, x, x);
  Value mean = e.make<ReduceOp>(ReduceFn::mean, sq, ArrayRef<int64_t>{last}, true);
  Value plus = e.make<BinaryOp>(BinaryFn::add, mean, e.scalar(op.getEps().convertToDouble(), x));
  Value inv = e.make<UnaryOp>(UnaryFn::rsqrt, plus);
  Value normed = e.make<BinaryOp>(BinaryFn::mul, x, inv);
  Value w = op.getWeight();
  if (double offset = op.getWeightOffset().convertToDouble(); offset != 0)
    w = e.make<BinaryOp>(BinaryFn::add, w, e.scalar(offset, w));
  return e.make<BinaryOp>(BinaryFn::mul, normed, w);
}

Value decompose(RopeOp op, Emitter &e) {
  Value x = op.getInput();
  auto t = cast<RankedTensorType>(x.getType());
  int64_t rank = t.getRank(), d = t.getShape().back();
  SmallVector<int64_t> zeros(rank, 0), ones(rank, 1), full(t.getShape()), mid(rank, 0);
  SmallVector<int64_t> lowLimit(t.getShape());
  lowLimit.back() = d / 2;
  mid.back() = d / 2;
  Value low = e.make<SliceOp>(x, ArrayRef<int64_t>(zeros), ArrayRef<int64_t>(lowLimit),
                              ArrayRef<int64_t>(ones));
  Value high = e.make<SliceOp>(x, ArrayRef<int64_t>(mid), ArrayRef<int64_t>(full),
                               ArrayRef<int64_t>(ones));
  Value negHigh = e.make<UnaryOp>(UnaryFn::neg, high);
  Value rotated = e.make<ConcatOp>(ValueRange{negHigh, low}, rank - 1);
  Value a = e.make<BinaryOp>(BinaryFn::mul, x, op.getCos());
  Value c = e.make<BinaryOp>(BinaryFn::mul, rotated, op.getSin());
  return e.make<BinaryOp>(BinaryFn::add, a, c);
}

/// [B, K, S, D] -> [B, K * groups, S, D], each head repeated `groups` times in place.
Value repeatHeads(Value v, int64_t groups, Emitter &e) {
  if (groups == 1)
    return v;
  ArrayRef<int64_t> s = cast<RankedTensorType>(v.getType()).getShape();
  Value u = e.make<ReshapeOp>(withShape(v, {s[0], s[1], 1, s[2], s[3]}), v);
  Value bc = e.make<BroadcastOp>(withShape(v, {s[0], s[1], groups, s[2], s[3]}), u);
  return e.make<ReshapeOp>(withShape(v, {s[0], s[1] * groups, s[2], s[3]}), bc);
}

Value decompose(AttentionOp op, Emitter &e) {
  int64_t groups = op.getKvGroups();
  Value k = repeatHeads(op.getKey(), groups, e);
  Value v = repeatHeads(op.getValue(), groups, e);
  Value scores = e.make<MatmulOp>(op.getQuery(), k, false, true);
  scores = e.make<BinaryOp>(BinaryFn::mul, scores,
                            e.scalar(op.getScale().convertToDouble(), scores));
  if (Value mask = op.getMask())
    scores = e.make<BinaryOp>(BinaryFn::add, scores, mask);
  Value probs = e.make<SoftmaxOp>(scores);
  return e.make<MatmulOp>(probs, v, false, false);
}

Value decompose(GluOp op, Emitter &e) {
  if (op.getAct() == GluActivation::relu2) { // relu(g) * relu(g) * u
    Value r = e.make<UnaryOp>(UnaryFn::relu, op.getGate());
    return e.make<BinaryOp>(BinaryFn::mul, e.make<BinaryOp>(BinaryFn::mul, r, r), op.getUp());
  }
  UnaryFn fn = op.getAct() == GluActivation::silu ? UnaryFn::silu : UnaryFn::gelu_tanh;
  Value a = e.make<UnaryOp>(fn, op.getGate());
  return e.make<BinaryOp>(BinaryFn::mul, a, op.getUp());
}

Value decompose(TernaryWeightOp op, Emitter &e) {
  Value w = op.getWeight();
  Value mean = e.make<ReduceOp>(ReduceFn::mean, e.make<UnaryOp>(UnaryFn::abs, w),
                                ArrayRef<int64_t>{0, 1}, true);
  Value s = e.make<UnaryOp>(UnaryFn::reciprocal,
                            e.make<BinaryOp>(BinaryFn::max, mean, e.scalar(op.getEps().convertToDouble(), w)));
  Value r = e.make<UnaryOp>(UnaryFn::round, e.make<BinaryOp>(BinaryFn::mul, w, s));
  Value c = e.make<BinaryOp>(BinaryFn::min, e.make<BinaryOp>(BinaryFn::max, r, e.scalar(-1.0, w)),
                             e.scalar(1.0, w));
  return e.make<BinaryOp>(BinaryFn::div, c, s);
}

Value decompose(EmbeddingOp op, Emitter &e) {
  Value g = e.make<GatherOp>(op.getTable(), op.getIds(), (uint64_t)0);
  if (double scale = op.getScale().convertToDouble(); scale != 1.0)
    g = e.make<BinaryOp>(BinaryFn::mul, g, e.scalar(scale, g));
  return g;
}

template <typename OpT>
struct Decompose : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const override {
    Emitter e{rewriter, op->getLoc(), op->getAttr(attrs::layer)};
    rewriter.replaceOp(op, decompose(op, e));
    return success();
  }
};

struct TesseraDecomposeFusedPass : impl::TesseraDecomposeFusedBase<TesseraDecomposeFusedPass> {
  void runOnOperation() override {
    SmallVector<Operation *> fused;
    getOperation().walk([&](Operation *op) {
      if (isa<RMSNormOp, RopeOp, AttentionOp, GluOp, EmbeddingOp, TernaryWeightOp>(op))
        fused.push_back(op);
    });
    RewritePatternSet patterns(&getContext());
    raise::populateDecomposeFusedPatterns(patterns);
    // The raised ops alone (ExistingOps): what they expand into stays as built.
    GreedyRewriteConfig config;
    config.strictMode = GreedyRewriteStrictness::ExistingOps;
    if (failed(applyOpPatternsAndFold(fused, std::move(patterns), config)))
      return signalPassFailure();
  }
};

} // namespace

void raise::populateDecomposeFusedPatterns(RewritePatternSet &patterns) {
  patterns.add<Decompose<RMSNormOp>, Decompose<RopeOp>, Decompose<AttentionOp>, Decompose<GluOp>,
               Decompose<EmbeddingOp>, Decompose<TernaryWeightOp>>(patterns.getContext());
}

} // namespace mlir::tessera
