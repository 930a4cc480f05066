// ops/Indexing.cpp - selecting and assembling elements: Gather, GatherND,
// Slice, Split, Concat, Tile, Trilu.
//
// Gather with token-id indices is the embedding lookup (tessera.gather); with
// constant indices it becomes a slice when they form a progression. Slice and
// Split map to tessera.slice, Concat and Tile to tessera.concat, Trilu to a
// select against a constant mask. GatherND folds only.
#include "compiler/import/FoldUtil.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"

#include <algorithm>

namespace tessera::onnximport {
namespace {

FoldResult foldTile(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1))
    return f.fail();
  auto rep = f.input(1)->toInts();
  int64_t r = (int64_t)x->shape.size();
  if ((int64_t)rep.size() != r) {
    f.err = "Tile repeats length differs from rank";
    return f.fail();
  }
  Shape os(r);
  int64_t total = 1;
  for (int64_t d = 0; d < r; ++d) {
    if (rep[d] < 0 || (rep[d] && x->shape[d] > (int64_t(1) << 26) / rep[d])) {
      f.err = "invalid Tile repeats";
      return f.fail();
    }
    os[d] = x->shape[d] * rep[d];
    total *= os[d];
    if (total > (int64_t(1) << 26)) {
      f.err = "Tile result too large";
      return f.fail();
    }
  }
  Shape st = stridesOf(x->shape);
  std::vector<int64_t> offs(numElements(os));
  std::vector<int64_t> pos(r, 0);
  for (size_t e = 0; e < offs.size(); ++e) {
    int64_t o = 0;
    for (int64_t d = 0; d < r; ++d)
      o += (pos[d] % x->shape[d]) * st[d];
    offs[e] = o;
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++pos[d] < os[d])
        break;
      pos[d] = 0;
    }
  }
  f.out.push_back(gatherElems(*x, os, offs));
  return FoldResult::Folded;
}

FoldResult foldConcat(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size(), axis;
  if (!normAxis(attrInt(f.proto, "axis", 0), r, axis, f.err))
    return f.fail();
  Shape os = x->shape;
  os[axis] = 0;
  DType dt = x->dt;
  for (size_t k = 0; k < f.in.size(); ++k) {
    if (!f.need(k))
      return f.fail();
    const Shape &s = f.input(k)->shape;
    if ((int64_t)s.size() != r) {
      f.err = "Concat inputs have different ranks";
      return f.fail();
    }
    for (int64_t d = 0; d < r; ++d)
      if (d != axis && s[d] != x->shape[d]) {
        f.err = "Concat inputs " + shapeStr(x->shape) + " and " + shapeStr(s) + " differ off the axis";
        return f.fail();
      }
    os[axis] += s[axis];
    if (f.input(k)->dt == DType::F32)
      dt = DType::F32;
  }
  Tensor t = Tensor::zeros(dt, os);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= os[d];
  for (int64_t d = axis + 1; d < r; ++d)
    inner *= os[d];
  int64_t k0 = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t k = 0; k < f.in.size(); ++k) {
      const Tensor &s = *f.input(k);
      int64_t chunk = s.shape[axis] * inner;
      for (int64_t j = 0; j < chunk; ++j, ++k0) {
        if (dt == DType::F32) t.f[k0] = s.getF(o * chunk + j);
        else t.i[k0] = s.i[o * chunk + j];
      }
    }
  return f.folded(std::move(t));
}

FoldResult foldSplit(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size(), axis;
  if (!normAxis(attrInt(f.proto, "axis", 0), r, axis, f.err))
    return f.fail();
  std::vector<int64_t> split, sizes;
  bool have = false;
  if (f.opset >= 13) {
    if (f.input(1)) {
      split = f.input(1)->toInts();
      have = true;
    }
  } else {
    have = attrInts(f.proto, "split", split);
  }
  int64_t nOut = findAttr(f.proto, "num_outputs") ? attrInt(f.proto, "num_outputs", 1) : f.proto.output_size();
  if (!splitSizes(x->shape[axis], have ? &split : nullptr, nOut, sizes, f.err))
    return f.fail();
  Shape st = stridesOf(x->shape);
  int64_t start = 0;
  for (int64_t s : sizes) {
    Shape os = x->shape;
    os[axis] = s;
    f.out.push_back(gatherElems(*x, os, stridedOffsets(os, start * st[axis], st)));
    start += s;
  }
  return FoldResult::Folded;
}

