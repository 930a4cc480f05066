// Placeholder: replaced by the real plan emitter.
#include "compiler/plan/PlanEmitter.h"

mlir::FailureOr<tessera::plan::Plan> tessera::buildPlan(mlir::ModuleOp module, const PlanOptions &) {
  module.emitError("plan emission is not implemented yet");
  return mlir::failure();
}
