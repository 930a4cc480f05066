// RecordInterface.h - the interface of a kernel as the compiler built it
// (plan::KernelInterface): for each binding of its spirv.module, the element
// type, whether the kernel writes it, and the bytes of its declared array.
// The runtime derives the same from the serialised binary and rejects a plan
// where the two disagree (docs/plan-format.md, "Trust model").
#pragma once

#include "runtime/plan/Plan.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"

namespace tessera {

/// Fails with a diagnostic on the module when a binding is not a storage
/// buffer holding one sized array of f32 / i32 / f16 / i16 (bf16). max_groups is left at 1:
/// buildPlan fills it from the dispatches.
mlir::FailureOr<plan::KernelInterface> recordInterface(mlir::spirv::ModuleOp module, uint32_t numBindings);

} // namespace tessera
