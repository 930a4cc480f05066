// KernelInterface.h - the manifest field `kernels[i].interface` and the rules
// that tie it to the kernel's SPIR-V and to every dispatch (used by Plan.cpp;
// the struct is in Plan.h, the rules in docs/plan-format.md, "Trust model").
#pragma once

#include "runtime/plan/Plan.h"

#include <nlohmann/json.hpp>

#include <string>

namespace tessera::plan::detail {

nlohmann::json interfaceToJson(const KernelInterface &interface);

// Reads kernel object `kernel`'s "interface" (`path` is e.g. "kernels[3]");
// throws PlanError("<origin>: <path>.interface... <problem>").
KernelInterface interfaceFromJson(const nlohmann::json &kernel, const std::string &path, const std::string &origin);

// Every kernel's SPIR-V against its interface (capabilities, bindings, their
// element types, sizes and writes, the workgroup size), then every dispatch
// against its kernel's interface (buffer sizes and types, frozen buffers
// never written, group counts). Throws PlanError naming the field.
void checkInterfaces(const Plan &plan, const std::string &origin);

// Bytes per element of a buffer dtype.
uint64_t dtypeBytes(DType dtype);

} // namespace tessera::plan::detail
