//===- AppendLoss.cpp - tessera-append-loss -------------------------------===//
//
// Builds, next to @forward (kept), the training objective
//
//   func.func @loss(%input_ids: tensor<BxTxi32>, %labels: tensor<BxTxi32>) -> tensor<f32>
//
// whose body is a copy of @forward's followed by
//   tessera.cross_entropy %logits, %labels {ignore_index = -100, shift = true}
// (Hugging Face causal-LM loss: position t predicts labels[t + 1]; labels of
// -100 do not count; the mean is over counted tokens).
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAAPPENDLOSS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

struct TesseraAppendLossPass : impl::TesseraAppendLossBase<TesseraAppendLossPass> {
  using TesseraAppendLossBase::TesseraAppendLossBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      emitError(module.getLoc(), "tessera-append-loss: the module has no @forward function");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss")) {
      emitError(module.getLoc(), "tessera-append-loss: the module already has a @loss symbol");
      return signalPassFailure();
    }
    FunctionType ft = forward.getFunctionType();
    auto ids = ft.getNumInputs() == 1 ? dyn_cast<RankedTensorType>(ft.getInput(0)) : nullptr;
    auto logits = ft.getNumResults() == 1 ? dyn_cast<RankedTensorType>(ft.getResult(0)) : nullptr;
    if (!ids || !logits || !ids.hasStaticShape() || !ids.getElementType().isInteger(32) ||
        !logits.hasStaticShape() || !logits.getElementType().isF32() ||
        logits.getRank() != ids.getRank() + 1 || logits.getShape().drop_back() != ids.getShape()) {
      emitError(forward.getLoc(),
                "tessera-append-loss: @forward must map input_ids tensor<...xi32> to "
                "logits tensor<...xVxf32> of the same leading shape, got ")
          << ft;
      return signalPassFailure();
    }
    if (forward.isExternal() || !forward.getBody().hasOneBlock()) {
      emitError(forward.getLoc(), "tessera-append-loss: @forward must have a single-block body");
      return signalPassFailure();
    }

    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(forward);
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    auto loss =
        b.create<func::FuncOp>(forward.getLoc(), "loss", b.getFunctionType({ids, ids}, {scalar}));
    if (auto vis = forward.getSymVisibilityAttr())
      loss.setSymVisibilityAttr(vis);
    mlir::tessera::setProgramRole(loss, mlir::tessera::ProgramRole::loss);
    Block *entry = loss.addEntryBlock();
    Block &src = forward.getBody().front();
    IRMapping map;
    map.map(src.getArgument(0), entry->getArgument(0));
    b.setInsertionPointToEnd(entry);
    for (Operation &op : src.without_terminator())
      b.clone(op, map);
    auto ret = cast<func::ReturnOp>(src.getTerminator());
    Value l = map.lookup(ret.getOperand(0));
    Value ce = b.create<CrossEntropyOp>(ret.getLoc(), l, entry->getArgument(1),
                                        b.getI64IntegerAttr(-100), b.getBoolAttr(true));
    b.create<func::ReturnOp>(ret.getLoc(), ce);
  }
};

} // namespace
} // namespace mlir::tessera
