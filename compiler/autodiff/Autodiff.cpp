//===- Autodiff.cpp - tessera-autodiff ------------------------------------===//
//
// Reverse-mode differentiation of @loss for the LoRA parameters.
//
// @loss_grad is a copy of @loss (same arguments) whose body is followed by the
// backward sweep; it returns the loss, then one gradient per LoRA parameter
// name (order of first appearance), each result marked
// {tessera.grad_of = "<param name>"}.
//
// Activity analysis keeps the backward sweep minimal: a value is *active*
// when it depends on a LoRA parameter (varied) and the loss depends on it
// (useful). Only active values receive gradients, and a rule only computes
// the partials of its active operands, so frozen-only branches (and frozen
// weights) get no gradient work at all.
//
// The rule of each op is its GradientOpInterface (dialects/Tessera/IR/
// TesseraGradients.cpp), so a new op brings its gradient with it; this pass
// is the sweep: activity analysis, then every active op's rule in reverse
// order. Fan-out gradients accumulate with tessera.binary add.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/GradientBuilder.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/MapVector.h"


namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAAUTODIFF
#include "Tessera/Transforms/Passes.h.inc"

namespace {

struct TesseraAutodiffPass : impl::TesseraAutodiffBase<TesseraAutodiffPass> {
  using TesseraAutodiffBase::TesseraAutodiffBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss) {
      emitError(module.getLoc(), "tessera-autodiff: the module has no @loss function "
                                 "(run tessera-append-loss first)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad")) {
      emitError(module.getLoc(), "tessera-autodiff: the module already has a @loss_grad symbol");
      return signalPassFailure();
    }
    auto scalar = RankedTensorType::get({}, Float32Type::get(module.getContext()));
    if (loss.isExternal() || !loss.getBody().hasOneBlock() ||
        loss.getFunctionType().getNumResults() != 1 ||
        loss.getFunctionType().getResult(0) != scalar) {
      emitError(loss.getLoc(),
                "tessera-autodiff: @loss must have a single-block body returning one "
                "tensor<f32>");
      return signalPassFailure();
    }

    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(loss);
    auto grad = cast<func::FuncOp>(b.clone(*loss));
    grad.setSymName("loss_grad");
    setProgramRole(grad, ProgramRole::loss_grad);
    Block &body = grad.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value lossValue = ret.getOperand(0);

    // Activity analysis.
    SmallVector<Operation *> ops;
    DenseSet<Value> varied, useful;
    llvm::MapVector<StringAttr, SmallVector<ParamOp>> loraParams;
    for (Operation &op : body.without_terminator()) {
      ops.push_back(&op);
      if (auto p = dyn_cast<ParamOp>(op)) {
        if (p.getKind() != ParamKind::frozen) {
          varied.insert(p.getResult());
          loraParams[p.getNameAttr()].push_back(p);
        }
        continue;
      }
      if (llvm::any_of(op.getOperands(), [&](Value v) { return varied.contains(v); }))
        for (Value r : op.getResults())
          if (isFloatTensor(r))
            varied.insert(r);
    }
    useful.insert(lossValue);
    for (Operation *op : llvm::reverse(ops))
      if (llvm::any_of(op->getResults(), [&](Value r) { return useful.contains(r); }))
        for (Value v : op->getOperands())
          useful.insert(v);
    // Backward sweep, inserted before the return.
    b.setInsertionPoint(ret);
    GradientBuilder gb(b, ret.getLoc());
    for (Value v : varied)
      if (useful.contains(v))
        gb.active.insert(v);
    if (gb.isActive(lossValue))
      gb.setGradient(lossValue, gb.cst(1.0, lossValue));
    for (Operation *op : llvm::reverse(ops)) {
      if (op->getNumResults() == 0 || isa<ParamOp, ConstantOp>(op))
        continue; // leaves
      // The gradient of the first result (flash_attention's others are no
      // differentiable outputs; its rule checks).
      Value g = gb.gradientOf(op->getResult(0));
      if (!g)
        continue;
      gb.loc = op->getLoc();
      auto rule = dyn_cast<GradientOpInterface>(op);
      if (!rule) {
        op->emitOpError("tessera-autodiff: no gradient rule for '")
            << op->getName() << "', which lies between a LoRA parameter and the loss";
        return signalPassFailure();
      }
      if (failed(rule.backprop(gb, g)))
        return signalPassFailure();
    }

    // Results: the loss, then one gradient per LoRA parameter name.
    gb.loc = ret.getLoc();
    SmallVector<Value> results{lossValue};
    SmallVector<StringAttr> names;
    for (auto &[name, params] : loraParams) {
      Value total;
      for (ParamOp p : params) {
        Value g = gb.gradientOf(p.getResult());
        if (g)
          total = total ? gb.add(total, g) : g;
      }
      if (!total)
        total = gb.zeros(cast<RankedTensorType>(params.front().getType()));
      results.push_back(total);
      names.push_back(name);
    }
    b.create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();

    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    grad.setType(b.getFunctionType(grad.getArgumentTypes(), resultTypes));
    SmallVector<DictionaryAttr> resAttrs{b.getDictionaryAttr({})};
    for (StringAttr name : names)
      resAttrs.push_back(b.getDictionaryAttr({b.getNamedAttr(attrs::gradOf, name)}));
    grad.setAllResultAttrs(resAttrs);
  }
};

} // namespace
} // namespace mlir::tessera
