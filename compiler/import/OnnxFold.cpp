// OnnxFold.cpp - CPU evaluation of ONNX nodes whose inputs are all constant
// (shape arithmetic, RoPE tables, causal masks), and the ONNX shape rules the
// importer shares with it.
#include "compiler/import/OnnxTensor.h"

#include "runtime/weights/OnnxTypes.h"

#include "Tessera/IR/TesseraOps.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <functional>
#include <map>
#include <limits>
#include <set>

namespace tessera::onnximport {

//===----------------------------------------------------------------------===//
// Basics
//===----------------------------------------------------------------------===//

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "float";
  case DType::I64: return "int";
  case DType::Bool: return "bool";
  }
  return "?";
}

// The largest constant the importer evaluates (the importer's kMaxFoldElements).
constexpr int64_t kMaxConstantElements = int64_t(1) << 26;

int64_t numElements(const Shape &s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) // a shape from the file: saturate, the callers' size checks refuse it
      return INT64_MAX;
  return n;
}

std::string shapeStr(const Shape &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

bool dtypeFromOnnx(int32_t t, DType &out) {
  switch (t) {
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
  case onnx::TensorProto::DOUBLE:
    out = DType::F32;
    return true;
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::UINT16:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT32:
  case onnx::TensorProto::UINT64:
    out = DType::I64;
    return true;
  case onnx::TensorProto::BOOL:
    out = DType::Bool;
    return true;
  default:
    return false;
  }
}

bool isOnnxFloat(int32_t t) {
  DType d;
  return dtypeFromOnnx(t, d) && d == DType::F32;
}

const char *onnxTypeName(int32_t t) { return ::tessera::weights::onnxDataTypeName(t); }

Tensor Tensor::zeros(DType dt, Shape shape) {
  Tensor t;
  t.dt = dt;
  t.shape = std::move(shape);
  if (dt == DType::F32)
    t.f.assign(t.numel(), 0.0);
  else
    t.i.assign(t.numel(), 0);
  return t;
}

Tensor Tensor::scalarI(int64_t v) {
  Tensor t = zeros(DType::I64, {});
  t.i[0] = v;
  return t;
}

int64_t Tensor::saturatingInt(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return (int64_t)v;
}

double Tensor::roundToFloat(double v) {
  if (std::isfinite(v) && std::fabs(v) > (double)std::numeric_limits<float>::max()) {
    // Beyond the largest float: what round-to-nearest gives (max or inf).
    double top = (double)std::numeric_limits<float>::max() * (1.0 + 0x1p-25);
    return std::fabs(v) >= top ? std::copysign(INFINITY, v) : std::copysign((double)std::numeric_limits<float>::max(), v);
  }
  return (double)(float)v;
}

void Tensor::set(int64_t k, double v) {
  switch (dt) {
  case DType::F32: f[k] = roundToFloat(v); break;
  case DType::I64:
    i[k] = saturatingInt(v);
    break;
  case DType::Bool: i[k] = v != 0.0; break;
  }
}

void Tensor::setI(int64_t k, int64_t v) {
  switch (dt) {
  case DType::F32: f[k] = roundToFloat(v); break;
  case DType::I64: i[k] = v; break;
  case DType::Bool: i[k] = v != 0; break;
  }
}

std::vector<int64_t> Tensor::toInts() const {
  std::vector<int64_t> r(numel());
  for (int64_t k = 0; k < numel(); ++k)
    r[k] = getI(k);
  return r;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

const onnx::AttributeProto *findAttr(const onnx::NodeProto &n, const std::string &name) {
  for (const auto &a : n.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t attrInt(const onnx::NodeProto &n, const std::string &name, int64_t dflt) {
  const auto *a = findAttr(n, name);
  return a ? a->i() : dflt;
}

float attrFloat(const onnx::NodeProto &n, const std::string &name, float dflt) {
  const auto *a = findAttr(n, name);
  return a ? a->f() : dflt;
}

std::string attrString(const onnx::NodeProto &n, const std::string &name, const std::string &dflt) {
  const auto *a = findAttr(n, name);
  return a ? a->s() : dflt;
}

bool attrInts(const onnx::NodeProto &n, const std::string &name, std::vector<int64_t> &out) {
  const auto *a = findAttr(n, name);
  if (!a)
    return false;
  out.assign(a->ints().begin(), a->ints().end());
  return true;
}

//===----------------------------------------------------------------------===//
// Shape rules
//===----------------------------------------------------------------------===//

bool normAxis(int64_t axis, int64_t rank, int64_t &out, std::string &err) {
  if (axis < -rank || axis >= rank) {
    err = "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank);
    return false;
  }
  out = axis < 0 ? axis + rank : axis;
  return true;
}

bool broadcast(const Shape &a, const Shape &b, Shape &out, std::string &err) {
  for (const Shape *s : {&a, &b})
    for (int64_t d : *s)
      if (d < 0) {
        err = "invalid shape " + shapeStr(*s);
        return false;
      }
  auto r = mlir::tessera::broadcastShapes(a, b); // the dialect's rule, shared by every stage
  if (mlir::failed(r)) {
    err = "shapes " + shapeStr(a) + " and " + shapeStr(b) + " do not broadcast";
    return false;
  }
  out.assign(r->begin(), r->end());
  return true;
}

bool reshapeTarget(const Shape &in, const std::vector<int64_t> &spec, bool allowZero, Shape &out,
                   std::string &err) {
  Shape o(spec.size());
  int64_t inferAt = -1, known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == -1) {
      if (inferAt >= 0) {
        err = "reshape target " + shapeStr(spec) + " has more than one -1";
        return false;
      }
      inferAt = (int64_t)i;
      continue;
    }
    if (d == 0 && !allowZero) {
      if (i >= in.size()) {
        err = "reshape target " + shapeStr(spec) + " copies dim " + std::to_string(i) +
              " of a rank-" + std::to_string(in.size()) + " input";
        return false;
      }
      d = in[i];
    }
    if (d < 0) {
      err = "invalid reshape target " + shapeStr(spec);
      return false;
    }
    o[i] = d;
    if (__builtin_mul_overflow(known, d, &known)) {
      err = "reshape target " + shapeStr(spec) + " is too large";
      return false;
    }
  }
  int64_t total = numElements(in);
  if (inferAt >= 0) {
    if (known == 0 || total % known != 0) {
      err = "cannot reshape " + shapeStr(in) + " to " + shapeStr(spec);
      return false;
    }
    o[inferAt] = total / known;
  } else if (known != total) {
    err = "cannot reshape " + shapeStr(in) + " to " + shapeStr(spec);
    return false;
  }
  out = std::move(o);
  return true;
}

bool unsqueezeShape(const Shape &in, std::vector<int64_t> axes, Shape &out, std::string &err) {
  int64_t r = (int64_t)(in.size() + axes.size());
  std::vector<bool> isNew(r, false);
  for (int64_t &a : axes) {
    if (!normAxis(a, r, a, err))
      return false;
    if (isNew[a]) {
      err = "repeated unsqueeze axis";
      return false;
    }
    isNew[a] = true;
  }
  Shape o;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i)
    o.push_back(isNew[i] ? 1 : in[k++]);
  out = std::move(o);
  return true;
}

bool squeezeShape(const Shape &in, const std::vector<int64_t> *axes, Shape &out, std::string &err) {
  int64_t r = (int64_t)in.size();
  std::vector<bool> drop(r, false);
  if (axes) {
    for (int64_t a : *axes) {
      int64_t n;
      if (!normAxis(a, r, n, err))
        return false;
      if (in[n] != 1) {
        err = "cannot squeeze dim " + std::to_string(n) + " of size " + std::to_string(in[n]);
        return false;
      }
      drop[n] = true;
    }
  } else {
    for (int64_t i = 0; i < r; ++i)
      drop[i] = in[i] == 1;
  }
  Shape o;
  for (int64_t i = 0; i < r; ++i)
    if (!drop[i])
      o.push_back(in[i]);
  out = std::move(o);
  return true;
}

bool sliceParams(const Shape &in, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                 const std::vector<int64_t> *axes, const std::vector<int64_t> *steps,
                 std::vector<SliceDim> &out, std::string &err) {
  int64_t r = (int64_t)in.size();
  out.assign(r, SliceDim());
  for (int64_t d = 0; d < r; ++d)
    out[d] = SliceDim{0, in[d], 1, in[d]};
  if (starts.size() != ends.size() || (axes && axes->size() != starts.size()) ||
      (steps && steps->size() != starts.size())) {
    err = "slice starts/ends/axes/steps have different lengths";
    return false;
  }
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = axes ? (*axes)[i] : (int64_t)i;
    if (!normAxis(axis, r, axis, err))
      return false;
    if (seen[axis]) {
      err = "repeated slice axis";
      return false;
    }
    seen[axis] = true;
    int64_t dim = in[axis], step = steps ? (*steps)[i] : 1;
    if (step == 0) {
      err = "slice step is 0";
      return false;
    }
    int64_t s = starts[i], e = ends[i];
    if (s < 0)
      s = s < -dim ? -1 : s + dim;
    if (e < 0)
      e = e < -dim ? -1 : e + dim;
    int64_t len;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      len = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
    }
    out[axis] = SliceDim{s, e, step, len};
  }
  return true;
}

