// Interpreter.h - a float64 CPU reference interpreter of the tessera tensor
// ops (test-only support code for the gradient checks).
//
// Every value is a Tensor of doubles: f32 as is, i32 and i1 as exact
// integers (i1 as 0/1). Semantics follow dialects/Tessera/IR/TesseraOps.td.
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::testing {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  Tensor() = default;
  Tensor(std::vector<int64_t> s, double fill = 0.0);
  Tensor(std::vector<int64_t> s, std::vector<double> d);
  int64_t numElements() const;
};

/// Named parameter values (frozen weights and LoRA factors).
using ParamMap = std::map<std::string, Tensor>;

/// Runs `f` on `args` (in order) with parameters from `params`; returns its
/// results. Throws std::runtime_error on an unknown op, a missing parameter
/// or a shape mismatch.
std::vector<Tensor> interpret(mlir::func::FuncOp f, const std::vector<Tensor> &args,
                              const ParamMap &params);

} // namespace tessera::testing
