//===- IntegerBitLinear.cpp - tessera-integer-bitlinear -------------------===//
//
// A BitLinear's forward product arrives here as f32 arithmetic on integers in
// disguise: act_quant's values are int8 codes divided by a per-row scale, the
// weight's codes are -1, 0, 1 and its scale one f32 value. One pattern turns
//
//   mul(matmul(act_quant(x), codes {transpose_rhs = true}), scale)
//
// into tessera.bitlinear_matmul(x, codes, scale), whose kernels quantise x's
// rows to int8 once and sum the code products exactly in int32
// (kernels/BitLinear.cpp). The codes must be the TQ2_0 blocks
// tessera-assign-quant gave them, along K (the integer kernel reads four
// codes per word from them); codes kept as floats keep the f32 product.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "compiler/precision/Quantized.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAINTEGERBITLINEAR
#include "Tessera/Transforms/Passes.h.inc"

namespace {

namespace quant = ::tessera::quant;

/// The ternary part `part` of a frozen param, or null.
ParamOp ternaryParam(Value v, StringRef part) {
  auto p = v.getDefiningOp<ParamOp>();
  return p && p.getKind() == ParamKind::frozen && quant::ternaryPart(p) == part ? p : ParamOp();
}

/// Codes [N, K] whose blocks run along K: TQ2_0, not transposed.
bool packedAlongK(Value codes) {
  std::optional<quant::QuantizedWeight> q = quant::quantizedWeight(codes);
  return q && q->dtype == ::tessera::plan::DType::TQ2_0 && !q->transposed;
}

struct IntegerBitLinearProduct : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BinaryOp mul, PatternRewriter &rewriter) const override {
    if (mul.getFn() != BinaryFn::mul)
      return rewriter.notifyMatchFailure(mul, "not a mul");
    for (unsigned i = 0; i < 2; ++i) {
      auto mm = mul->getOperand(i).getDefiningOp<MatmulOp>();
      Value scale = mul->getOperand(1 - i);
      if (!mm || !mm->hasOneUse() || mm.getTransposeLhs() || !mm.getTransposeRhs())
        continue;
      auto aq = mm.getLhs().getDefiningOp<ActQuantOp>();
      ParamOp codes = ternaryParam(mm.getRhs(), "codes"), s = ternaryParam(scale, "scale");
      if (!aq || !codes || !s || !packedAlongK(codes) || cast<ShapedType>(s.getType()).getRank() != 0)
        continue;
      auto k = cast<ShapedType>(codes.getType()).getShape()[1];
      if (k % 4 != 0 || mul.getType() != mm.getType())
        continue;
      rewriter.setInsertionPoint(mul);
      auto op = rewriter.create<BitLinearMatmulOp>(mul.getLoc(), mul.getType(), aq.getInput(), codes, s,
                                                   aq.getEpsAttr());
      // The product's bookkeeping (tessera.module, tessera.layer), then the mul's.
      for (Operation *from : {mm.getOperation(), mul.getOperation()})
        for (NamedAttribute a : from->getDiscardableAttrs())
          if (!op->hasAttr(a.getName()))
            op->setAttr(a.getName(), a.getValue());
      rewriter.replaceOp(mul, op.getResult());
      rewriter.eraseOp(mm);
      if (aq->use_empty())
        rewriter.eraseOp(aq);
      return success();
    }
    return rewriter.notifyMatchFailure(mul, "not a BitLinear product of TQ2_0 codes");
  }
};

struct TesseraIntegerBitLinearPass : impl::TesseraIntegerBitLinearBase<TesseraIntegerBitLinearPass> {
  void runOnOperation() override {
    SmallVector<Operation *> muls;
    getOperation().walk([&](BinaryOp b) {
      if (b.getFn() == BinaryFn::mul)
        muls.push_back(b);
    });
    RewritePatternSet patterns(&getContext());
    patterns.add<IntegerBitLinearProduct>(&getContext());
    // The muls alone (ExistingOps): every other op of the program stays as built.
    GreedyRewriteConfig config;
    config.strictMode = GreedyRewriteStrictness::ExistingOps;
    if (failed(applyOpPatternsAndFold(muls, std::move(patterns), config)))
      return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::tessera
