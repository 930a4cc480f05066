// Importer.h - the importer as its op handlers see it (internal to compiler/import).
//
// OnnxImporter.cpp walks the graph; for each node it asks the registry
// (OpRegistry.h) for the op's handlers at the model's opset, evaluates the
// node on the CPU when every input is known (the fold handler), and otherwise
// maps it to tessera ops (the emit handler). Handlers live in ops/, one file
// per op family, and reach the importer through `Node` (inputs, outputs,
// errors) and the IR helpers of `Importer` below.
#pragma once

#include "compiler/import/OnnxImporter.h"
#include "compiler/import/OnnxTensor.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace tessera::onnximport {

namespace tt = mlir::tessera;

/// A value of the ONNX graph during import: constant data (folded, or read
/// lazily from the file) and/or the IR value it became.
struct Val {
  DType dt = DType::F32;
  Shape shape;
  bool isConst = false;
  bool heavy = false;                       // a weight: never folded into a new constant
  std::shared_ptr<const Tensor> data;       // constant data (loaded lazily from `proto`)
  const onnx::TensorProto *proto = nullptr; // initializer / Constant-node tensor backing it
  std::string paramName;                    // name the runtime reads it by
  mlir::Value v;                            // the IR value (dynamic, or a materialised constant)
  std::shared_ptr<Val> nanTestOf;           // IsNaN of this computed value (only a Where guard may use it)
  std::string integerWeight;                // "'name' [dims] of INT8": the integer weight-like initializer it comes from
};

// The integer initializer (more than one element) a value is, or was cast
// from: a quantized weight that a MatMul must not silently bake in as a
// constant (LoRA would skip the layer).
inline std::string integerWeightOf(const Val &v) {
  if (!v.integerWeight.empty())
    return v.integerWeight;
  if (v.proto && v.dt != DType::F32 && v.proto->data_type() != onnx::TensorProto::BOOL && numElements(v.shape) > 1)
    return "'" + v.paramName + "' " + shapeStr(v.shape) + " of " + onnxTypeName(v.proto->data_type());
  return {};
}
using ValP = std::shared_ptr<Val>;

// The largest value the graph may compute (kernels index with 32-bit integers).
constexpr int64_t kMaxValueElements = int64_t(1) << 31;

struct OpHandler;

class Importer {
public:
  Importer(mlir::MLIRContext &ctx, const std::string &path, const ImportOptions &options,
           std::string &error)
      : b(&ctx), loc(mlir::FileLineColLoc::get(&ctx, path, 0, 0)), ctx(ctx), path(path),
        opts(options), error(error), fileLoc(loc) {}

  mlir::OwningOpRef<mlir::ModuleOp> run();
  /// Read the model from these bytes instead of `path` (importOnnxBytes).
  void setMemory(const std::string_view *bytes) { memory = bytes; }
  /// Shape of every imported value (after run()).
  std::unordered_map<std::string, Shape> valueShapes() const {
    std::unordered_map<std::string, Shape> r;
    for (const auto &kv : values)
      r[kv.first] = kv.second->shape;
    return r;
  }

  //===- what handlers use ------------------------------------------------===//
  mlir::OpBuilder b;
  mlir::Location loc;          // of the node being imported
  int64_t opset = 0;
  std::unordered_set<std::string> needed; // value names the graph output depends on

  /// Records the first error (prefixed with the file), returns false.
  bool fail(const std::string &msg);
  /// fail() with the current node named.
  bool nodeFail(const std::string &msg);

  /// Loads a constant's data from the model file when first needed.
  bool dataOf(Val &v, const std::string &what);
  /// An initializer or Constant-node tensor (data stays in the file until needed).
  ValP tensorVal(const onnx::TensorProto &t, const std::string &name);
  bool checkExternal(const onnx::TensorProto &t, const std::string &what);

  mlir::Type elemType(DType dt) {
    switch (dt) {
    case DType::F32: return b.getF32Type();
    case DType::I64: return b.getI32Type();
    case DType::Bool: return b.getI1Type();
    }
    return {};
  }
  mlir::RankedTensorType tensorType(const Shape &s, DType dt) {
    return mlir::RankedTensorType::get(s, elemType(dt));
  }
  static Shape shapeOf(mlir::Value v) {
    auto s = mlir::cast<mlir::ShapedType>(v.getType()).getShape();
    return Shape(s.begin(), s.end());
  }
  static DType dtOf(mlir::Value v) {
    mlir::Type e = mlir::cast<mlir::ShapedType>(v.getType()).getElementType();
    if (e.isF32())
      return DType::F32;
    return e.isInteger(1) ? DType::Bool : DType::I64;
  }
  ValP dyn(mlir::Value v) {
    auto r = std::make_shared<Val>();
    r->dt = dtOf(v);
    r->shape = shapeOf(v);
    r->v = v;
    return r;
  }
  ValP constVal(Tensor t) {
    auto r = std::make_shared<Val>();
    r->dt = t.dt;
    r->shape = t.shape;
    r->isConst = true;
    r->data = std::make_shared<Tensor>(std::move(t));
    return r;
  }

  mlir::Value makeConst(const Tensor &t);
  /// The IR value of `v`: a frozen param for a float weight, else a constant.
  mlir::Value materialize(Val &v);
  mlir::Value asFloat(const ValP &v, const std::string &what);
  bool constInts(const ValP &v, const std::string &what, std::vector<int64_t> &out);
  bool constScalar(const ValP &v, double &out);