bool splitSizes(int64_t dim, const std::vector<int64_t> *split, int64_t numOutputs,
                std::vector<int64_t> &out, std::string &err) {
  if (split) {
    int64_t total = 0;
    for (int64_t s : *split) {
      if (s < 0) {
        err = "negative split size";
        return false;
      }
      total += s;
    }
    if (total != dim || (int64_t)split->size() != numOutputs) {
      err = "split sizes do not add up to dim " + std::to_string(dim);
      return false;
    }
    out = *split;
    return true;
  }
  if (numOutputs < 1) {
    err = "split has no outputs";
    return false;
  }
  // Equal pieces; the last one smaller when dim is not divisible (opset 18).
  int64_t piece = (dim + numOutputs - 1) / numOutputs;
  out.clear();
  int64_t left = dim;
  for (int64_t k = 0; k < numOutputs; ++k) {
    int64_t s = std::min(piece, left);
    out.push_back(s);
    left -= s;
  }
  if (left != 0) {
    err = "cannot split dim " + std::to_string(dim) + " into " + std::to_string(numOutputs);
    return false;
  }
  return true;
}

bool reduceAxes(const onnx::NodeProto &n, int64_t rank, const Tensor *axesInput,
                std::vector<int64_t> &axes, bool &noop, std::string &err) {
  std::vector<int64_t> raw;
  bool given = false;
  if (axesInput) {
    raw = axesInput->toInts();
    given = true;
  } else if (attrInts(n, "axes", raw)) {
    given = true;
  }
  noop = false;
  axes.clear();
  if (!given || raw.empty()) {
    if (attrInt(n, "noop_with_empty_axes", 0)) {
      noop = true;
      return true;
    }
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
    return true;
  }
  std::set<int64_t> s;
  for (int64_t a : raw) {
    int64_t x;
    if (!normAxis(a, rank, x, err))
      return false;
    s.insert(x);
  }
  axes.assign(s.begin(), s.end());
  return true;
}

//===----------------------------------------------------------------------===//
// Folding helpers
//===----------------------------------------------------------------------===//
namespace {

Shape stridesOf(const Shape &s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

/// Flat input offsets of every element of an output of shape `out`, where the
/// input element of output position p is base + sum(p[d] * strides[d]).
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

/// Offsets into `in` for every element of `out`, `in` numpy-broadcast to `out`.
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

double applyUnary(const std::string &op, double x, bool &ok) {
  ok = true;
  if (op == "Neg") return -x;
  if (op == "Abs") return std::fabs(x);
  if (op == "Sqrt") return std::sqrt(x);
  if (op == "Reciprocal") return 1.0 / x;
  if (op == "Exp") return std::exp(x);
  if (op == "Log") return std::log(x);
  if (op == "Cos") return std::cos(x);
  if (op == "Sin") return std::sin(x);
  if (op == "Tanh") return std::tanh(x);
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "Relu") return x > 0 ? x : 0;
  if (op == "Floor") return std::floor(x);
  if (op == "Ceil") return std::ceil(x);
  if (op == "Round") return std::nearbyint(x);
  if (op == "Erf") return std::erf(x);
  if (op == "Sign") return x > 0 ? 1 : (x < 0 ? -1 : 0);
  ok = false;
  return 0;
}

int64_t floorMod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}

