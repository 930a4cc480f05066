// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAKERNELSTOSPIRV
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraKernelsToSPIRVPass : impl::TesseraKernelsToSPIRVBase<TesseraKernelsToSPIRVPass> {
  using TesseraKernelsToSPIRVBase::TesseraKernelsToSPIRVBase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraKernelsToSPIRV is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
