// Quantized.h - how the IR marks a frozen weight stored block-quantised
// (tessera-assign-quant, compiler/precision/AssignQuant.cpp): its
// tessera.param carries
//   tessera.quant = "q8_0" | "q4_0" | "tq2_0"     the plan dtype of its buffer
//   tessera.quant_transposed                     blocks run along axis 0 (the
//                                                 buffer holds the transpose)
// The tensor type stays the logical float type; only matmuls read such a
// value, dequantising while they load (compiler/lowering/kernels/Dequant.h).
#pragma once

#include "runtime/plan/Plan.h"

#include "Tessera/IR/TesseraOps.h"

#include <optional>

namespace tessera::quant {

constexpr const char *kQuantAttr = "tessera.quant";
constexpr const char *kTransposedAttr = "tessera.quant_transposed";

struct QuantizedWeight {
  plan::DType dtype = plan::DType::Q8_0;
  bool transposed = false;
  int64_t rows = 0, cols = 0; // logical shape [rows, cols]
};

inline std::optional<plan::DType> parseQuantType(llvm::StringRef s) {
  if (s == "q8_0") return plan::DType::Q8_0;
  if (s == "q4_0") return plan::DType::Q4_0;
  if (s == "tq2_0") return plan::DType::TQ2_0;
  return std::nullopt;
}

// The quantised weight a value is, if any (a marked frozen tessera.param).
inline std::optional<QuantizedWeight> quantizedWeight(mlir::Value v) {
  auto p = v.getDefiningOp<mlir::tessera::ParamOp>();
  if (!p)
    return std::nullopt;
  auto q = p->getAttrOfType<mlir::StringAttr>(kQuantAttr);
  if (!q)
    return std::nullopt;
  std::optional<plan::DType> t = parseQuantType(q.getValue());
  auto shape = mlir::cast<mlir::ShapedType>(p.getType()).getShape();
  if (!t || shape.size() != 2)
    return std::nullopt;
  return QuantizedWeight{*t, p->hasAttr(kTransposedAttr), shape[0], shape[1]};
}

} // namespace tessera::quant
