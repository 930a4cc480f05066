// ops/Shape.cpp - shapes and views: Shape, Size, Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Expand, ConstantOfShape, Range, Constant, Identity,
// Dropout, Cast, CastLike.
//
// Shape arithmetic folds (Shape and Size from shapes alone, even of computed
// values); on computed values the views map to tessera.reshape, transpose
// and broadcast, Cast to tessera.cast, and Identity / inference-mode Dropout
// to nothing.
#include "compiler/import/FoldUtil.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"

#include <algorithm>
#include <cmath>

namespace tessera::onnximport {
namespace {

// The largest constant the importer evaluates (the importer's kMaxFoldElements).
constexpr int64_t kMaxConstantElements = int64_t(1) << 26;

bool castTo(const Tensor &in, int32_t onnxTo, Tensor &out, std::string &err) {
  DType dt;
  if (!dtypeFromOnnx(onnxTo, dt)) {
    err = std::string("unsupported cast target type ") + onnxTypeName(onnxTo);
    return false;
  }
  out = Tensor::zeros(dt, in.shape);
  for (int64_t k = 0; k < in.numel(); ++k) {
    if (in.dt == DType::F32)
      out.set(k, in.f[k]);
    else
      out.setI(k, in.i[k]);
  }
  // Narrow integer targets wrap like a C cast.
  if (dt == DType::I64) {
    for (auto &v : out.i) {
      switch (onnxTo) {
      case onnx::TensorProto::INT32: v = (int32_t)v; break;
      case onnx::TensorProto::INT16: v = (int16_t)v; break;
      case onnx::TensorProto::INT8: v = (int8_t)v; break;
      case onnx::TensorProto::UINT8: v = (uint8_t)v; break;
      case onnx::TensorProto::UINT16: v = (uint16_t)v; break;
      case onnx::TensorProto::UINT32: v = (uint32_t)v; break;
      default: break;
      }
    }
  }
  return true;
}

FoldResult foldIdentity(FoldNode &f) {
  const Tensor *x = f.input(0);
  f.out.push_back(*x);
  if (f.proto.op_type() == "Dropout" && f.proto.output_size() > 1) {
    f.out.push_back(Tensor::zeros(DType::Bool, x->shape));
    std::fill(f.out.back().i.begin(), f.out.back().i.end(), 1);
  }
  return FoldResult::Folded;
}

FoldResult foldShape(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size();
  int64_t s = attrInt(f.proto, "start", 0), e = attrInt(f.proto, "end", r);
  s = std::clamp<int64_t>(s < 0 ? s + r : s, 0, r);
  e = std::clamp<int64_t>(e < 0 ? e + r : e, 0, r);
  Tensor t = Tensor::zeros(DType::I64, {std::max<int64_t>(e - s, 0)});
  for (int64_t k = s; k < e; ++k)
    t.i[k - s] = x->shape[k];
  return f.folded(std::move(t));
}

FoldResult foldSize(FoldNode &f) {
  const Tensor *x = f.input(0);
  f.out.push_back(Tensor::scalarI(x->numel()));
  return FoldResult::Folded;
}

FoldResult foldCast(FoldNode &f) {
  const Tensor *x = f.input(0);
  const std::string &op = f.proto.op_type();
  int32_t to;
  if (op == "Cast") {
    to = (int32_t)attrInt(f.proto, "to", 0);
  } else {
    if (!f.need(1))
      return f.fail();
    to = f.input(1)->dt == DType::F32 ? onnx::TensorProto::FLOAT
         : f.input(1)->dt == DType::Bool ? onnx::TensorProto::BOOL
                                        : onnx::TensorProto::INT64;
  }
  Tensor t;
  if (!castTo(*x, to, t, f.err))
    return f.fail();
  return f.folded(std::move(t));
}

FoldResult foldReshape(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1))
    return f.fail();
  Shape s;
  if (!reshapeTarget(x->shape, f.input(1)->toInts(), attrInt(f.proto, "allowzero", 0) != 0, s, f.err))
    return f.fail();
  f.out.push_back(withShape(*x, s));
  return FoldResult::Folded;
}