FoldResult foldSlice(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1) || !f.need(2))
    return f.fail();
  std::vector<int64_t> axes, steps;
  if (f.input(3))
    axes = f.input(3)->toInts();
  if (f.input(4))
    steps = f.input(4)->toInts();
  std::vector<SliceDim> dims;
  if (!sliceParams(x->shape, f.input(1)->toInts(), f.input(2)->toInts(), f.input(3) ? &axes : nullptr,
                   f.input(4) ? &steps : nullptr, dims, f.err))
    return f.fail();
  Shape st = stridesOf(x->shape), os, ost;
  int64_t base = 0;
  for (size_t d = 0; d < dims.size(); ++d) {
    os.push_back(dims[d].len);
    ost.push_back(dims[d].step * st[d]);
    if (dims[d].len > 0)
      base += dims[d].start * st[d];
  }
  if (numElements(os) == 0)
    base = 0;
  f.out.push_back(gatherElems(*x, os, stridedOffsets(os, base, ost)));
  return FoldResult::Folded;
}

FoldResult foldGather(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1))
    return f.fail();
  int64_t r = (int64_t)x->shape.size(), axis;
  if (!normAxis(attrInt(f.proto, "axis", 0), r, axis, f.err))
    return f.fail();
  const Tensor &idx = *f.input(1);
  Shape os(x->shape.begin(), x->shape.begin() + axis);
  os.insert(os.end(), idx.shape.begin(), idx.shape.end());
  os.insert(os.end(), x->shape.begin() + axis + 1, x->shape.end());
  int64_t outer = 1, inner = 1, dim = x->shape[axis];
  for (int64_t d = 0; d < axis; ++d)
    outer *= x->shape[d];
  for (int64_t d = axis + 1; d < r; ++d)
    inner *= x->shape[d];
  std::vector<int64_t> offs;
  offs.reserve(numElements(os));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < idx.numel(); ++j) {
      int64_t k = idx.getI(j);
      if (k < -dim || k >= dim) {
        f.err = "Gather index " + std::to_string(k) + " out of range for dim " + std::to_string(dim);
        return f.fail();
      }
      if (k < 0)
        k += dim;
      for (int64_t q = 0; q < inner; ++q)
        offs.push_back((o * dim + k) * inner + q);
    }
  f.out.push_back(gatherElems(*x, os, offs));
  return FoldResult::Folded;
}

FoldResult foldGatherND(FoldNode &f) {
  const Tensor *x = f.input(0);
  // out[b..., i...] = data[b..., idx[b..., i..., :]...] (batch_dims leading dims shared).
  if (!f.need(1))
    return f.fail();
  const Tensor &idx = *f.input(1);
  int64_t bd = attrInt(f.proto, "batch_dims", 0), r = (int64_t)x->shape.size(), q = (int64_t)idx.shape.size();
  if (q < 1 || bd < 0 || bd >= std::min(r, q)) {
    f.err = "GatherND: invalid batch_dims " + std::to_string(bd) + " for data rank " + std::to_string(r) +
          " and indices rank " + std::to_string(q);
    return f.fail();
  }
  int64_t m = idx.shape[q - 1];
  if (m < 1 || bd + m > r) {
    f.err = "GatherND: index tuples of length " + std::to_string(m) + " do not fit data " + shapeStr(x->shape);
    return f.fail();
  }
  for (int64_t d = 0; d < bd; ++d)
    if (idx.shape[d] != x->shape[d]) {
      f.err = "GatherND: batch dims of indices " + shapeStr(idx.shape) + " and data " + shapeStr(x->shape) +
            " differ";
      return f.fail();
    }
  Shape os(idx.shape.begin(), idx.shape.end() - 1);
  os.insert(os.end(), x->shape.begin() + bd + m, x->shape.end());
  Shape dst = stridesOf(x->shape);
  int64_t batches = 1, inner = 1;
  for (int64_t d = 0; d < bd; ++d)
    batches *= x->shape[d];
  for (int64_t d = bd + m; d < r; ++d)
    inner *= x->shape[d];
  int64_t tuples = idx.numel() / m, perBatch = tuples / batches;
  std::vector<int64_t> offs;
  offs.reserve(tuples * inner);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t base = (t / perBatch) * (bd ? dst[bd - 1] : 0);
    for (int64_t j = 0; j < m; ++j) {
      int64_t dim = x->shape[bd + j], k = idx.getI(t * m + j);
      if (k < -dim || k >= dim) {
        f.err = "GatherND index " + std::to_string(k) + " out of range for dim " + std::to_string(dim);
        return f.fail();
      }
      base += (k < 0 ? k + dim : k) * dst[bd + j];
    }
    for (int64_t e = 0; e < inner; ++e)
      offs.push_back(base + e);
  }
  f.out.push_back(gatherElems(*x, os, offs));
  return FoldResult::Folded;
}

