// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAAUTODIFF
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraAutodiffPass : impl::TesseraAutodiffBase<TesseraAutodiffPass> {
  using TesseraAutodiffBase::TesseraAutodiffBase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraAutodiff is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