FoldResult foldFlatten(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size(), axis = attrInt(f.proto, "axis", 1);
  if (axis < 0)
    axis += r;
  if (axis < 0 || axis > r) {
    f.err = "Flatten axis out of range";
    return f.fail();
  }
  int64_t a = 1, b = 1;
  for (int64_t d = 0; d < r; ++d)
    (d < axis ? a : b) *= x->shape[d];
  f.out.push_back(withShape(*x, {a, b}));
  return FoldResult::Folded;
}

FoldResult foldSqueeze(FoldNode &f) {
  const Tensor *x = f.input(0);
  const std::string &op = f.proto.op_type();
  std::vector<int64_t> axes;
  bool have = false;
  if (f.opset >= 13) {
    if (f.input(1)) {
      axes = f.input(1)->toInts();
      have = true;
    }
  } else {
    have = attrInts(f.proto, "axes", axes);
  }
  Shape s;
  if (op == "Unsqueeze") {
    if (!unsqueezeShape(x->shape, axes, s, f.err))
      return f.fail();
  } else if (!squeezeShape(x->shape, have ? &axes : nullptr, s, f.err)) {
    return f.fail();
  }
  f.out.push_back(withShape(*x, s));
  return FoldResult::Folded;
}

FoldResult foldTranspose(FoldNode &f) {
  const Tensor *x = f.input(0);
  int64_t r = (int64_t)x->shape.size();
  std::vector<int64_t> perm;
  if (!attrInts(f.proto, "perm", perm))
    for (int64_t d = r - 1; d >= 0; --d)
      perm.push_back(d);
  if ((int64_t)perm.size() != r) {
    f.err = "Transpose perm has the wrong length";
    return f.fail();
  }
  Shape st = stridesOf(x->shape), os(r), ost(r);
  for (int64_t d = 0; d < r; ++d) {
    if (perm[d] < 0 || perm[d] >= r) {
      f.err = "invalid Transpose perm";
      return f.fail();
    }
    os[d] = x->shape[perm[d]];
    ost[d] = st[perm[d]];
  }
  f.out.push_back(gatherElems(*x, os, stridedOffsets(os, 0, ost)));
  return FoldResult::Folded;
}

FoldResult foldExpand(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1))
    return f.fail();
  Shape s;
  if (!broadcast(x->shape, f.input(1)->toInts(), s, f.err))
    return f.fail();
  f.out.push_back(gatherElems(*x, s, bcastOffsets(x->shape, s)));
  return FoldResult::Folded;
}

FoldResult foldRange(FoldNode &f) {
  if (!f.need(0) || !f.need(1) || !f.need(2))
    return f.fail();
  const Tensor &s = *f.input(0), &l = *f.input(1), &d = *f.input(2);
  if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1) {
    f.err = "Range inputs must be scalars";
    return f.fail();
  }
  if (s.dt == DType::F32) {
    double a = s.f[0], lim = l.getF(0), dl = d.getF(0);
    if (dl == 0) {
      f.err = "Range delta is 0";
      return f.fail();
    }
    int64_t n = std::max<int64_t>((int64_t)std::ceil((lim - a) / dl), 0);
    Tensor t = Tensor::zeros(DType::F32, {n});
    for (int64_t k = 0; k < n; ++k)
      t.set(k, a + k * dl);
    f.out.push_back(t);
  } else {
    int64_t a = s.i[0], lim = l.getI(0), dl = d.getI(0);
    if (dl == 0) {
      f.err = "Range delta is 0";
      return f.fail();
    }
    int64_t n = std::max<int64_t>((int64_t)std::ceil((double)(lim - a) / (double)dl), 0);
    if (n > (int64_t(1) << 26)) {
      f.err = "Range too long";
      return f.fail();
    }
    Tensor t = Tensor::zeros(DType::I64, {n});
    for (int64_t k = 0; k < n; ++k)
      t.i[k] = a + k * dl;
    f.out.push_back(t);
  }
  return FoldResult::Folded;
}