FoldResult foldTrilu(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size();
  if (r < 2) {
    f.err = "Trilu input must have rank >= 2";
    return f.fail();
  }
  int64_t k = f.input(1) ? f.input(1)->getI(0) : 0;
  bool upper = attrInt(f.proto, "upper", 1) != 0;
  int64_t N = x->shape[r - 2], M = x->shape[r - 1];
  Tensor t = *x;
  for (int64_t e = 0; e < t.numel(); ++e) {
    int64_t j = e % M, i = (e / M) % N;
    bool keep = upper ? (j - i >= k) : (j - i <= k);
    if (!keep)
      t.setI(e, 0);
  }
  return f.folded(std::move(t));
}

bool emitSplit(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  if (!node.need(0))
    return false;
  int64_t axis;
  if (!normAxis(attrInt(n, "axis", 0), node.rank(0), axis, err))
    return node.fail(err);
  std::vector<int64_t> split, sizes;
  bool have = false;
  if (node.opset() >= 13 && node.arg(1)) {
    if (!node.constInts(1, split))
      return false;
    have = true;
  } else if (node.opset() < 13) {
    have = attrInts(n, "split", split);
  }
  int64_t nOut = findAttr(n, "num_outputs") ? attrInt(n, "num_outputs", 1) : n.output_size();
  if (!splitSizes(node.arg(0)->shape[axis], have ? &split : nullptr, nOut, sizes, err))
    return node.fail(err);
  mlir::Value x = node.materialize(0);
  if (!x)
    return false;
  int64_t start = 0;
  for (int64_t s : sizes) {
    node.out.push_back(imp.dyn(imp.sliceAxis(x, axis, start, s)));
    start += s;
  }
  return true;
}

bool emitConcat(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  int64_t axis;
  if (node.in.empty() || !node.need(0) || !normAxis(attrInt(n, "axis", 0), node.rank(0), axis, err))
    return err.empty() ? false : node.fail(err);
  DType dt = node.arg(0)->dt;
  for (const ValP &v : node.in)
    if (v && v->dt == DType::F32)
      dt = DType::F32;
  std::vector<mlir::Value> xs;
  for (size_t k = 0; k < node.in.size(); ++k) {
    if (!node.need(k))
      return false;
    if (node.arg(k)->shape.size() != node.arg(0)->shape.size())
      return node.fail("inputs have different ranks");
    for (size_t d = 0; d < node.arg(k)->shape.size(); ++d)
      if ((int64_t)d != axis && node.arg(k)->shape[d] != node.arg(0)->shape[d])
        return node.fail("input shapes " + shapeStr(node.arg(0)->shape) + " and " + shapeStr(node.arg(k)->shape) +
                        " differ off the concat axis");
    if (node.arg(k)->shape[axis] == 0)
      continue;
    mlir::Value x = dt == DType::F32 ? node.asFloat(k) : node.materialize(k);
    if (!x)
      return false;
    if (Importer::dtOf(x) != dt)
      return node.fail("inputs have different element types");
    xs.push_back(x);
  }
  if (xs.empty())
    return node.fail("all inputs are empty");
  return node.push(imp.concat(xs, axis));
}

bool emitGather(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  if (!node.need(0) || !node.need(1))
    return false;
  int64_t axis;
  if (!normAxis(attrInt(n, "axis", 0), node.rank(0), axis, err))
    return node.fail(err);
  ValP data = node.arg(0), idx = node.arg(1);
  Shape ds = data->shape;
  int64_t dim = ds[axis];
  if (idx->dt == DType::F32)
    return node.fail("Gather indices must be integers");
  if (idx->isConst) {
    std::vector<int64_t> ix;
    if (!imp.constInts(idx, n.input(1), ix))
      return false;
    for (int64_t &k : ix) {
      if (k < -dim || k >= dim)
        return node.fail("index " + std::to_string(k) + " out of range for dim " + std::to_string(dim));
      if (k < 0)
        k += dim;
    }
    Shape os(ds.begin(), ds.begin() + axis);
    os.insert(os.end(), idx->shape.begin(), idx->shape.end());
    os.insert(os.end(), ds.begin() + axis + 1, ds.end());
    bool progression = !ix.empty() && idx->shape.size() <= 1;
    int64_t step = ix.size() > 1 ? ix[1] - ix[0] : 1;
    for (size_t k = 1; k < ix.size(); ++k)
      progression &= ix[k] - ix[k - 1] == step;
    if (progression && step >= 1) {
      mlir::Value x = imp.materialize(*data);
      return x && node.push(imp.reshape(imp.sliceAxis(x, axis, ix[0], (int64_t)ix.size(), step), os));
    }
    if (data->dt != DType::F32)
      return node.fail("gathering integer data at irregular indices is not supported");
    Tensor t = Tensor::zeros(DType::I64, idx->shape);
    t.i = ix;
    mlir::Value x = imp.materialize(*data), iv = imp.makeConst(t);
    return x && iv && node.push(imp.b.create<tt::GatherOp>(imp.loc, x, iv, (uint64_t)axis));
  }
  if (data->dt != DType::F32)
    return node.fail("gathering from integer data with indices computed from the token ids is not supported");
  mlir::Value x = imp.materialize(*data), iv = imp.materialize(*idx);
  if (!x || !iv)
    return false;
  if (Importer::dtOf(iv) != DType::I64)
    iv = imp.b.create<tt::CastOp>(imp.loc, imp.tensorType(Importer::shapeOf(iv), DType::I64), iv);
  return node.push(imp.b.create<tt::GatherOp>(imp.loc, x, iv, (uint64_t)axis));
}

