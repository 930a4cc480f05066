// KernelPatterns.cpp - the per-op lowering as rewrite patterns (Kernels.h).
//
// One KernelLoweringPattern per op family, each calling its generator; where
// more than one pattern lowers an op, the benefit orders them: a matmul with
// a coopmat config goes to the cooperative-matrix generator (benefit 2; it
// also reads block-quantised weights), every other matmul to the tiled/direct
// one (benefit 1); fused_matmul likewise; flash attention's coopmat configs
// that tile go to AttentionCoopMat.cpp, the rest to the SIMT kernels.
//
// KernelLowering applies them with a PatternApplicator to one op at a time:
// the lowering assigns buffers in body order as it goes, so the greedy
// driver's worklist order (and its folding) would not fit.
#include "compiler/lowering/kernels/Attention.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

/// A generator of the signature the families share, as a pattern.
template <typename OpTy, FailureOr<OpLowering> (*Generator)(LoweringContext &, OpTy)>
struct GeneratorPattern : KernelLoweringPattern<OpTy> {
  GeneratorPattern(LoweringContext &ctx, PatternBenefit benefit = 1) : KernelLoweringPattern<OpTy>(ctx, benefit) {
    this->setDebugName(OpTy::getOperationName());
  }
  FailureOr<OpLowering> lower(OpTy op) const override { return Generator(this->ctx, op); }
};

/// kind = coopmat (tensor cores), for operands the fragments can load; of
/// a matmul or a fused_matmul.
template <typename OpTy> struct MatmulCoopMatPattern : KernelLoweringPattern<OpTy> {
  MatmulCoopMatPattern(LoweringContext &ctx) : KernelLoweringPattern<OpTy>(ctx, /*benefit=*/2) {
    this->setDebugName((OpTy::getOperationName() + ".coopmat").str());
  }
  bool applies(OpTy op) const override { return kernelConfig<MatmulConfigAttr>(op).isCoopMat(); }
  FailureOr<OpLowering> lower(OpTy op) const override {
    return lowerMatmulCoopMat(this->ctx, matmulOperands(op), kernelConfig<MatmulConfigAttr>(op));
  }
};

/// Fused attention under a coopmat config that tiles (tensor cores); the
/// SIMT kernels (benefit 1) take the rest.
template <typename OpTy, FailureOr<OpLowering> (*Generator)(LoweringContext &, OpTy, MatmulConfigAttr)>
struct AttentionCoopMatPattern : KernelLoweringPattern<OpTy> {
  AttentionCoopMatPattern(LoweringContext &ctx) : KernelLoweringPattern<OpTy>(ctx, /*benefit=*/2) {
    this->setDebugName((OpTy::getOperationName() + ".coopmat").str());
  }
  bool applies(OpTy op) const override {
    auto c = dyn_cast_or_null<MatmulConfigAttr>(op->getAttr(TesseraDialect::getKernelConfigAttrName()));
    return c && attentionCoopMatApplies(this->ctx, op, c);
  }
  FailureOr<OpLowering> lower(OpTy op) const override {
    return Generator(this->ctx, op, kernelConfig<MatmulConfigAttr>(op));
  }
};

/// The mask's seed is in the training program's hparams.
struct DropoutPattern : KernelLoweringPattern<DropoutOp> {
  DropoutPattern(LoweringContext &ctx) : KernelLoweringPattern<DropoutOp>(ctx) {
    setDebugName(DropoutOp::getOperationName());
  }
  FailureOr<OpLowering> lower(DropoutOp op) const override {
    if (!ctx.hparams)
      return op.emitOpError("is lowered with the program's hparams"), failure();
    return lowerDropout(ctx, op, ctx.hparams);
  }
};

} // namespace

void populateKernelLoweringPatterns(RewritePatternSet &patterns, LoweringContext &ctx) {
  patterns.add<GeneratorPattern<UnaryOp, lowerUnary>, GeneratorPattern<BinaryOp, lowerBinary>,
               GeneratorPattern<SelectOp, lowerSelect>, GeneratorPattern<RopeOp, lowerRope>,
               GeneratorPattern<CastOp, lowerCast>,
               GeneratorPattern<FusedElementwiseOp, lowerFusedElementwise>,
               GeneratorPattern<TransposeOp, lowerTranspose>, GeneratorPattern<BroadcastOp, lowerBroadcast>,
               GeneratorPattern<SliceOp, lowerSlice>, GeneratorPattern<PadOp, lowerPad>,
               GeneratorPattern<ConcatOp, lowerConcat>, GeneratorPattern<GatherOp, lowerGather>,
               GeneratorPattern<ReduceOp, lowerReduce>, GeneratorPattern<SoftmaxOp, lowerSoftmax>,
               GeneratorPattern<ActQuantOp, lowerActQuant>,
               GeneratorPattern<BitLinearMatmulOp, lowerBitLinearMatmul>,
               GeneratorPattern<FlashAttentionOp, lowerFlashAttention>,
               GeneratorPattern<FlashAttentionGradOp, lowerFlashAttentionGrad>,
               GeneratorPattern<CrossEntropyOp, lowerCrossEntropy>,
               GeneratorPattern<CrossEntropyGradOp, lowerCrossEntropyGrad>,
               GeneratorPattern<AdamWUpdateOp, lowerAdamW>, DropoutPattern, MatmulCoopMatPattern<MatmulOp>,
               MatmulCoopMatPattern<FusedMatmulOp>,
               AttentionCoopMatPattern<FlashAttentionOp, lowerFlashAttentionCoopMat>,
               AttentionCoopMatPattern<FlashAttentionGradOp, lowerFlashAttentionGradCoopMat>>(ctx);
  patterns.add<GeneratorPattern<MatmulOp, lowerMatmul>, GeneratorPattern<FusedMatmulOp, lowerFusedMatmul>>(
      ctx, /*benefit=*/1);
}

static FrozenRewritePatternSet kernelPatterns(LoweringContext &ctx) {
  RewritePatternSet patterns(ctx.module.getContext());
  populateKernelLoweringPatterns(patterns, ctx);
  return FrozenRewritePatternSet(std::move(patterns));
}

KernelLowering::KernelLowering(LoweringContext &ctx)
    : ctx(ctx), patterns(kernelPatterns(ctx)), applicator(patterns) {
  applicator.applyDefaultCostModel();
}

LogicalResult KernelLowering::lower(Operation *op, PatternRewriter &rewriter, DispatchEmitter &emitter) {
  ctx.emitter = &emitter;
  ctx.opClaimed = false;
  LogicalResult result = applicator.matchAndRewrite(op, rewriter);
  ctx.emitter = nullptr;
  if (failed(result) && !ctx.opClaimed)
    op->emitOpError("cannot be lowered to a kernel");
  return result;
}

} // namespace tessera::lowering
