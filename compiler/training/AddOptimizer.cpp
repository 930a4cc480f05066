//===- AddOptimizer.cpp - tessera-add-optimizer ---------------------------===//
//
// Builds, next to @loss_grad (kept), the step the runtime replays:
//
//   func.func @train_step(%input_ids, %labels, %hparams: tensor<10xf32>) -> tensor<f32>
//
// = the body of @loss_grad, then one
//   tessera.adamw_update "<param>", %grad, %hparams
// per gradient result (named by its tessera.grad_of attribute), returning the
// loss. hparams = [lr, beta1, beta2, eps, weight_decay, 1-beta1^t, 1-beta2^t, t,
// max_grad_norm, grad_scale(, dropout_seed)], written by the runtime every step (the schedule
// changes lr without a recompile). The function's tessera.role is
// accumulate: the lowering splits the step into `train_step` (forward, backward, gradient accumulation) and
// `optimizer_step` (global-norm clipping, AdamW), so that one optimizer step
// can span several micro-batches (docs/training.md).
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include "runtime/plan/Abi.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAADDOPTIMIZER
#include "Tessera/Transforms/Passes.h.inc"

namespace {

// The hparams the runtime writes (runtime/plan/Abi.h). A graph with LoRA
// dropout gets one more value, the mask seed of the micro-batch
// (tessera.dropout reads it).
constexpr int64_t kTrainHParams = ::tessera::plan::kNumHParams,
                  kTrainHParamsDropout = ::tessera::plan::kNumHParamsDropout;

struct TesseraAddOptimizerPass : impl::TesseraAddOptimizerBase<TesseraAddOptimizerPass> {
  using TesseraAddOptimizerBase::TesseraAddOptimizerBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto grad = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!grad) {
      emitError(module.getLoc(), "tessera-add-optimizer: the module has no @loss_grad function "
                                 "(run tessera-autodiff first)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      emitError(module.getLoc(),
                "tessera-add-optimizer: the module already has a @train_step symbol");
      return signalPassFailure();
    }
    FunctionType ft = grad.getFunctionType();
    auto scalar = RankedTensorType::get({}, Float32Type::get(module.getContext()));
    if (grad.isExternal() || !grad.getBody().hasOneBlock() || ft.getNumResults() < 1 ||
        ft.getResult(0) != scalar) {
      emitError(grad.getLoc(),
                "tessera-add-optimizer: @loss_grad must have a single-block body and "
                "return the loss tensor<f32> first");
      return signalPassFailure();
    }
    SmallVector<StringAttr> names;
    for (unsigned i = 1; i < ft.getNumResults(); ++i) {
      auto name = grad.getResultAttrOfType<StringAttr>(i, attrs::gradOf);
      if (!name) {
        emitError(grad.getLoc(), "tessera-add-optimizer: result ") << i << " of @loss_grad has no "
                                                                   << "tessera.grad_of attribute";
        return signalPassFailure();
      }
      names.push_back(name);
    }

    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(grad);
    SmallVector<Type> inputs(ft.getInputs());
    bool dropout = false;
    grad.walk([&](DropoutOp) { dropout = true; });
    auto hparamsType =
        RankedTensorType::get({dropout ? kTrainHParamsDropout : kTrainHParams}, b.getF32Type());
    inputs.push_back(hparamsType);
    auto step =
        b.create<func::FuncOp>(grad.getLoc(), "train_step", b.getFunctionType(inputs, {scalar}));
    if (auto vis = grad.getSymVisibilityAttr())
      step.setSymVisibilityAttr(vis);
    // The hparams carry the grad scale and clip norm: gradients accumulate
    // over micro-batches and AdamW runs in optimizer_step.
    setProgramRole(step, kTrainHParams >= 10 ? ProgramRole::accumulate : ProgramRole::train_step);

    Block *entry = step.addEntryBlock();
    Block &src = grad.getBody().front();
    IRMapping map;
    for (unsigned i = 0; i < ft.getNumInputs(); ++i)
      map.map(src.getArgument(i), entry->getArgument(i));
    b.setInsertionPointToEnd(entry);
    for (Operation &op : src.without_terminator())
      b.clone(op, map);
    auto ret = cast<func::ReturnOp>(src.getTerminator());
    Value hparams = entry->getArguments().back();
    for (unsigned i = 1; i < ret.getNumOperands(); ++i)
      b.create<AdamWUpdateOp>(ret.getLoc(), names[i - 1], map.lookup(ret.getOperand(i)), hparams);
    b.create<func::ReturnOp>(ret.getLoc(), map.lookup(ret.getOperand(0)));
  }
};

} // namespace
} // namespace mlir::tessera
