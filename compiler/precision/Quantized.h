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
// BitNet b1.58 (tessera.ternary_weight, expanded by tessera-decompose-fused):
// a frozen param / its buffer holding what the runtime derives from the
// whole initializer w at load, s = 1 / max(mean |w|, eps) in f32:
//   tessera.ternary = "codes"   clamp(roundeven(w * s), -1, 1), w's shape
//                     "scale"   1 / s, rank 0, f32
//   tessera.ternary_eps = eps   (f64)
constexpr const char *kTernaryAttr = "tessera.ternary";
constexpr const char *kTernaryEpsAttr = "tessera.ternary_eps";

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

// "codes", "scale" or "" (not a ternary param).
inline llvm::StringRef ternaryPart(mlir::Operation *op) {
  auto s = op ? op->getAttrOfType<mlir::StringAttr>(kTernaryAttr) : mlir::StringAttr();
  return s ? s.getValue() : llvm::StringRef();
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
