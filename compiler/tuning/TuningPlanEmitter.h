// TuningPlanEmitter.h - `tessera compile --tuning-plan`: the candidates of
// every distinct kernel problem of a model, compiled to SPIR-V, as a tuning
// plan the runtime alone can measure (autotune/TuningPlan.h).
#pragma once

#include "autotune/TuningPlan.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace tessera {

struct TuningPlanOptions {
  std::string model_file;
  size_t matmul_candidates = 32; // per matmul problem (the other families have fewer)
};

/// From a module after tessera-select-kernel-configs (the tensor-level
/// functions, every kernel op with its config): for each distinct problem
/// (problemKey) of the ops the programs run, a plan with one buffer per
/// kernel argument and one program per candidate config of the profile's
/// search space (the op's current config, the rules' choice, first) and one
/// for the reference kernel. Returns failure with an error on the module.
mlir::FailureOr<autotune::TuningPlan> buildTuningPlan(mlir::ModuleOp module, const autotune::DeviceProfile &profile,
                                                      const TuningPlanOptions &options);

} // namespace tessera
