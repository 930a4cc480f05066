// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAAPPENDLOSS
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraAppendLossPass : impl::TesseraAppendLossBase<TesseraAppendLossPass> {
  using TesseraAppendLossBase::TesseraAppendLossBase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraAppendLoss is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
