// Attention.h - what the fused attention kernels share: the problem's shapes
// and mask addressing (Attention.cpp: SIMT kernels; AttentionCoopMat.cpp:
// the cooperative-matrix variant).
#pragma once

#include "compiler/lowering/kernels/Kernels.h"

namespace tessera::lowering {

/// The shapes every attention kernel sees: q [B, H, T, D], k and v
/// [B, KH, S, D], G = H / KH query heads per kv head.
struct AttentionShape {
  int64_t B, H, T, S, D, KH, G;
  llvm::SmallVector<int64_t, 4> maskStrides; // per [B, H, T, S] dim, 0 where broadcast
  bool hasMask = false;
};

AttentionShape attentionShape(mlir::Value q, mlir::Value k, mlir::Value mask, int64_t groups);

/// The mask offset of (b, h, t, key) (t, key in bounds).
mlir::Value attentionMaskAt(KernelBuilder &kb, const AttentionShape &s, mlir::Value b, mlir::Value h, mlir::Value t,
                            mlir::Value key);

/// Whether the cooperative-matrix kernels take `op` (a flash_attention or
/// flash_attention_grad) under `config`; else `why` says what does not tile
/// and the SIMT kernels run.
bool attentionCoopMatApplies(const LoweringContext &ctx, mlir::Operation *op, mlir::tessera::MatmulConfigAttr config,
                             std::string *why = nullptr);

} // namespace tessera::lowering