// Arithmetic of two elements in the class of the result.
bool applyBinary(const std::string &op, DType dt, const Tensor &a, int64_t ia, const Tensor &b,
                 int64_t ib, bool fmod, Tensor &out, int64_t k, std::string &err) {
  if (dt == DType::F32) {
    double x = a.getF(ia), y = b.getF(ib), r;
    if (op == "Add") r = x + y;
    else if (op == "Sub") r = x - y;
    else if (op == "Mul") r = x * y;
    else if (op == "Div") r = x / y;
    else if (op == "Pow") r = std::pow(x, y);
    else if (op == "Max") r = std::max(x, y);
    else if (op == "Min") r = std::min(x, y);
    else if (op == "Mod") r = fmod ? std::fmod(x, y) : x - std::floor(x / y) * y;
    else return false;
    out.set(k, Tensor::roundToFloat(r));
    return true;
  }
  int64_t x = a.getI(ia), y = b.getI(ib), r;
  if (op == "Add") r = (int64_t)((uint64_t)x + (uint64_t)y);
  else if (op == "Sub") r = (int64_t)((uint64_t)x - (uint64_t)y);
  else if (op == "Mul") r = (int64_t)((uint64_t)x * (uint64_t)y);
  else if (op == "Div" || op == "Mod") {
    if (y == 0) {
      err = "integer division by zero";
      return false;
    }
    if (op == "Div") r = x / y;
    else r = fmod ? x % y : floorMod(x, y);
  } else if (op == "Pow") r = (int64_t)std::pow((double)x, b.getF(ib));
  else if (op == "Max") r = std::max(x, y);
  else if (op == "Min") r = std::min(x, y);
  else return false;
  out.setI(k, r);
  return true;
}

bool isCompare(const std::string &op) {
  return op == "Equal" || op == "Less" || op == "LessOrEqual" || op == "Greater" ||
         op == "GreaterOrEqual" || op == "And" || op == "Or" || op == "Xor";
}

bool compare(const std::string &op, const Tensor &a, int64_t ia, const Tensor &b, int64_t ib) {
  bool useF = a.dt == DType::F32 || b.dt == DType::F32;
  if (useF) {
    double x = a.getF(ia), y = b.getF(ib);
    if (op == "Equal") return x == y;
    if (op == "Less") return x < y;
    if (op == "LessOrEqual") return x <= y;
    if (op == "Greater") return x > y;
    if (op == "GreaterOrEqual") return x >= y;
    if (op == "And") return x != 0 && y != 0;
    if (op == "Or") return x != 0 || y != 0;
    return (x != 0) != (y != 0);
  }
  int64_t x = a.getI(ia), y = b.getI(ib);
  if (op == "Equal") return x == y;
  if (op == "Less") return x < y;
  if (op == "LessOrEqual") return x <= y;
  if (op == "Greater") return x > y;
  if (op == "GreaterOrEqual") return x >= y;
  if (op == "And") return x && y;
  if (op == "Or") return x || y;
  return (x != 0) != (y != 0);
}

bool binaryFold(const std::string &op, const Tensor &a, const Tensor &b, bool fmod, Tensor &out,
                std::string &err) {
  Shape s;
  if (!broadcast(a.shape, b.shape, s, err))
    return false;
  auto ia = bcastOffsets(a.shape, s), ib = bcastOffsets(b.shape, s);
  if (isCompare(op)) {
    out = Tensor::zeros(DType::Bool, s);
    for (size_t k = 0; k < ia.size(); ++k)
      out.i[k] = compare(op, a, ia[k], b, ib[k]);
    return true;
  }
  DType dt = a.dt == DType::Bool ? DType::I64 : a.dt;
  out = Tensor::zeros(dt, s);
  for (size_t k = 0; k < ia.size(); ++k)
    if (!applyBinary(op, dt, a, ia[k], b, ib[k], fmod, out, (int64_t)k, err)) {
      if (err.empty())
        err = "cannot evaluate " + op;
      return false;
    }
  return true;
}

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

bool matmulFold(const Tensor &a0, const Tensor &b0, Tensor &out, std::string &err) {
  Tensor a = a0, b = b0;
  bool dropM = false, dropN = false;
  if (a.shape.empty() || b.shape.empty()) {
    err = "MatMul of a scalar";
    return false;
  }
  if (a.shape.size() == 1) {
    a.shape.insert(a.shape.begin(), 1);
    dropM = true;
  }
  if (b.shape.size() == 1) {
    b.shape.push_back(1);
    dropN = true;
  }
  int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back();
  int64_t K2 = b.shape[b.shape.size() - 2], N = b.shape.back();
  if (K != K2) {
    err = "MatMul contraction sizes differ: " + shapeStr(a0.shape) + " x " + shapeStr(b0.shape);
    return false;
  }
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2), batch;
  if (!broadcast(ab, bb, batch, err))
    return false;
  auto ia = bcastOffsets(ab, batch), ib = bcastOffsets(bb, batch);
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  DType dt = a.dt == DType::F32 || b.dt == DType::F32 ? DType::F32 : DType::I64;
  out = Tensor::zeros(dt, os);
  for (size_t p = 0; p < ia.size(); ++p)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t k0 = (int64_t)p * M * N + m * N + n;
        if (dt == DType::F32) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += a.getF(ia[p] * M * K + m * K + k) * b.getF(ib[p] * K * N + k * N + n);
          out.set(k0, acc);
        } else {
          int64_t acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += a.getI(ia[p] * M * K + m * K + k) * b.getI(ib[p] * K * N + k * N + n);
          out.setI(k0, acc);
        }
      }
  Shape fs = out.shape;
  if (dropN)
    fs.erase(fs.end() - 1);
  if (dropM)
    fs.erase(fs.end() - (dropN ? 1 : 2));
  out.shape = fs;
  return true;
}

