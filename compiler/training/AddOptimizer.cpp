// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAADDOPTIMIZER
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraAddOptimizerPass : impl::TesseraAddOptimizerBase<TesseraAddOptimizerPass> {
  using TesseraAddOptimizerBase::TesseraAddOptimizerBase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraAddOptimizer is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