  // Plain tessera ops (result types are the ops' own inference), identities
  // included: the canonicalizer of the importer's cleanup folds them and the
  // algebra exports spell out (TesseraCanonicalize.cpp). Null in, null out.
  mlir::Value unary(tt::UnaryFn fn, mlir::Value x);
  mlir::Value binary(tt::BinaryFn fn, mlir::Value x, mlir::Value y);
  mlir::Value reshape(mlir::Value x, const Shape &s);
  mlir::Value transpose(mlir::Value x, const std::vector<int64_t> &perm);
  mlir::Value broadcastTo(mlir::Value x, const Shape &s);
  mlir::Value slice(mlir::Value x, const std::vector<int64_t> &starts,
                    const std::vector<int64_t> &limits, const std::vector<int64_t> &strides);
  mlir::Value sliceAxis(mlir::Value x, int64_t axis, int64_t start, int64_t len, int64_t step = 1);
  mlir::Value concat(const std::vector<mlir::Value> &xs, int64_t axis);
  mlir::Value reduce(tt::ReduceFn fn, mlir::Value x, const std::vector<int64_t> &axes, bool keep);
  mlir::Value softmaxAlong(mlir::Value x, int64_t axis);
  mlir::Value scalarF(float v) {
    Tensor t = Tensor::zeros(DType::F32, {});
    t.set(0, v);
    return makeConst(t);
  }

private:
  mlir::MLIRContext &ctx;
  std::string path;
  ImportOptions opts;
  std::string &error;
  mlir::Location fileLoc;
  const std::string_view *memory = nullptr;

  onnx::ModelProto model;
  std::string dir;
  std::vector<onnx::NodeProto> nodes; // graph nodes, model-local functions inlined
  std::unordered_map<std::string, ValP> values;
  std::map<std::string, uint64_t> fileSizes;
  std::map<std::string, mlir::Value> params;
  mlir::Operation *lastParam = nullptr;
  int curNode = -1;
  int inlineCounter = 0;
  // Static exports imported at another shape: every value's shape at the
  // export shape, and the constants regenerated for the new one.
  std::unordered_map<std::string, Shape> exportShapes;
  int64_t exportDims[2] = {0, 0};
  bool respecialize = false;
  std::map<std::string, ValP> regenerated;

  std::string nodeDesc(int idx) const;

  bool load();
  bool flattenNodes();
  bool inlineFunction(const onnx::NodeProto &call, const onnx::FunctionProto &f, int depth);
  bool readExternal(const onnx::TensorProto &t, std::string &bytes, std::string &err);

  bool importGraph(mlir::func::FuncOp func);
  bool importNode(int idx);
  bool foldNode(const OpHandler &h, const onnx::NodeProto &n, std::vector<ValP> &in,
                std::vector<ValP> &out);
  const onnx::ValueInfoProto *tokenInput(std::string &err) const;
  bool specializeInputs(const OpHandler &h, const onnx::NodeProto &n, std::vector<ValP> &in);
  void explainStaticFailure(int idx);
};

/// One node as an emit handler sees it: its inputs (null: absent optional
/// input), where its outputs go, and the importer.
struct Node {
  Importer &imp;
  const onnx::NodeProto &proto;
  std::vector<ValP> &in;
  std::vector<ValP> &out;

  const std::string &op() const { return proto.op_type(); }
  int64_t opset() const { return imp.opset; }
  mlir::OpBuilder &b() { return imp.b; }
  mlir::Location loc() const { return imp.loc; }
  /// Input k, or null when absent.
  ValP arg(size_t k) const { return k < in.size() ? in[k] : nullptr; }
  /// The name of input k (for messages).
  const std::string &name(size_t k) const { return proto.input((int)k); }
  int64_t rank(size_t k) const { return (int64_t)arg(k)->shape.size(); }
  /// Input k must be present ("missing input k" otherwise).
  bool need(size_t k) {
    if (!arg(k))
      return fail("missing input " + std::to_string(k));
    return true;
  }
  bool fail(const std::string &msg) { return imp.nodeFail(msg); }
  /// Appends an IR value as the next output.
  bool push(mlir::Value v) {
    if (!v)
      return false;
    // Kernels index with 32-bit integers: a larger value is a malformed (or
    // hostile) shape, refused here rather than after minutes of lowering.
    if (numElements(Importer::shapeOf(v)) > kMaxValueElements)
      return fail("the result of shape " + shapeStr(Importer::shapeOf(v)) + " has more than 2^31 elements");
    out.push_back(imp.dyn(v));
    return true;
  }
  /// Input k as a float IR value (integer constants converted).
  mlir::Value asFloat(size_t k) { return imp.asFloat(arg(k), name(k)); }
  mlir::Value materialize(size_t k) { return imp.materialize(*arg(k)); }
  bool constInts(size_t k, std::vector<int64_t> &v) { return imp.constInts(arg(k), name(k), v); }
};

/// A node whose inputs are all known, as a fold handler sees it.
struct FoldNode {
  const onnx::NodeProto &proto;
  int64_t opset;
  const std::vector<const Tensor *> &in;
  std::vector<Tensor> &out;
  std::string &err;

  const Tensor *input(size_t k) const { return k < in.size() ? in[k] : nullptr; }
  bool need(size_t k) {
    if (!input(k)) {
      err = "missing input " + std::to_string(k);
      return false;
    }
    return true;
  }
  FoldResult folded(Tensor t) {
    out.push_back(std::move(t));
    return FoldResult::Folded;
  }
  FoldResult fail(std::string msg = "") {
    if (!msg.empty())
      err = std::move(msg);
    return FoldResult::Error;
  }
};

} // namespace tessera::onnximport
