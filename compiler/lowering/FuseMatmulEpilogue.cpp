//===- FuseMatmulEpilogue.cpp - tessera-fuse-matmul-epilogue --------------===//
//
// A product feeding a scale or an add is three kernels where one suffices:
// the matmul writes M x N, the elementwise op reads it back and writes it
// again. For the LoRA forward (x A^T) s, (u B^T) + base and the backward's
// scaled adapter products and gradient sums these elementwise passes cost
// as much as the products themselves. Two patterns fold them into the
// product's epilogue, tessera.fused_matmul (alpha * (lhs x rhs) + addend):
//
//   mul(P, c)           P a product without addend, c a constant splat:
//                       alpha *= c
//   add(P, D), add(D, P) P a product without addend, D of P's shape:
//                       addend = D
//
// where P is a matmul or fused_matmul whose result has no other use. When
// both operands of an add are products, the one with the shorter K takes
// the other as its addend (the cheaper, SIMT kernel does the extra read;
// the LoRA up product with K = rank, not the base product). The fused op
// takes the elementwise op's place and result type: the kernel rounds once,
// at the final store, where the unfused plan rounded the product too.
//
// Patterns run in one walk in block order, so chains fold (mul then add:
// the mul's fused_matmul is the add's product). Mul after add is left alone:
// alpha (AB + D) would need a second scale.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAFUSEMATMULEPILOGUE
#include "Tessera/Transforms/Passes.h.inc"

namespace {

/// A matmul or fused_matmul seen as its parts.
struct Product {
  Operation *op = nullptr;
  Value lhs, rhs, addend;
  bool tl = false, tr = false;
  double alpha = 1.0;
  int64_t k = 0; // contraction length
};

std::optional<Product> asProduct(Value v) {
  Product p;
  if (auto m = v.getDefiningOp<MatmulOp>()) {
    p = {m, m.getLhs(), m.getRhs(), Value(), m.getTransposeLhs(), m.getTransposeRhs(), 1.0};
  } else if (auto f = v.getDefiningOp<FusedMatmulOp>()) {
    p = {f, f.getLhs(), f.getRhs(), f.getAddend(), f.getTransposeLhs(), f.getTransposeRhs(),
         f.getAlpha().convertToDouble()};
  } else {
    return std::nullopt;
  }
  // The epilogue replaces the only reader of the product.
  if (!v.hasOneUse())
    return std::nullopt;
  ArrayRef<int64_t> l = cast<ShapedType>(p.lhs.getType()).getShape();
  p.k = p.tl ? l[l.size() - 2] : l.back();
  return p;
}

/// The value of a constant splat, if v is one.
std::optional<double> splatValue(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  auto dense = dyn_cast<DenseFPElementsAttr>(c.getValue());
  if (!dense || !dense.isSplat())
    return std::nullopt;
  return dense.getSplatValue<APFloat>().convertToDouble();
}

ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }

/// Replaces `root` (a binary op reading product p) by the fused product.
void replaceWithFused(PatternRewriter &rewriter, BinaryOp root, const Product &p, Value addend, double alpha) {
  auto fused = rewriter.create<FusedMatmulOp>(root.getLoc(), root.getResult().getType(), p.lhs, p.rhs, addend,
                                              rewriter.getBoolAttr(p.tl), rewriter.getBoolAttr(p.tr),
                                              rewriter.getF64FloatAttr(alpha));
  // The root's bookkeeping (tessera.layer, ...), then the product's.
  for (Operation *from : {root.getOperation(), p.op})
    for (NamedAttribute a : from->getDiscardableAttrs())
      if (!fused->hasAttr(a.getName()))
        fused->setAttr(a.getName(), a.getValue());
  rewriter.replaceOp(root, fused.getResult());
  rewriter.eraseOp(p.op);
}

/// mul(P, c) -> fused_matmul(P) {alpha = alpha * c}.
struct FoldScale : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp op, PatternRewriter &rewriter) const override {
    if (op.getFn() != BinaryFn::mul)
      return failure();
    for (unsigned i = 0; i < 2; ++i) {
      Value pv = op->getOperand(i), cv = op->getOperand(1 - i);
      std::optional<Product> p = asProduct(pv);
      std::optional<double> c = splatValue(cv);
      if (!p || !c || p->addend || shapeOf(pv) != shapeOf(op.getResult()))
        continue;
      rewriter.setInsertionPoint(op);
      replaceWithFused(rewriter, op, *p, Value(), p->alpha * *c);
      return success();
    }
    return failure();
  }
};

/// add(P, D) -> fused_matmul(P) plus D.
struct FoldAdd : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp op, PatternRewriter &rewriter) const override {
    if (op.getFn() != BinaryFn::add)
      return failure();
    ArrayRef<int64_t> shape = shapeOf(op.getResult());
    if (shapeOf(op.getLhs()) != shape || shapeOf(op.getRhs()) != shape)
      return failure(); // no broadcast of either side
    std::optional<Product> a = asProduct(op.getLhs()), b = asProduct(op.getRhs());
    if (a && a->addend)
      a.reset();
    if (b && b->addend)
      b.reset();
    if (!a && !b)
      return failure();
    // Both products: the shorter contraction takes the other as its addend.
    bool useLhs = a && (!b || a->k <= b->k);
    const Product &p = useLhs ? *a : *b;
    Value addend = useLhs ? op.getRhs() : op.getLhs();
    rewriter.setInsertionPoint(op);
    replaceWithFused(rewriter, op, p, addend, p.alpha);
    return success();
  }
};

struct TesseraFuseMatmulEpiloguePass : impl::TesseraFuseMatmulEpilogueBase<TesseraFuseMatmulEpiloguePass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    FoldScale scale(ctx);
    FoldAdd add(ctx);
    PatternRewriter rewriter(ctx);
    // One walk in block order: a producer is fused before its users are
    // visited, so chains fold (not the greedy driver: it would also fold and
    // reorder every other op of the program).
    getOperation().walk([&](func::FuncOp f) {
      SmallVector<BinaryOp> binaries;
      for (Block &block : f.getBody())
        for (auto b : block.getOps<BinaryOp>())
          binaries.push_back(b);
      for (BinaryOp b : binaries)
        if (failed(scale.matchAndRewrite(b, rewriter)))
          (void)add.matchAndRewrite(b, rewriter);
    });
  }
};

} // namespace
} // namespace mlir::tessera
