//===- FuseAttention.cpp - tessera-fuse-attention -------------------------===//
//
// Keeps attention fused through autodiff: each tessera.attention becomes a
// tessera.flash_attention (same operands and attributes, plus the row
// log-sum-exp), which tessera-decompose-fused leaves alone and whose gradient
// rule emits one flash_attention_grad. The training step then stores no
// [B, H, T, S] probabilities and runs the attention as one kernel forward and
// two backward (docs/memory.md, "Fused attention").
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "compiler/raise/Raise.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAFUSEATTENTION
#include "Tessera/Transforms/Passes.h.inc"

namespace {

struct AttentionToFlash : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op, PatternRewriter &rewriter) const override {
    auto flash = rewriter.create<FlashAttentionOp>(op.getLoc(), op.getQuery(), op.getKey(), op.getValue(),
                                                   op.getMask(), op.getScaleAttr(), op.getKvGroupsAttr());
    // The discardable attributes (tessera.layer) carry over.
    for (NamedAttribute a : op->getDiscardableAttrs())
      flash->setAttr(a.getName(), a.getValue());
    rewriter.replaceOp(op, flash.getResult());
    return success();
  }
};

struct TesseraFuseAttentionPass : impl::TesseraFuseAttentionBase<TesseraFuseAttentionPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    raise::populateFuseAttentionPatterns(patterns);
    SmallVector<Operation *> ops;
    getOperation().walk([&](AttentionOp op) { ops.push_back(op); });
    GreedyRewriteConfig config;
    config.strictMode = GreedyRewriteStrictness::ExistingOps;
    if (failed(applyOpPatternsAndFold(ops, std::move(patterns), config)))
      return signalPassFailure();
  }
};

} // namespace

void raise::populateFuseAttentionPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionToFlash>(patterns.getContext());
}

} // namespace mlir::tessera
