// CompileInference.h - `tessera compile --generate`: a generation plan.
#pragma once

#include "compiler/Pipeline.h"

#include <string>

namespace tessera {

/// Imports the model at [1, seq] and [1, 1], raises both, injects LoRA (the
/// adapter's shapes, no dropout), builds @prefill / @decode (BuildInference.h),
/// lowers them and writes a plan with the programs `prefill` and `decode`.
/// Returns 0, or 1 with `error` set to one line.
int compileInferencePlan(const CompileOptions &options, std::string &error);

} // namespace tessera