FoldResult foldConstantOfShape(FoldNode &f) {
  const Tensor *x = f.input(0);
  Shape s = x->toInts();
  for (int64_t v : s)
    if (v < 0) {
      f.err = "negative dim in ConstantOfShape";
      return f.fail();
    }
  if (numElements(s) > kMaxConstantElements) { // checked before allocating: the shape comes from the file
    f.err = "ConstantOfShape of " + shapeStr(s) + " is too large to evaluate";
    return f.fail();
  }
  Tensor v = Tensor::zeros(DType::F32, {1});
  if (const auto *a = findAttr(f.proto, "value")) {
    if (!decodeTensor(a->t(), nullptr, 0, v, f.err)) {
      f.err = "value: " + f.err;
      return f.fail();
    }
    if (v.numel() != 1) {
      f.err = "value must hold one element, not " + std::to_string(v.numel());
      return f.fail();
    }
  }
  Tensor t = Tensor::zeros(v.dt, s);
  for (int64_t k = 0; k < t.numel(); ++k) {
    if (v.dt == DType::F32) t.f[k] = v.f[0];
    else t.i[k] = v.i[0];
  }
  return f.folded(std::move(t));
}

bool emitIdentity(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  if (!node.need(0))
    return false;
  if (op == "Dropout" && n.output_size() > 1 && imp.needed.count(n.output(1)))
    return node.fail("the Dropout mask output is not supported");
  node.out.push_back(node.arg(0)); // keeps the param name of a weight passed through
  return true;
}

bool emitCast(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  if (!node.need(0))
    return false;
  DType to;
  if (op == "Cast") {
    int32_t t = (int32_t)attrInt(n, "to", 0);
    if (!dtypeFromOnnx(t, to))
      return node.fail(std::string("unsupported cast target type ") + onnxTypeName(t));
  } else {
    if (!node.need(1))
      return false;
    to = node.arg(1)->dt;
  }
  if (to == node.arg(0)->dt) {
    node.out.push_back(node.arg(0));
    return true;
  }
  mlir::Value x = node.materialize(0);
  if (!x)
    return false;
  return node.push(imp.b.create<tt::CastOp>(imp.loc, imp.tensorType(Importer::shapeOf(x), to), x));
}

bool emitReshape(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  std::string err;
  if (!node.need(0))
    return false;
  const Shape &s0 = node.arg(0)->shape;
  Shape s;
  if (op == "Reshape") {
    std::vector<int64_t> spec;
    if (!node.need(1) || !node.constInts(1, spec))
      return false;
    if (!reshapeTarget(s0, spec, attrInt(n, "allowzero", 0) != 0, s, err))
      return node.fail(err);
  } else if (op == "Flatten") {
    int64_t r = (int64_t)s0.size(), axis = attrInt(n, "axis", 1);
    if (axis < 0)
      axis += r;
    if (axis < 0 || axis > r)
      return node.fail("axis out of range");
    int64_t a = 1, c = 1;
    for (int64_t d = 0; d < r; ++d)
      (d < axis ? a : c) *= s0[d];
    s = {a, c};
  } else {
    std::vector<int64_t> axes;
    bool have = false;
    if (node.opset() >= 13 && node.arg(1)) {
      if (!node.constInts(1, axes))
        return false;
      have = true;
    } else if (node.opset() < 13) {
      have = attrInts(n, "axes", axes);
    }
    bool ok = op == "Unsqueeze" ? unsqueezeShape(s0, axes, s, err)
                                : squeezeShape(s0, have ? &axes : nullptr, s, err);
    if (!ok)
      return node.fail(err);
  }
  mlir::Value x = node.materialize(0);
  return x && node.push(imp.reshape(x, s));
}

bool emitTranspose(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  if (!node.need(0))
    return false;
  int64_t r = node.rank(0);
  std::vector<int64_t> perm;
  if (!attrInts(n, "perm", perm))
    for (int64_t d = r - 1; d >= 0; --d)
      perm.push_back(d);
  std::vector<bool> seen(r, false);
  if ((int64_t)perm.size() != r)
    return node.fail("perm has the wrong length");
  for (int64_t &p : perm) {
    if (!normAxis(p, r, p, err) || seen[p])
      return node.fail("invalid perm");
    seen[p] = true;
  }
  mlir::Value x = node.materialize(0);
  return x && node.push(imp.transpose(x, perm));
}

bool emitExpand(Node &node) {
  Importer &imp = node.imp;
  std::string err;
  std::vector<int64_t> spec;
  if (!node.need(0) || !node.need(1) || !node.constInts(1, spec))
    return false;
  Shape s;
  if (!broadcast(node.arg(0)->shape, spec, s, err))
    return node.fail(err);
  mlir::Value x = node.materialize(0);
  return x && node.push(imp.broadcastTo(x, s));
}