bool reduceFold(const std::string &op, const Tensor &in, const std::vector<int64_t> &axes,
                bool keepdims, Tensor &out) {
  int64_t r = (int64_t)in.shape.size();
  std::vector<bool> red(r, false);
  for (int64_t a : axes)
    red[a] = true;
  Shape outKeep(r);
  for (int64_t d = 0; d < r; ++d)
    outKeep[d] = red[d] ? 1 : in.shape[d];
  Shape st = stridesOf(outKeep), mapSt(r);
  for (int64_t d = 0; d < r; ++d)
    mapSt[d] = red[d] ? 0 : st[d];
  auto map = stridedOffsets(in.shape, 0, mapSt);
  int64_t n = numElements(outKeep), cnt = n ? in.numel() / std::max<int64_t>(n, 1) : 0;
  bool isInt = in.dt != DType::F32;
  std::vector<double> acc(n);
  double init = 0;
  if (op == "ReduceMax") init = -std::numeric_limits<double>::infinity();
  else if (op == "ReduceMin") init = std::numeric_limits<double>::infinity();
  else if (op == "ReduceProd") init = 1;
  std::fill(acc.begin(), acc.end(), init);
  for (size_t k = 0; k < map.size(); ++k) {
    double x = in.getF((int64_t)k);
    double &a = acc[map[k]];
    if (op == "ReduceMax") a = std::max(a, x);
    else if (op == "ReduceMin") a = std::min(a, x);
    else if (op == "ReduceProd") a *= x;
    else if (op == "ReduceSumSquare") a += x * x;
    else a += x;
  }
  Shape os;
  for (int64_t d = 0; d < r; ++d)
    if (!red[d] || keepdims)
      os.push_back(outKeep[d]);
  out = Tensor::zeros(isInt ? DType::I64 : DType::F32, os);
  for (int64_t k = 0; k < n; ++k) {
    double v = acc[k];
    if (op == "ReduceMean")
      v = cnt ? v / cnt : 0;
    if (isInt && op == "ReduceMean")
      out.setI(k, (int64_t)v);
    else
      out.set(k, v);
  }
  return true;
}

