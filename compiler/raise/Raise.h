//===- Raise.h - pieces of tessera-raise shared between files ---*- C++ -*-===//
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::tessera::raise {

/// The raising patterns (RaisePatterns.cpp): GELU-tanh spelled out, RMSNorm,
/// RoPE, gated linear units, embeddings and attention.
void populateRaisePatterns(RewritePatternSet &patterns);

/// The expansions of the raised ops into the generic core (DecomposeFused.cpp).
void populateDecomposeFusedPatterns(RewritePatternSet &patterns);
/// attention -> flash_attention (FuseAttention.cpp).
void populateFuseAttentionPatterns(RewritePatternSet &patterns);

/// Replaces recognised generic op chains of `f` by tessera.rms_norm, rope,
/// attention, glu and embedding (and spelled-out GELU by unary gelu_tanh)
/// with the greedy driver; the ops that die are erased. Leaves everything
/// else as it is.
void raiseFusedOps(func::FuncOp f);

} // namespace mlir::tessera::raise
