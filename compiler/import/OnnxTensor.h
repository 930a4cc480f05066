// OnnxTensor.h - CPU tensors and ONNX shape rules shared by the importer
// (OnnxImporter.cpp) and its op handlers (ops/).
//
// Folded values are kept in three element classes only: F32 (every ONNX float
// type, values rounded to float), I64 (every ONNX integer type) and Bool.
// The importer turns I64 into i32 and Bool into i1 when a value reaches the IR.
#pragma once

#include "onnx/onnx_pb.h" // defines ONNX_API, includes onnx-ml.pb.h

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::onnximport {

enum class DType { F32, I64, Bool };
using Shape = std::vector<int64_t>;

const char *dtypeName(DType t);
int64_t numElements(const Shape &s);
std::string shapeStr(const Shape &s);

/// ONNX TensorProto.DataType -> element class; false for STRING/COMPLEX/unknown.
bool dtypeFromOnnx(int32_t onnxType, DType &out);
bool isOnnxFloat(int32_t onnxType);
const char *onnxTypeName(int32_t onnxType);

struct Tensor {
  DType dt = DType::F32;
  Shape shape;
  std::vector<double> f;  // F32 data (each value exactly representable as float)
  std::vector<int64_t> i; // I64 and Bool data

  static Tensor zeros(DType dt, Shape shape);
  static Tensor scalarI(int64_t v);
  int64_t numel() const { return numElements(shape); }
  double getF(int64_t k) const { return dt == DType::F32 ? f[k] : (double)i[k]; }
  int64_t getI(int64_t k) const { return dt == DType::F32 ? saturatingInt(f[k]) : i[k]; }
  /// A float value as an integer: truncated, nan as 0, beyond int64 clamped.
  static int64_t saturatingInt(double v);
  /// A double rounded to float, overflowing to +-inf as IEEE does (a plain cast beyond FLT_MAX is undefined).
  static double roundToFloat(double v);
  /// Stores v converted to this tensor's class (rounded to float for F32).
  void set(int64_t k, double v);
  void setI(int64_t k, int64_t v);
  std::vector<int64_t> toInts() const;
};

/// Decodes a TensorProto. `external` (null when the data is inline) holds the
/// bytes of external data. The error is the part after "tensor 'x': ".
bool decodeTensor(const onnx::TensorProto &p, const char *external, size_t externalSize, Tensor &out,
                  std::string &err);
/// Bytes per element of an ONNX data type (0 for unsupported types).
int64_t onnxElemSize(int32_t onnxType);

//===- node attributes ----------------------------------------------------===//
const onnx::AttributeProto *findAttr(const onnx::NodeProto &n, const std::string &name);
int64_t attrInt(const onnx::NodeProto &n, const std::string &name, int64_t dflt);
float attrFloat(const onnx::NodeProto &n, const std::string &name, float dflt);
std::string attrString(const onnx::NodeProto &n, const std::string &name, const std::string &dflt);
bool attrInts(const onnx::NodeProto &n, const std::string &name, std::vector<int64_t> &out);

//===- shape rules (ONNX semantics); false + `err` on invalid input --------===//
bool normAxis(int64_t axis, int64_t rank, int64_t &out, std::string &err);
bool broadcast(const Shape &a, const Shape &b, Shape &out, std::string &err);
/// Reshape target with 0 (copy, unless allowzero) and -1 (infer).
bool reshapeTarget(const Shape &in, const std::vector<int64_t> &spec, bool allowZero, Shape &out,
                   std::string &err);
bool unsqueezeShape(const Shape &in, std::vector<int64_t> axes, Shape &out, std::string &err);
bool squeezeShape(const Shape &in, const std::vector<int64_t> *axes, Shape &out, std::string &err);

struct SliceDim {
  int64_t start = 0, end = 0, step = 1, len = 0;
};
/// Per-dimension slice parameters (start clamped, len = number of elements).
bool sliceParams(const Shape &in, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                 const std::vector<int64_t> *axes, const std::vector<int64_t> *steps,
                 std::vector<SliceDim> &out, std::string &err);
/// Sizes of the pieces of Split along `axis`.
bool splitSizes(int64_t dim, const std::vector<int64_t> *split, int64_t numOutputs,
                std::vector<int64_t> &out, std::string &err);
/// Axes of a Reduce* node (attribute for old opsets, second input for ReduceSum >= 13 and all >= 18).
/// `axesInput` is null when absent. Empty result with `noop` set means identity.
bool reduceAxes(const onnx::NodeProto &n, int64_t rank, const Tensor *axesInput,
                std::vector<int64_t> &axes, bool &noop, std::string &err);

//===- constant folding ---------------------------------------------------===//
/// Outcome of an op's fold handler (OpRegistry.h).
enum class FoldResult { Folded, NotFoldable, Error };

} // namespace tessera::onnximport
