// PlanEmitter.h - lowered module (buffers, programs, spirv.modules) -> plan file.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "runtime/plan/Plan.h"

#include <string>

namespace tessera {

struct PlanOptions {
  std::string model_file;
  int64_t batch = 0, seq = 0, vocab = 0;
  int64_t lora_rank = 0;
  double lora_alpha = 0;
  bool rslora = false;
  std::vector<std::string> lora_targets;
  uint64_t seed = 0;
};

/// Builds the plan from a module after tessera-lower-to-kernels and
/// tessera-kernels-to-spirv: serialises each spirv.module, maps buffer symbols
/// to indices, programs to dispatch lists, LoRA params to Adapter records.
/// Returns failure with a diagnostic on the module when something is missing.
mlir::FailureOr<plan::Plan> buildPlan(mlir::ModuleOp module, const PlanOptions &options);

} // namespace tessera
