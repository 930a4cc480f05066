//===- DecomposeFused.cpp - tessera-decompose-fused -----------------------===//
//
// Expands each raised op into the generic core ops (the op sequences the
// importer produces for them), so that autodiff and lowering, which know the
// core only, see an ordinary graph:
//
//   rms_norm(x, w)   x * rsqrt(mean(x*x, -1, keepdims) + eps) * (w [+ offset])
//   rope(x, c, s)    x * c + concat(-x[..., D/2:], x[..., :D/2]) * s
//                    (unless keep-rope: training keeps it one kernel)
//   attention        k, v repeated over kv_groups (reshape, broadcast, reshape);
//                    softmax(matmul(q, k^T) * scale [+ mask]) v
//   glu(g, u)        act(g) * u
//   embedding(t, i)  gather(t, i) [* scale]
//   ternary_weight   of a frozen param w: its codes times its scale
//                    (compiler/precision/Quantized.h: the runtime derives
//                    both from w at load), a linear product's as
//                    matmul(x, codes) * scale so that the codes stay the
//                    weight (TQ2_0 blocks); of anything else the generic
//                    clamp(round(w * s), -1, 1) / s, s = 1 / max(mean |w|, eps)
//
// One OpRewritePattern per raised op (populateDecomposeFusedPatterns), applied
// by the greedy driver to the raised ops only. The new ops take the fused
// op's location and `tessera.layer`.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "compiler/precision/Quantized.h"
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

/// The frozen param a ternary weight derives from: a whole initializer.
ParamOp ternarySource(TernaryWeightOp op) {
  auto p = op.getWeight().getDefiningOp<ParamOp>();
  return p && p.getKind() == ParamKind::frozen && !p.getRows() ? p : ParamOp();
}

/// The derived param `part` ("codes" or "scale") of the ternary weight's source.
Value ternaryPart(TernaryWeightOp op, StringRef part, Emitter &e) {
  ParamOp p = ternarySource(op);
  auto w = cast<RankedTensorType>(p.getType());
  Type t = part == "codes" ? Type(w) : Type(RankedTensorType::get({}, w.getElementType()));
  Value v = e.make<ParamOp>(t, ParamKind::frozen, p.getName());
  Operation *def = v.getDefiningOp();
  def->setAttr(::tessera::quant::kTernaryAttr, e.b.getStringAttr(part));
  def->setAttr(::tessera::quant::kTernaryEpsAttr, op.getEpsAttr());
  return v;
}

Value decompose(TernaryWeightOp op, Emitter &e) {
  Value w = op.getWeight();
  if (ternarySource(op))
    return e.make<BinaryOp>(BinaryFn::mul, ternaryPart(op, "codes", e), ternaryPart(op, "scale", e));
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

/// A linear product with a ternary weight: (x codes^T) * scale, the scale
/// (one f32 value) applied to the product, which equals transformers'
/// x (codes / s)^T to f32 rounding (every weight of the tensor is +-1/s or 0).
struct DecomposeTernaryProduct : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MatmulOp mm, PatternRewriter &rewriter) const override {
    auto t = mm.getRhs().getDefiningOp<TernaryWeightOp>();
    if (!t || !ternarySource(t))
      return failure();
    rewriter.setInsertionPoint(mm);
    Emitter e{rewriter, t->getLoc(), mm->getAttr(attrs::layer)};
    Value codes = ternaryPart(t, "codes", e);
    auto product = rewriter.create<MatmulOp>(mm.getLoc(), mm.getLhs(), codes, mm.getTransposeLhs(),
                                             mm.getTransposeRhs());
    product->setAttrs(mm->getAttrs()); // tessera.module, tessera.layer
    e.loc = mm.getLoc();
    Value y = e.make<BinaryOp>(BinaryFn::mul, product.getResult(), ternaryPart(t, "scale", e));
    rewriter.replaceOp(mm, y);
    return success();
  }
};

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
  using TesseraDecomposeFusedBase::TesseraDecomposeFusedBase;

  void runOnOperation() override {
    SmallVector<Operation *> fused;
    getOperation().walk([&](Operation *op) {
      if (isa<RMSNormOp, AttentionOp, GluOp, EmbeddingOp, TernaryWeightOp>(op) || (isa<RopeOp>(op) && !keepRope))
        fused.push_back(op);
    });
    // First the linear products of ternary weights (their codes stay the
    // weight), then the ternary weights left (other readers) with the rest.
    SmallVector<MatmulOp> products;
    getOperation().walk([&](MatmulOp mm) {
      if (mm.getRhs().getDefiningOp<TernaryWeightOp>())
        products.push_back(mm);
    });
    {
      PatternRewriter rewriter(&getContext());
      DecomposeTernaryProduct pattern(&getContext());
      for (MatmulOp mm : products)
        (void)pattern.matchAndRewrite(mm, rewriter);
      llvm::erase_if(fused, [](Operation *op) {
        if (!isa<TernaryWeightOp>(op) || !op->use_empty())
          return false;
        Operation *source = op->getOperand(0).getDefiningOp();
        op->erase();
        if (isa_and_nonnull<ParamOp>(source) && source->use_empty()) // its f32 values are never loaded
          source->erase();
        return true;
      });
    }
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
  // (The pass runs it on the products first, so that they keep the codes as their weight.)
  patterns.add<DecomposeTernaryProduct>(patterns.getContext(), /*benefit=*/2);
}

} // namespace mlir::tessera
