// OnnxTensor.cpp - CPU tensors, node attributes, the ONNX shape rules and
// TensorProto decoding, shared by the op handlers (ops/) and the importer.
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
