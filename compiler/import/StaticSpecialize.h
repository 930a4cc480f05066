// StaticSpecialize.h - re-specialising a graph exported at a fixed shape.
//
// A static export (torch.onnx at e.g. [1,16]) bakes its shape into constants:
// Reshape / Expand targets, RoPE cos/sin tables, attention masks. To import it
// at another [batch, seq] the importer first infers every value's shape at the
// export shape, then, while importing at the new shape, rewrites those
// constants with the functions below. Each one verifies what it assumes and
// returns false with `err` when the constant is not understood.
#pragma once

#include "compiler/import/OnnxTensor.h"

namespace tessera::onnximport {

struct SpecializeDims {
  int64_t oldBatch, oldSeq, newBatch, newSeq;
};

/// Reshape target for `newIn`, given that `oldSpec` reshaped `oldIn`. Dims are
/// grouped into runs of equal product (old input vs. resolved old target). A
/// run whose product changed: matching dims follow the input one to one; else
/// the batch / sequence growth goes to the target dim that held the export
/// batch (first such dim) / length (the only such dim), or to the run's only
/// dim other than 1. Anything else is ambiguous (error). No 0 or -1 remain.
bool respecializeReshape(const Shape &oldIn, const std::vector<int64_t> &oldSpec, bool allowZero,
                         const Shape &newIn, const SpecializeDims &dims, std::vector<int64_t> &newSpec,
                         std::string &err);

/// Expand target for `newIn`, given that `oldSpec` expanded `oldIn`: dims the
/// old Expand copied from its input follow the new input, broadcast sizes stay.
bool respecializeExpand(const Shape &oldIn, const std::vector<int64_t> &oldSpec, const Shape &newIn,
                        std::vector<int64_t> &newSpec, std::string &err);

/// Whether `t` is a 0 / -inf mask [.., T, T] that is plainly causal (every
/// earlier key open): at the export length a sliding window of T or more
/// tokens looks exactly like this.
bool isPlainCausalMask(const Tensor &t);

/// A position-dependent float table baked at the export length, regenerated for
/// `newShape` (same rank; only the position dims differ). Recognised:
///  - additive attention masks [..., T, T] of 0 / a large negative value:
///    causal or sliding-window (the window is inferred), every entry checked;
///  - RoPE tables [..., T, D]: s*cos(p*f_k) or s*sin(p*f_k), with the
///    frequencies f_k and scaling s recovered from the values (with `sibling`,
///    the table of the other kind of the same shape, when there is one) and
///    every entry checked.
/// `what` names the kind recognised ("causal mask", "RoPE cos table", ...).
bool regeneratePositionTable(const Tensor &table, const Tensor *sibling, const Shape &newShape, Tensor &out,
                             std::string &what, std::string &err);

/// True when `t` looks like a RoPE table (row 0 all equal and non-zero, or all zero).
bool ropeKind(const Tensor &t, bool &isCos);

} // namespace tessera::onnximport
