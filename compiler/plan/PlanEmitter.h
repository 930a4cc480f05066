// PlanEmitter.h - lowered module (buffers, programs, spirv.modules) -> plan.
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "runtime/plan/Plan.h"

#include <string>

namespace tessera {

struct PlanOptions {
  std::string model_file;
  int64_t batch = 0, seq = 0, vocab = 0; // 0: taken from the module (input_ids shape, tessera.vocab)
  int64_t lora_rank = 0;                 // LoRA settings: the module's `tessera.lora`
  double lora_alpha = 0;                 //   attribute wins when present (it describes
  bool rslora = false;                   //   the graph that was built)
  std::vector<std::string> lora_targets;
  uint64_t seed = 0;
};

/// Builds the plan from a module after tessera-lower-to-kernels and
/// tessera-kernels-to-spirv: serialises each spirv.module, maps buffer symbols
/// to indices, programs to dispatch lists, LoRA params to Adapter records.
/// Returns failure with a diagnostic on the module when something is missing.
///
/// Conventions: buffers keep module order; kernel i is the i-th spirv.module
/// (name = symbol = entry point, bindings = its descriptor set 0 bindings,
/// local_size = its LocalSize); a dispatch binds its buffers in the order
/// listed. Adapters are grouped from `lora` buffers named <module>.lora_A /
/// <module>.lora_B with gradients <param>.grad and moments <param>.exp_avg /
/// <param>.exp_avg_sq, in order of first appearance.
mlir::FailureOr<plan::Plan> buildPlan(mlir::ModuleOp module, const PlanOptions &options);

/// Device memory by role (storage-owning buffers), with the activation
/// figures tessera-reuse-buffers recorded in the module's `tessera.memory`.
plan::MemorySummary memorySummary(const plan::Plan &plan, mlir::ModuleOp module);

/// Writes every kernel's SPIR-V to <dir>/<kernel>.spv (creating dir).
/// Returns false with `error` set to one line on failure.
bool writeKernelsSpirv(const plan::Plan &plan, const std::string &dir, std::string &error);

} // namespace tessera
