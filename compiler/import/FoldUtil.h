// FoldUtil.h - index arithmetic the fold handlers share (row-major CPU tensors).
#pragma once

#include "compiler/import/OnnxTensor.h"

namespace tessera::onnximport {

/// Row-major strides of a shape.
Shape stridesOf(const Shape &s);
/// Flat input offsets of every element of an output of shape `out`, where the
/// input element of output position p is base + sum(p[d] * strides[d]).
std::vector<int64_t> stridedOffsets(const Shape &out, int64_t base, const Shape &strides);
/// Offsets into `in` for every element of `out`, `in` numpy-broadcast to `out`.
std::vector<int64_t> bcastOffsets(const Shape &in, const Shape &out);
/// The elements of `src` at `offsets`, as a tensor of `outShape`.
Tensor gatherElems(const Tensor &src, const Shape &outShape, const std::vector<int64_t> &offsets);
/// Same data, another shape.
Tensor withShape(const Tensor &src, Shape s);

} // namespace tessera::onnximport
