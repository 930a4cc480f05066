// ActQuantRow.h - BitLinear's per-row absmax int8 quantiser, the steps that
// act_quant (ActQuant.cpp) and bitlinear_quant (BitLinear.cpp) share, so the
// codes the integer products read are the ones act_quant's f32 values encode:
// a = (1 / max(max |x|, eps)) * 127, code = clamp(roundeven(x a), -128, 127).
#pragma once

#include "compiler/lowering/kernels/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

namespace tessera::lowering {

/// max |in[base + j]| over j = from, from + step, ... < len (one thread's
/// share of a row; a workgroup reduces the shares).
inline mlir::Value rowAbsMax(KernelBuilder &kb, mlir::Value in, mlir::Value base, mlir::Value from,
                             mlir::Value len, mlir::Value step) {
  return kb.forLoopIter(from, len, step, mlir::ValueRange{kb.f32(0.0)},
                        [&](mlir::Value j, mlir::ValueRange acc) -> llvm::SmallVector<mlir::Value> {
                          mlir::Value x = kb.load(in, kb.add(base, j));
                          return {kb.fmax(acc[0], kb.b.create<mlir::math::AbsFOp>(x).getResult())};
                        })[0];
}

/// The row's scale a from its max |x|, in transformers' f32 operations
/// (the division correctly rounded on every device: fdivRounded).
inline mlir::Value actQuantScale(KernelBuilder &kb, mlir::Value absMax, double eps) {
  return kb.fmul(kb.fdivRounded(kb.f32(1.0), kb.fmax(absMax, kb.f32(eps))), kb.f32(127.0));
}

/// clamp(roundeven(x a), -128, 127), as f32.
inline mlir::Value actQuantCode(KernelBuilder &kb, mlir::Value x, mlir::Value a) {
  mlir::Value r = kb.b.create<mlir::math::RoundEvenOp>(kb.fmul(x, a));
  return kb.b.create<mlir::arith::MinimumFOp>(kb.fmax(r, kb.f32(-128.0)), kb.f32(127.0));
}

} // namespace tessera::lowering