// Einsum without ellipsis, e.g. "i,j->ij" (RoPE frequencies in older exports).
bool einsumFold(std::string eq, const std::vector<const Tensor *> &in, Tensor &out, std::string &err) {
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (eq.find("...") != std::string::npos) {
    err = "Einsum with '...' is not supported";
    return false;
  }
  std::string lhs = eq, rhs;
  size_t arrow = eq.find("->");
  bool explicitOut = arrow != std::string::npos;
  if (explicitOut) {
    lhs = eq.substr(0, arrow);
    rhs = eq.substr(arrow + 2);
  }
  std::vector<std::string> terms;
  size_t start = 0;
  for (size_t k = 0; k <= lhs.size(); ++k)
    if (k == lhs.size() || lhs[k] == ',') {
      terms.push_back(lhs.substr(start, k - start));
      start = k + 1;
    }
  if (terms.size() != in.size()) {
    err = "Einsum equation '" + eq + "' does not match the number of inputs";
    return false;
  }
  std::map<char, int64_t> size, count;
  for (size_t t = 0; t < terms.size(); ++t) {
    if (!in[t] || terms[t].size() != in[t]->shape.size()) {
      err = "Einsum term '" + terms[t] + "' does not match its input's rank";
      return false;
    }
    for (size_t d = 0; d < terms[t].size(); ++d) {
      char c = terms[t][d];
      auto it = size.find(c);
      if (it != size.end() && it->second != in[t]->shape[d]) {
        err = std::string("Einsum index '") + c + "' has inconsistent sizes";
        return false;
      }
      size[c] = in[t]->shape[d];
      count[c]++;
    }
  }
  if (!explicitOut)
    for (auto &[c, n] : count)
      if (n == 1)
        rhs += c;
  std::string letters;
  for (auto &[c, n] : size)
    letters += c;
  Shape os;
  for (char c : rhs) {
    if (!size.count(c)) {
      err = std::string("Einsum output index '") + c + "' is not an input index";
      return false;
    }
    os.push_back(size[c]);
  }
  int64_t total = 1;
  for (char c : letters)
    total *= size[c];
  if (total > (int64_t(1) << 26)) {
    err = "Einsum too large to evaluate";
    return false;
  }
  bool isF = false;
  for (const Tensor *t : in)
    isF |= t->dt == DType::F32;
  std::vector<double> acc(numElements(os), 0.0);
  std::vector<int64_t> pos(letters.size(), 0);
  std::map<char, size_t> at;
  for (size_t k = 0; k < letters.size(); ++k)
    at[letters[k]] = k;
  for (int64_t e = 0; e < total; ++e) {
    double prod = 1;
    for (size_t t = 0; t < terms.size(); ++t) {
      int64_t off = 0;
      for (size_t d = 0; d < terms[t].size(); ++d)
        off = off * in[t]->shape[d] + pos[at[terms[t][d]]];
      prod *= in[t]->getF(off);
    }
    int64_t o = 0;
    for (size_t d = 0; d < rhs.size(); ++d)
      o = o * os[d] + pos[at[rhs[d]]];
    acc[o] += prod;
    for (int64_t k = (int64_t)letters.size() - 1; k >= 0; --k) {
      if (++pos[k] < size[letters[k]])
        break;
      pos[k] = 0;
    }
  }
  out = Tensor::zeros(isF ? DType::F32 : DType::I64, os);
  for (size_t k = 0; k < acc.size(); ++k)
    out.set(k, acc[k]);
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// foldNode
//===----------------------------------------------------------------------===//

static const std::set<std::string> kFoldable = {
    "Identity", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Range",
    "Cast", "CastLike", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
    "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Not",
    "Where", "Expand", "ConstantOfShape", "Trilu", "CumSum", "Reshape", "Flatten", "Transpose",
    "Neg", "Abs", "Sqrt", "Reciprocal", "Exp", "Log", "Cos", "Sin", "Tanh", "Sigmoid", "Relu",
    "Floor", "Ceil", "Round", "Sign", "Erf", "MatMul", "Split", "Tile", "ReduceMean",
    "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "Dropout", "Einsum",
    "GatherND", "IsNaN", "IsInf"};

bool isFoldableOp(const std::string &op) { return kFoldable.count(op) != 0; }

FoldResult foldNode(const onnx::NodeProto &node, int64_t opset, const std::vector<const Tensor *> &in,
                    std::vector<Tensor> &out, std::string &err) {
  const std::string &op = node.op_type();
  if (!isFoldableOp(op))
    return FoldResult::NotFoldable;
  auto input = [&](size_t k) -> const Tensor * { return k < in.size() ? in[k] : nullptr; };
  auto need = [&](size_t k) -> bool {
    if (!input(k)) {
      err = "missing input " + std::to_string(k);
      return false;
    }
    return true;
  };
  auto fail = [&]() { return FoldResult::Error; };
  out.clear();
  if (!need(0) && op != "Range")
    return fail();
  const Tensor *x = input(0);

  if (op == "Identity" || op == "Dropout") {
    out.push_back(*x);
    if (op == "Dropout" && node.output_size() > 1) {
      out.push_back(Tensor::zeros(DType::Bool, x->shape));
      std::fill(out.back().i.begin(), out.back().i.end(), 1);
    }
    return FoldResult::Folded;
  }
  if (op == "Shape") {
    int64_t r = (int64_t)x->shape.size();
    int64_t s = attrInt(node, "start", 0), e = attrInt(node, "end", r);
    s = std::clamp<int64_t>(s < 0 ? s + r : s, 0, r);
    e = std::clamp<int64_t>(e < 0 ? e + r : e, 0, r);
    Tensor t = Tensor::zeros(DType::I64, {std::max<int64_t>(e - s, 0)});
    for (int64_t k = s; k < e; ++k)
      t.i[k - s] = x->shape[k];
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Size") {
    out.push_back(Tensor::scalarI(x->numel()));
    return FoldResult::Folded;
  }
  if (op == "Cast" || op == "CastLike") {
    int32_t to;
    if (op == "Cast") {
      to = (int32_t)attrInt(node, "to", 0);
    } else {
      if (!need(1))
        return fail();
      to = input(1)->dt == DType::F32 ? onnx::TensorProto::FLOAT
           : input(1)->dt == DType::Bool ? onnx::TensorProto::BOOL
                                          : onnx::TensorProto::INT64;
    }
    Tensor t;
    if (!castTo(*x, to, t, err))
      return fail();
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Not") {
    Tensor t = Tensor::zeros(DType::Bool, x->shape);
    for (int64_t k = 0; k < x->numel(); ++k)
      t.i[k] = x->getF(k) == 0;
    out.push_back(t);
    return FoldResult::Folded;
  }
  {
    bool ok;
    applyUnary(op, 0.0, ok);
    if (ok) {
      Tensor t = Tensor::zeros(x->dt == DType::Bool ? DType::I64 : x->dt, x->shape);
      for (int64_t k = 0; k < x->numel(); ++k) {
        if (t.dt == DType::I64 && (op == "Neg" || op == "Abs" || op == "Relu" || op == "Sign")) {
          int64_t v = x->getI(k);
          t.i[k] = op == "Neg" ? -v : op == "Abs" ? std::llabs(v) : op == "Relu" ? std::max<int64_t>(v, 0)
                                                                                 : (v > 0) - (v < 0);
        } else {
          t.set(k, Tensor::roundToFloat(applyUnary(op, x->getF(k), ok)));
        }
      }
      out.push_back(t);
      return FoldResult::Folded;
    }
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Mod" ||
      isCompare(op)) {
    if (!need(1))
      return fail();
    Tensor t;
    if (!binaryFold(op, *x, *input(1), attrInt(node, "fmod", 0) != 0, t, err))
      return fail();
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Max" || op == "Min" || op == "Sum" || op == "Mean") {
    Tensor acc = *x;
    std::string bop = op == "Sum" || op == "Mean" ? "Add" : op;
    for (size_t k = 1; k < in.size(); ++k) {
      if (!need(k))
        return fail();
      Tensor t;
      if (!binaryFold(bop, acc, *input(k), false, t, err))
        return fail();
      acc = std::move(t);
    }
    if (op == "Mean") {
      Tensor n = Tensor::zeros(acc.dt, {});
      n.setI(0, (int64_t)in.size());
      Tensor t;
      if (!binaryFold("Div", acc, n, false, t, err))
        return fail();
      acc = std::move(t);
    }
    out.push_back(acc);
    return FoldResult::Folded;
  }
  if (op == "Where") {
    if (!need(1) || !need(2))
      return fail();
    const Tensor &c = *x, &a = *input(1), &b = *input(2);
    Shape s;
    if (!broadcast(c.shape, a.shape, s, err) || !broadcast(s, b.shape, s, err))
      return fail();
    auto ic = bcastOffsets(c.shape, s), ia = bcastOffsets(a.shape, s), ib = bcastOffsets(b.shape, s);
    DType dt = a.dt == DType::F32 || b.dt == DType::F32 ? DType::F32 : a.dt;
    Tensor t = Tensor::zeros(dt, s);
    for (size_t k = 0; k < ic.size(); ++k) {
      bool cv = c.getF(ic[k]) != 0;
      if (dt == DType::F32) t.set(k, cv ? a.getF(ia[k]) : b.getF(ib[k]));
      else t.setI(k, cv ? a.getI(ia[k]) : b.getI(ib[k]));
    }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Reshape") {
    if (!need(1))
      return fail();
    Shape s;
    if (!reshapeTarget(x->shape, input(1)->toInts(), attrInt(node, "allowzero", 0) != 0, s, err))
      return fail();
    out.push_back(withShape(*x, s));
    return FoldResult::Folded;
  }
  if (op == "Flatten") {
    int64_t r = (int64_t)x->shape.size(), axis = attrInt(node, "axis", 1);
    if (axis < 0)
      axis += r;
    if (axis < 0 || axis > r) {
      err = "Flatten axis out of range";
      return fail();
    }
    int64_t a = 1, b = 1;
    for (int64_t d = 0; d < r; ++d)
      (d < axis ? a : b) *= x->shape[d];
    out.push_back(withShape(*x, {a, b}));
    return FoldResult::Folded;
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    std::vector<int64_t> axes;
    bool have = false;
    if (opset >= 13) {
      if (input(1)) {
        axes = input(1)->toInts();
        have = true;
      }
    } else {
      have = attrInts(node, "axes", axes);
    }
    Shape s;
    if (op == "Unsqueeze") {
      if (!unsqueezeShape(x->shape, axes, s, err))
        return fail();
    } else if (!squeezeShape(x->shape, have ? &axes : nullptr, s, err)) {
      return fail();
    }
    out.push_back(withShape(*x, s));
    return FoldResult::Folded;
  }
  if (op == "Transpose") {
    int64_t r = (int64_t)x->shape.size();
    std::vector<int64_t> perm;
    if (!attrInts(node, "perm", perm))
      for (int64_t d = r - 1; d >= 0; --d)
        perm.push_back(d);
    if ((int64_t)perm.size() != r) {
      err = "Transpose perm has the wrong length";
      return fail();
    }
    Shape st = stridesOf(x->shape), os(r), ost(r);
    for (int64_t d = 0; d < r; ++d) {
      if (perm[d] < 0 || perm[d] >= r) {
        err = "invalid Transpose perm";
        return fail();
      }
      os[d] = x->shape[perm[d]];
      ost[d] = st[perm[d]];
    }
    out.push_back(gatherElems(*x, os, stridedOffsets(os, 0, ost)));
    return FoldResult::Folded;
  }
  if (op == "Expand") {
    if (!need(1))
      return fail();
    Shape s;
    if (!broadcast(x->shape, input(1)->toInts(), s, err))
      return fail();
    out.push_back(gatherElems(*x, s, bcastOffsets(x->shape, s)));
    return FoldResult::Folded;
  }
  if (op == "Tile") {
    if (!need(1))
      return fail();
    auto rep = input(1)->toInts();
    int64_t r = (int64_t)x->shape.size();
    if ((int64_t)rep.size() != r) {
      err = "Tile repeats length differs from rank";
      return fail();
    }
    Shape os(r);
    int64_t total = 1;
    for (int64_t d = 0; d < r; ++d) {
      if (rep[d] < 0 || (rep[d] && x->shape[d] > (int64_t(1) << 26) / rep[d])) {
        err = "invalid Tile repeats";
        return fail();
      }
      os[d] = x->shape[d] * rep[d];
      total *= os[d];
      if (total > (int64_t(1) << 26)) {
        err = "Tile result too large";
        return fail();
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
    out.push_back(gatherElems(*x, os, offs));
    return FoldResult::Folded;
  }
  if (op == "Concat") {
    int64_t r = (int64_t)x->shape.size(), axis;
    if (!normAxis(attrInt(node, "axis", 0), r, axis, err))
      return fail();
    Shape os = x->shape;
    os[axis] = 0;
    DType dt = x->dt;
    for (size_t k = 0; k < in.size(); ++k) {
      if (!need(k))
        return fail();
      const Shape &s = input(k)->shape;
      if ((int64_t)s.size() != r) {
        err = "Concat inputs have different ranks";
        return fail();
      }
      for (int64_t d = 0; d < r; ++d)
        if (d != axis && s[d] != x->shape[d]) {
          err = "Concat inputs " + shapeStr(x->shape) + " and " + shapeStr(s) + " differ off the axis";
          return fail();
        }
      os[axis] += s[axis];
      if (input(k)->dt == DType::F32)
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
      for (size_t k = 0; k < in.size(); ++k) {
        const Tensor &s = *input(k);
        int64_t chunk = s.shape[axis] * inner;
        for (int64_t j = 0; j < chunk; ++j, ++k0) {
          if (dt == DType::F32) t.f[k0] = s.getF(o * chunk + j);
          else t.i[k0] = s.i[o * chunk + j];
        }
      }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Split") {
    int64_t r = (int64_t)x->shape.size(), axis;
    if (!normAxis(attrInt(node, "axis", 0), r, axis, err))
      return fail();
    std::vector<int64_t> split, sizes;
    bool have = false;
    if (opset >= 13) {
      if (input(1)) {
        split = input(1)->toInts();
        have = true;
      }
    } else {
      have = attrInts(node, "split", split);
    }
    int64_t nOut = findAttr(node, "num_outputs") ? attrInt(node, "num_outputs", 1) : node.output_size();
    if (!splitSizes(x->shape[axis], have ? &split : nullptr, nOut, sizes, err))
      return fail();
    Shape st = stridesOf(x->shape);
    int64_t start = 0;
    for (int64_t s : sizes) {
      Shape os = x->shape;
      os[axis] = s;
      out.push_back(gatherElems(*x, os, stridedOffsets(os, start * st[axis], st)));
      start += s;
    }
    return FoldResult::Folded;
  }
  if (op == "Slice") {
    if (!need(1) || !need(2))
      return fail();
    std::vector<int64_t> axes, steps;
    if (input(3))
      axes = input(3)->toInts();
    if (input(4))
      steps = input(4)->toInts();
    std::vector<SliceDim> dims;
    if (!sliceParams(x->shape, input(1)->toInts(), input(2)->toInts(), input(3) ? &axes : nullptr,
                     input(4) ? &steps : nullptr, dims, err))
      return fail();
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
    out.push_back(gatherElems(*x, os, stridedOffsets(os, base, ost)));
    return FoldResult::Folded;
  }
  if (op == "Gather") {
    if (!need(1))
      return fail();
    int64_t r = (int64_t)x->shape.size(), axis;
    if (!normAxis(attrInt(node, "axis", 0), r, axis, err))
      return fail();
    const Tensor &idx = *input(1);
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
          err = "Gather index " + std::to_string(k) + " out of range for dim " + std::to_string(dim);
          return fail();
        }
        if (k < 0)
          k += dim;
        for (int64_t q = 0; q < inner; ++q)
          offs.push_back((o * dim + k) * inner + q);
      }
    out.push_back(gatherElems(*x, os, offs));
    return FoldResult::Folded;
  }
  if (op == "Range") {
    if (!need(0) || !need(1) || !need(2))
      return fail();
    const Tensor &s = *input(0), &l = *input(1), &d = *input(2);
    if (s.numel() != 1 || l.numel() != 1 || d.numel() != 1) {
      err = "Range inputs must be scalars";
      return fail();
    }
    if (s.dt == DType::F32) {
      double a = s.f[0], lim = l.getF(0), dl = d.getF(0);
      if (dl == 0) {
        err = "Range delta is 0";
        return fail();
      }
      int64_t n = std::max<int64_t>((int64_t)std::ceil((lim - a) / dl), 0);
      Tensor t = Tensor::zeros(DType::F32, {n});
      for (int64_t k = 0; k < n; ++k)
        t.set(k, a + k * dl);
      out.push_back(t);
    } else {
      int64_t a = s.i[0], lim = l.getI(0), dl = d.getI(0);
      if (dl == 0) {
        err = "Range delta is 0";
        return fail();
      }
      int64_t n = std::max<int64_t>((int64_t)std::ceil((double)(lim - a) / (double)dl), 0);
      if (n > (int64_t(1) << 26)) {
        err = "Range too long";
        return fail();
      }
      Tensor t = Tensor::zeros(DType::I64, {n});
      for (int64_t k = 0; k < n; ++k)
        t.i[k] = a + k * dl;
      out.push_back(t);
    }
    return FoldResult::Folded;
  }
  if (op == "ConstantOfShape") {
    Shape s = x->toInts();
    for (int64_t v : s)
      if (v < 0) {
        err = "negative dim in ConstantOfShape";
        return fail();
      }
    if (numElements(s) > kMaxConstantElements) { // checked before allocating: the shape comes from the file
      err = "ConstantOfShape of " + shapeStr(s) + " is too large to evaluate";
      return fail();
    }
    Tensor v = Tensor::zeros(DType::F32, {1});
    if (const auto *a = findAttr(node, "value")) {
      if (!decodeTensor(a->t(), nullptr, 0, v, err)) {
        err = "value: " + err;
        return fail();
      }
      if (v.numel() != 1) {
        err = "value must hold one element, not " + std::to_string(v.numel());
        return fail();
      }
    }
    Tensor t = Tensor::zeros(v.dt, s);
    for (int64_t k = 0; k < t.numel(); ++k) {
      if (v.dt == DType::F32) t.f[k] = v.f[0];
      else t.i[k] = v.i[0];
    }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Trilu") {
    int64_t r = (int64_t)x->shape.size();
    if (r < 2) {
      err = "Trilu input must have rank >= 2";
      return fail();
    }
    int64_t k = input(1) ? input(1)->getI(0) : 0;
    bool upper = attrInt(node, "upper", 1) != 0;
    int64_t N = x->shape[r - 2], M = x->shape[r - 1];
    Tensor t = *x;
    for (int64_t e = 0; e < t.numel(); ++e) {
      int64_t j = e % M, i = (e / M) % N;
      bool keep = upper ? (j - i >= k) : (j - i <= k);
      if (!keep)
        t.setI(e, 0);
    }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "CumSum") {
    if (!need(1))
      return fail();
    int64_t r = (int64_t)x->shape.size(), axis;
    if (!normAxis(input(1)->getI(0), r, axis, err))
      return fail();
    bool excl = attrInt(node, "exclusive", 0) != 0, rev = attrInt(node, "reverse", 0) != 0;
    int64_t dim = x->shape[axis], inner = 1, outer = 1;
    for (int64_t d = axis + 1; d < r; ++d)
      inner *= x->shape[d];
    for (int64_t d = 0; d < axis; ++d)
      outer *= x->shape[d];
    Tensor t = Tensor::zeros(x->dt == DType::Bool ? DType::I64 : x->dt, x->shape);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t q = 0; q < inner; ++q) {
        double accF = 0;
        int64_t accI = 0;
        for (int64_t s = 0; s < dim; ++s) {
          int64_t j = rev ? dim - 1 - s : s;
          int64_t e = (o * dim + j) * inner + q;
          if (excl) {
            if (t.dt == DType::F32) t.set(e, accF); else t.i[e] = accI;
          }
          accF += x->getF(e);
          accI += x->getI(e);
          if (!excl) {
            if (t.dt == DType::F32) t.set(e, accF); else t.i[e] = accI;
          }
        }
      }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "IsNaN" || op == "IsInf") {
    bool pos = attrInt(node, "detect_positive", 1) != 0, neg = attrInt(node, "detect_negative", 1) != 0;
    Tensor t = Tensor::zeros(DType::Bool, x->shape);
    for (int64_t k = 0; k < x->numel(); ++k) {
      double v = x->dt == DType::F32 ? x->f[k] : 0.0; // integers are never NaN / inf
      t.i[k] = op == "IsNaN" ? std::isnan(v) : std::isinf(v) && (v > 0 ? pos : neg);
    }
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "GatherND") {
    // out[b..., i...] = data[b..., idx[b..., i..., :]...] (batch_dims leading dims shared).
    if (!need(1))
      return fail();
    const Tensor &idx = *input(1);
    int64_t bd = attrInt(node, "batch_dims", 0), r = (int64_t)x->shape.size(), q = (int64_t)idx.shape.size();
    if (q < 1 || bd < 0 || bd >= std::min(r, q)) {
      err = "GatherND: invalid batch_dims " + std::to_string(bd) + " for data rank " + std::to_string(r) +
            " and indices rank " + std::to_string(q);
      return fail();
    }
    int64_t m = idx.shape[q - 1];
    if (m < 1 || bd + m > r) {
      err = "GatherND: index tuples of length " + std::to_string(m) + " do not fit data " + shapeStr(x->shape);
      return fail();
    }
    for (int64_t d = 0; d < bd; ++d)
      if (idx.shape[d] != x->shape[d]) {
        err = "GatherND: batch dims of indices " + shapeStr(idx.shape) + " and data " + shapeStr(x->shape) +
              " differ";
        return fail();
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
          err = "GatherND index " + std::to_string(k) + " out of range for dim " + std::to_string(dim);
          return fail();
        }
        base += (k < 0 ? k + dim : k) * dst[bd + j];
      }
      for (int64_t e = 0; e < inner; ++e)
        offs.push_back(base + e);
    }
    out.push_back(gatherElems(*x, os, offs));
    return FoldResult::Folded;
  }
  if (op == "MatMul") {
    if (!need(1))
      return fail();
    Tensor t;
    if (!matmulFold(*x, *input(1), t, err))
      return fail();
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op == "Einsum") {
    Tensor t;
    if (!einsumFold(attrString(node, "equation", ""), in, t, err))
      return fail();
    out.push_back(t);
    return FoldResult::Folded;
  }
  if (op.rfind("Reduce", 0) == 0) {
    std::vector<int64_t> axes;
    bool noop;
    if (!reduceAxes(node, (int64_t)x->shape.size(), input(1), axes, noop, err))
      return fail();
    if (noop) {
      out.push_back(*x);
      return FoldResult::Folded;
    }
    Tensor t;
    reduceFold(op, *x, axes, attrInt(node, "keepdims", 1) != 0, t);
    out.push_back(t);
    return FoldResult::Folded;
  }
  return FoldResult::NotFoldable;
}

