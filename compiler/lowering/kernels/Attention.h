// Attention.h - what the fused attention kernels share: the problem's shapes
// and mask addressing (Attention.cpp: SIMT kernels; AttentionCoopMat.cpp:
// the cooperative-matrix variant).
#pragma once

#include "compiler/lowering/kernels/Kernels.h"

#include <optional>

namespace tessera::lowering {

/// The shapes every attention kernel sees: q [B, H, T, D], k and v
/// [B, KH, S, D], G = H / KH query heads per kv head.
struct AttentionShape {
  int64_t B, H, T, S, D, KH, G;
  llvm::SmallVector<int64_t, 4> maskStrides; // per [B, H, T, S] dim, 0 where broadcast
  bool hasMask = false;
  /// A constant mask that is a band (constantMaskBand): its window (-1
  /// causal). The cooperative-matrix kernels then visit only the band's
  /// blocks and mask by index.
  std::optional<int64_t> band;
};

/// Whether `mask` is a tessera.constant whose every [T, S] slice (T == S) is
/// 0 where t - window < s <= t and dead (<= -1e30: -inf, or finfo.min as
/// exported Hugging Face masks) elsewhere; the window, -1 when the band has
/// no lower end (causal). Every row then sees its own key.
std::optional<int64_t> constantMaskBand(mlir::Value mask);

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
