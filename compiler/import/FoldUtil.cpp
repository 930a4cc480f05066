// FoldUtil.cpp - index arithmetic the fold handlers share.
#include "compiler/import/FoldUtil.h"

namespace tessera::onnximport {

Shape stridesOf(const Shape &s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

std::vector<int64_t> stridedOffsets(const Shape &out, int64_t base, const Shape &strides) {
  int64_t n = numElements(out);
  size_t r = out.size();
  std::vector<int64_t> idx(n);
  std::vector<int64_t> pos(r, 0);
  int64_t off = base;
  for (int64_t e = 0; e < n; ++e) {
    idx[e] = off;
    for (int64_t d = (int64_t)r - 1; d >= 0; --d) {
      pos[d]++;
      off += strides[d];
      if (pos[d] < out[d])
        break;
      off -= strides[d] * out[d];
      pos[d] = 0;
    }
  }
  return idx;
}

std::vector<int64_t> bcastOffsets(const Shape &in, const Shape &out) {
  Shape st(out.size(), 0), inSt = stridesOf(in);
  for (size_t k = 0; k < in.size(); ++k)
    st[out.size() - in.size() + k] = in[k] == 1 ? 0 : inSt[k];
  return stridedOffsets(out, 0, st);
}

Tensor gatherElems(const Tensor &src, const Shape &outShape, const std::vector<int64_t> &offsets) {
  Tensor t = Tensor::zeros(src.dt, outShape);
  if (src.dt == DType::F32)
    for (size_t k = 0; k < offsets.size(); ++k)
      t.f[k] = src.f[offsets[k]];
  else
    for (size_t k = 0; k < offsets.size(); ++k)
      t.i[k] = src.i[offsets[k]];
  return t;
}

Tensor withShape(const Tensor &src, Shape s) {
  Tensor t = src;
  t.shape = std::move(s);
  return t;
}

} // namespace tessera::onnximport
