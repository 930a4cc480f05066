// Placeholder: replaced by the real implementation of this stage.
#include "Tessera/Transforms/Passes.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAINJECTLORA
#include "Tessera/Transforms/Passes.h.inc"
namespace {
struct TesseraInjectLoRAPass : impl::TesseraInjectLoRABase<TesseraInjectLoRAPass> {
  using TesseraInjectLoRABase::TesseraInjectLoRABase;
  void runOnOperation() override {
    getOperation()->emitError("TesseraInjectLoRA is not implemented yet");
    signalPassFailure();
  }
};
} // namespace
} // namespace mlir::tessera