bool emitConstantOfShape(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  std::vector<int64_t> s;
  if (!node.need(0) || !node.constInts(0, s))
    return false;
  Tensor v = Tensor::zeros(DType::F32, {});
  if (const auto *a = findAttr(n, "value")) {
    if (!decodeTensor(a->t(), nullptr, 0, v, err))
      return node.fail("value: " + err);
    v.shape = {};
  }
  mlir::Value c = imp.makeConst(v);
  return c && node.push(imp.broadcastTo(c, s));
}

bool emitConstant(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  if (n.output_size() != 1 || n.attribute_size() != 1)
    return node.fail("a Constant needs one output and one value attribute");
  const onnx::AttributeProto &a = n.attribute(0);
  if (a.name() == "value") {
    ValP v = imp.tensorVal(a.t(), n.output(0));
    if (!v || !imp.checkExternal(a.t(), "Constant '" + n.output(0) + "'"))
      return false;
    node.out.push_back(v);
  } else if (a.name() == "value_float" || a.name() == "value_int") {
    Tensor t = Tensor::zeros(a.name() == "value_int" ? DType::I64 : DType::F32, {});
    if (a.name() == "value_int")
      t.i[0] = a.i();
    else
      t.set(0, a.f());
    node.out.push_back(imp.constVal(t));
  } else if (a.name() == "value_floats" || a.name() == "value_ints") {
    bool ints = a.name() == "value_ints";
    int64_t len = ints ? a.ints_size() : a.floats_size();
    Tensor t = Tensor::zeros(ints ? DType::I64 : DType::F32, {len});
    for (int64_t k = 0; k < len; ++k) {
      if (ints)
        t.i[k] = a.ints(k);
      else
        t.set(k, a.floats(k));
    }
    node.out.push_back(imp.constVal(t));
  } else {
    return node.fail("unsupported Constant attribute '" + a.name() + "'");
  }
  return true;
}

/// Elements an Expand or ConstantOfShape would fold to (-1 when unknown).
int64_t expandedSize(Importer &imp, std::vector<ValP> &in) {
  ValP s = in.size() > 1 ? in[1] : nullptr;
  if (in.empty() || !in[0])
    return -1;
  if (!s || !imp.dataOf(*s, "shape"))
    return -1;
  Shape sh = s->data->toInts();
  std::string err;
  if (!broadcast(in[0]->shape, sh, sh, err))
    return -1;
  return numElements(sh);
}

int64_t filledSize(Importer &imp, std::vector<ValP> &in) {
  ValP s = in.empty() ? nullptr : in[0];
  if (!s || !imp.dataOf(*s, "shape"))
    return -1;
  return numElements(s->data->toInts());
}

} // namespace

void populateShapeOps(OpRegistry &r) {
  r.on("Shape", 13).withFold(foldShape).shapesOnly();
  r.on("Size", 13).withFold(foldSize).shapesOnly();
  r.on("Reshape", 13).withFold(foldReshape).withEmit(emitReshape).withTargetShape(TargetShape::reshape);
  r.on("Flatten", 13).withFold(foldFlatten).withEmit(emitReshape);
  r.on("Squeeze", 13).withFold(foldSqueeze).withEmit(emitReshape);
  r.on("Unsqueeze", 13).withFold(foldSqueeze).withEmit(emitReshape);
  r.on("Transpose", 13).withFold(foldTranspose).withEmit(emitTranspose);
  r.on("Expand", 13)
      .withFold(foldExpand)
      .withEmit(emitExpand)
      .boundedFold(expandedSize)
      .withTargetShape(TargetShape::expand);
  r.on("ConstantOfShape", 13).withFold(foldConstantOfShape).withEmit(emitConstantOfShape).boundedFold(filledSize);
  r.on("Range", 13).withFold(foldRange);
  r.on("Constant", 13).withEmit(emitConstant);
  r.on("Identity", 13).withFold(foldIdentity).withEmit(emitIdentity);
  r.on("Dropout", 13).withFold(foldIdentity).withEmit(emitIdentity);
  r.on("Cast", 13).withFold(foldCast).withEmit(emitCast);
  r.on("CastLike", 13).withFold(foldCast).withEmit(emitCast);
}

} // namespace tessera::onnximport
