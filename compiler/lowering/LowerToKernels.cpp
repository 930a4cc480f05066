// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERALOWERTOKERNELS
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraLowerToKernelsPass : impl::TesseraLowerToKernelsBase<TesseraLowerToKernelsPass> {
  using TesseraLowerToKernelsBase::TesseraLowerToKernelsBase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraLowerToKernels is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