bool emitTrilu(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  if (!node.need(0))
    return false;
  int64_t r = node.rank(0);
  if (r < 2)
    return node.fail("input must have rank >= 2");
  std::vector<int64_t> kv = {0};
  if (node.arg(1) && !node.constInts(1, kv))
    return false;
  bool upper = attrInt(n, "upper", 1) != 0;
  int64_t N = node.arg(0)->shape[r - 2], M = node.arg(0)->shape[r - 1];
  Tensor mask = Tensor::zeros(DType::Bool, {N, M});
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < M; ++j)
      mask.i[i * M + j] = upper ? (j - i >= kv[0]) : (j - i <= kv[0]);
  mlir::Value x = node.asFloat(0), c = imp.makeConst(mask);
  if (!x || !c)
    return false;
  return node.push(imp.b.create<tt::SelectOp>(imp.loc, c, x, imp.scalarF(0)));
}

bool emitTile(Node &node) {
  Importer &imp = node.imp;
  std::vector<int64_t> rep;
  if (!node.need(0) || !node.need(1) || !node.constInts(1, rep))
    return false;
  if ((int64_t)rep.size() != node.rank(0))
    return node.fail("repeats length differs from the rank");
  mlir::Value x = node.materialize(0);
  if (!x)
    return false;
  // Each copy is a concat operand: bound the copies as well as the result.
  int64_t tiled = numElements(Importer::shapeOf(x)), copies = 1;
  for (size_t d = 0; d < rep.size(); ++d)
    if (rep[d] < 1 || __builtin_mul_overflow(tiled, rep[d], &tiled) || tiled > kMaxValueElements ||
        (copies *= rep[d]) > 65536)
      return node.fail(rep[d] < 1 ? "repeats must be >= 1"
                                  : "repeats " + shapeStr(rep) + " are too many (at most 65536 copies, 2^31 elements)");
  for (size_t d = 0; d < rep.size(); ++d) {
    if (rep[d] > 1)
      x = imp.concat(std::vector<mlir::Value>(rep[d], x), (int64_t)d);
  }
  return node.push(x);
}

bool emitSlice(Node &node) {
  Importer &imp = node.imp;
  std::string err;
  std::vector<int64_t> starts, ends, axes, steps;
  if (!node.need(0) || !node.need(1) || !node.need(2) || !node.constInts(1, starts) ||
      !node.constInts(2, ends))
    return false;
  if (node.arg(3) && !node.constInts(3, axes))
    return false;
  if (node.arg(4) && !node.constInts(4, steps))
    return false;
  for (int64_t st : steps)
    if (st < 0)
      return node.fail("negative slice steps are not supported on values computed from the token ids");
  std::vector<SliceDim> dims;
  if (!sliceParams(node.arg(0)->shape, starts, ends, node.arg(3) ? &axes : nullptr, node.arg(4) ? &steps : nullptr,
                   dims, err))
    return node.fail(err);
  std::vector<int64_t> s, l, st;
  for (const SliceDim &d : dims) {
    s.push_back(d.len ? d.start : 0);
    l.push_back(d.len ? d.start + (d.len - 1) * d.step + 1 : 0);
    st.push_back(d.step);
  }
  mlir::Value x = node.materialize(0);
  return x && node.push(imp.slice(x, s, l, st));
}

} // namespace

void populateIndexingOps(OpRegistry &r) {
  r.on("Gather", 13).withFold(foldGather).withEmit(emitGather);
  r.on("GatherND", 13).withFold(foldGatherND);
  r.on("Slice", 13).withFold(foldSlice).withEmit(emitSlice);
  r.on("Split", 13).withFold(foldSplit).withEmit(emitSplit);
  r.on("Concat", 13).withFold(foldConcat).withEmit(emitConcat);
  r.on("Tile", 13).withFold(foldTile).withEmit(emitTile);
  r.on("Trilu", 13).withFold(foldTrilu).withEmit(emitTrilu);
}

} // namespace tessera::onnximport