//===----------------------------------------------------------------------===//
// TensorProto decoding
//===----------------------------------------------------------------------===//
namespace {
int64_t elemSize(int32_t t) {
  switch (t) {
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::BOOL: return 1;
  case onnx::TensorProto::UINT16:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16: return 2;
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::UINT32: return 4;
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT64:
  case onnx::TensorProto::DOUBLE: return 8;
  default: return 0;
  }
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { // subnormal
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) {
        man <<= 1;
        --exp;
      }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element k of little-endian raw bytes, as double (floats) or int64 (ints).
void readRaw(int32_t type, const char *p, double &fv, int64_t &iv) {
  switch (type) {
  case onnx::TensorProto::FLOAT: { float v; std::memcpy(&v, p, 4); fv = v; break; }
  case onnx::TensorProto::DOUBLE: { double v; std::memcpy(&v, p, 8); fv = v; break; }
  case onnx::TensorProto::FLOAT16: { uint16_t v; std::memcpy(&v, p, 2); fv = halfToFloat(v); break; }
  case onnx::TensorProto::BFLOAT16: {
    uint16_t v; std::memcpy(&v, p, 2);
    uint32_t bits = (uint32_t)v << 16; float f; std::memcpy(&f, &bits, 4); fv = f; break;
  }
  case onnx::TensorProto::UINT8: iv = (uint8_t)p[0]; break;
  case onnx::TensorProto::INT8: iv = (int8_t)p[0]; break;
  case onnx::TensorProto::BOOL: iv = p[0] != 0; break;
  case onnx::TensorProto::UINT16: { uint16_t v; std::memcpy(&v, p, 2); iv = v; break; }
  case onnx::TensorProto::INT16: { int16_t v; std::memcpy(&v, p, 2); iv = v; break; }
  case onnx::TensorProto::INT32: { int32_t v; std::memcpy(&v, p, 4); iv = v; break; }
  case onnx::TensorProto::UINT32: { uint32_t v; std::memcpy(&v, p, 4); iv = v; break; }
  case onnx::TensorProto::INT64: { int64_t v; std::memcpy(&v, p, 8); iv = v; break; }
  case onnx::TensorProto::UINT64: { uint64_t v; std::memcpy(&v, p, 8); iv = (int64_t)v; break; }
  default: break;
  }
}
} // namespace

int64_t onnxElemSize(int32_t onnxType) { return elemSize(onnxType); }

bool decodeTensor(const onnx::TensorProto &p, const char *external, size_t externalSize, Tensor &out,
                  std::string &err) {
  DType dt;
  int32_t type = p.data_type();
  if (!dtypeFromOnnx(type, dt)) {
    err = std::string("unsupported data type ") + onnxTypeName(type);
    return false;
  }
  Shape s(p.dims().begin(), p.dims().end());
  for (int64_t d : s)
    if (d < 0) {
      err = "negative dim " + shapeStr(s);
      return false;
    }
  Tensor t = Tensor::zeros(dt, s);
  int64_t n = t.numel(), es = elemSize(type);
  auto store = [&](int64_t k, double fv, int64_t iv) {
    if (dt == DType::F32) t.set(k, fv);
    else if (dt == DType::Bool) t.i[k] = iv != 0;
    else t.i[k] = iv;
  };
  const char *raw = external;
  size_t rawSize = externalSize;
  if (!raw && p.has_raw_data()) {
    raw = p.raw_data().data();
    rawSize = p.raw_data().size();
  }
  if (raw) {
    if ((int64_t)rawSize != n * es) {
      err = "data holds " + std::to_string(rawSize) + " bytes, dims " + shapeStr(s) + " of " +
            onnxTypeName(type) + " need " + std::to_string(n * es);
      return false;
    }
    for (int64_t k = 0; k < n; ++k) {
      double fv = 0;
      int64_t iv = 0;
      readRaw(type, raw + k * es, fv, iv);
      store(k, fv, iv);
    }
    out = std::move(t);
    return true;
  }
  int64_t have = 0;
  switch (type) {
  case onnx::TensorProto::FLOAT:
    have = p.float_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) store(k, p.float_data(k), 0);
    break;
  case onnx::TensorProto::DOUBLE:
    have = p.double_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) store(k, p.double_data(k), 0);
    break;
  case onnx::TensorProto::INT64:
    have = p.int64_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) store(k, 0, p.int64_data(k));
    break;
  case onnx::TensorProto::UINT32:
  case onnx::TensorProto::UINT64:
    have = p.uint64_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) store(k, 0, (int64_t)p.uint64_data(k));
    break;
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
    have = p.int32_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) {
      uint16_t bits = (uint16_t)p.int32_data(k);
      double fv = 0;
      int64_t iv = 0;
      char b[2];
      std::memcpy(b, &bits, 2);
      readRaw(type, b, fv, iv);
      store(k, fv, 0);
    }
    break;
  default: // int32_data holds INT32, INT16, INT8, UINT16, UINT8, BOOL
    have = p.int32_data_size();
    for (int64_t k = 0; k < n && k < have; ++k) store(k, p.int32_data(k), p.int32_data(k));
    break;
  }
  if (have != n) {
    err = "holds " + std::to_string(have) + " values, dims " + shapeStr(s) + " need " + std::to_string(n);
    return false;
  }
  out = std::move(t);
  return true;
}

} // namespace tessera::onnximport
