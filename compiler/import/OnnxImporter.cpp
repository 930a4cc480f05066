// OnnxImporter.cpp - ONNX ModelProto -> `func.func @forward` of tessera ops.
//
// The graph is specialised to the requested [batch, seq]: every tensor gets a
// static shape, and every node whose inputs are all known (shape arithmetic,
// RoPE tables, causal masks) is evaluated on the CPU (OnnxFold.cpp). What
// remains depends on the token ids and is mapped 1:1 onto tessera ops. Weight
// initializers are never folded: they become `tessera.param frozen "<name>"`,
// read by the runtime from the model file. A static export requested at
// another shape is imported twice: at its export shape (to learn every
// value's old shape), then at the new one with its baked shape constants,
// RoPE tables and masks rewritten (StaticSpecialize.h). See docs/importer.md.
#include "compiler/import/OnnxImporter.h"
#include "compiler/import/OnnxTensor.h"
#include "compiler/import/StaticSpecialize.h"

#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <climits>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace tessera {
namespace {

using namespace onnximport;
namespace tt = mlir::tessera;

constexpr int64_t kMinOpset = 13, kMaxOpset = 18;
constexpr int64_t kMinIrVersion = 3, kMaxIrVersion = 10;
// Folded constants that would grow past this many elements by broadcasting
// (Expand, Where, elementwise ops, ConstantOfShape) stay in the IR as a
// broadcast of the smaller constant instead.
constexpr int64_t kMaxBroadcastFold = int64_t(1) << 20;
// No folded constant may exceed this.
constexpr int64_t kMaxFoldElements = int64_t(1) << 26;
// The largest value the graph may compute (kernels index with 32-bit integers).
constexpr int64_t kMaxValueElements = int64_t(1) << 31;

const char *kSupportedOps =
    "Abs, Add, And, Cast, CastLike, Ceil, Concat, Constant, ConstantOfShape, Cos, CumSum, Div, "
    "Dropout, Einsum*, Equal, Erf*, Exp, Expand, Flatten, Floor, Gather, GatherND*, Gemm, Greater, "
    "GreaterOrEqual, Identity, IsInf*, IsNaN**, LayerNormalization, Less, LessOrEqual, Log, "
    "LogSoftmax, MatMul, Max, Mean, Min, Mod*, Mul, Neg, Not*, Or*, Pow, Range*, Reciprocal, "
    "ReduceL2, ReduceMax, ReduceMean, ReduceMin, ReduceProd*, ReduceSum, ReduceSumSquare, Relu, "
    "Reshape, Round*, Shape, Sigmoid, Sign*, Sin, Size, Slice, Softmax, Split, Sqrt, Squeeze, Sub, "
    "Sum, Tanh, Tile, Transpose, Trilu, Unsqueeze, Where, Xor* (* only on constant inputs, ** or as "
    "the NaN guard Where(IsNaN(s), c, s) after a Softmax)";

// Ops with a mapping to tessera ops (emitDynamic); isFoldableOp() adds the
// ones evaluated on constants only.
const std::set<std::string> kMappedOps = {
    "Abs", "Add", "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "Cos", "Div", "Dropout",
    "Erf", "Exp", "Expand", "Flatten", "Gather", "Gemm", "Identity", "IsNaN", "LayerNormalization", "Log",
    "LogSoftmax", "MatMul", "Max", "Mean", "Min", "Mul", "Neg", "Pow", "Reciprocal", "ReduceL2", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Sigmoid", "Sin", "Slice",
    "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "Transpose", "Trilu", "Unsqueeze",
    "Where"};

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

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
std::string integerWeightOf(const Val &v) {
  if (!v.integerWeight.empty())
    return v.integerWeight;
  if (v.proto && v.dt != DType::F32 && v.proto->data_type() != onnx::TensorProto::BOOL && numElements(v.shape) > 1)
    return "'" + v.paramName + "' " + shapeStr(v.shape) + " of " + onnxTypeName(v.proto->data_type());
  return {};
}
using ValP = std::shared_ptr<Val>;

class Importer {
public:
  Importer(mlir::MLIRContext &ctx, const std::string &path, const ImportOptions &options,
           std::string &error)
      : ctx(ctx), path(path), opts(options), error(error), b(&ctx),
        fileLoc(mlir::FileLineColLoc::get(&ctx, path, 0, 0)), loc(fileLoc) {}

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

private:
  mlir::MLIRContext &ctx;
  std::string path;
  ImportOptions opts;
  std::string &error;
  mlir::OpBuilder b;
  mlir::Location fileLoc, loc;
  const std::string_view *memory = nullptr;

  onnx::ModelProto model;
  std::string dir;
  int64_t opset = 0;
  std::vector<onnx::NodeProto> nodes; // graph nodes, model-local functions inlined
  std::unordered_map<std::string, ValP> values;
  std::unordered_set<std::string> needed; // value names the graph output depends on
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

  //===- errors -----------------------------------------------------------===//
  bool fail(const std::string &msg) {
    if (error.empty()) {
      error = path + ": " + msg;
      for (char &c : error) // names from the file may hold control characters: one line
        if ((unsigned char)c < 0x20 || c == 0x7f)
          c = ' ';
    }
    return false;
  }
  std::string nodeDesc(int idx) const {
    const onnx::NodeProto &n = nodes[idx];
    std::string d = n.name().empty() ? "node #" + std::to_string(idx) : "node '" + n.name() + "'";
    return d + " (" + (n.domain().empty() || n.domain() == "ai.onnx" ? "" : n.domain() + ".") +
           n.op_type() + ")";
  }
  bool nodeFail(const std::string &msg) {
    return fail(curNode >= 0 ? nodeDesc(curNode) + ": " + msg : msg);
  }

  //===- loading ----------------------------------------------------------===//
  bool load();
  bool flattenNodes();
  bool inlineFunction(const onnx::NodeProto &call, const onnx::FunctionProto &f, int depth);
  bool checkExternal(const onnx::TensorProto &t, const std::string &what);
  bool readExternal(const onnx::TensorProto &t, std::string &bytes, std::string &err);
  bool dataOf(Val &v, const std::string &what);
  ValP tensorVal(const onnx::TensorProto &t, const std::string &name);

  //===- IR helpers -------------------------------------------------------===//
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
  mlir::Value materialize(Val &v);
  mlir::Value asFloat(const ValP &v, const std::string &what);
  bool constInts(const ValP &v, const std::string &what, std::vector<int64_t> &out);
  bool constScalar(const ValP &v, double &out);

  mlir::Value unary(tt::UnaryFn fn, mlir::Value x) {
    if (!x)
      return {};
    return b.create<tt::UnaryOp>(loc, fn, x);
  }
  mlir::Value binary(tt::BinaryFn fn, mlir::Value x, mlir::Value y);
  mlir::Value reshape(mlir::Value x, const Shape &s) {
    if (!x)
      return {};
    if (auto r = x.getDefiningOp<tt::ReshapeOp>()) // reshape(reshape(y)) -> reshape(y)
      x = r.getInput();
    if (shapeOf(x) == s)
      return x;
    return b.create<tt::ReshapeOp>(loc, tensorType(s, dtOf(x)), x);
  }
  mlir::Value transpose(mlir::Value x, const std::vector<int64_t> &perm);
  mlir::Value broadcastTo(mlir::Value x, const Shape &s) {
    if (!x)
      return {};
    if (shapeOf(x) == s)
      return x;
    return b.create<tt::BroadcastOp>(loc, tensorType(s, dtOf(x)), x);
  }
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

  //===- nodes ------------------------------------------------------------===//
  bool importGraph(mlir::func::FuncOp func);
  bool importNode(int idx);
  const onnx::ValueInfoProto *tokenInput(std::string &err) const;
  bool specializeInputs(const onnx::NodeProto &n, std::vector<ValP> &in);
  void explainStaticFailure(int idx);
  bool emitDynamic(const onnx::NodeProto &n, std::vector<ValP> &in, std::vector<ValP> &out);
  mlir::Value softmaxNanGuard(mlir::Value s, const ValP &replacement);
  int64_t broadcastFoldSize(const onnx::NodeProto &n, std::vector<ValP> &in);
};

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

bool Importer::load() {
  if (memory) {
    if (memory->size() > (size_t)INT_MAX)
      return fail("model file is larger than 2 GiB; store the weights as external data");
    if (!model.ParseFromArray(memory->data(), (int)memory->size()))
      return fail("not a valid ONNX model (protobuf parse failed)");
  } else {
    auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buf)
      return fail("cannot read file: " + buf.getError().message());
    if ((*buf)->getBufferSize() > (size_t)INT_MAX)
      return fail("model file is larger than 2 GiB; store the weights as external data");
    if (!model.ParseFromArray((*buf)->getBufferStart(), (int)(*buf)->getBufferSize()))
      return fail("not a valid ONNX model (protobuf parse failed)");
  }
  if (!model.has_graph() || model.ir_version() == 0)
    return fail(std::string("not a valid ONNX model (") +
                (model.has_graph() ? "no ir_version" : "no graph") + ")");
  if (model.ir_version() < kMinIrVersion || model.ir_version() > kMaxIrVersion)
    return fail("ONNX IR version " + std::to_string(model.ir_version()) + " is not supported (supported: " +
                std::to_string(kMinIrVersion) + "-" + std::to_string(kMaxIrVersion) + ")");
  bool found = false;
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      opset = o.version();
      found = true;
    }
  if (!found)
    return fail("opset_import: no opset for the default ONNX domain");
  if (opset < kMinOpset || opset > kMaxOpset)
    return fail("opset_import: default-domain opset " + std::to_string(opset) +
                " is not supported (supported: " + std::to_string(kMinOpset) + "-" +
                std::to_string(kMaxOpset) + "); re-export with an opset in that range");
  llvm::SmallString<256> d(path);
  llvm::sys::path::remove_filename(d);
  dir = d.empty() ? "." : std::string(d);
  for (const auto &t : model.graph().initializer())
    if (!checkExternal(t, "initializer '" + t.name() + "'"))
      return false;
  return flattenNodes();
}

// External data: location relative to the model's directory, offset/length
// within that file, length matching the dims.
bool Importer::checkExternal(const onnx::TensorProto &t, const std::string &what) {
  if (t.data_location() != onnx::TensorProto::EXTERNAL)
    return true;
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset" || kv.key() == "length") {
      char *end = nullptr;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (kv.value().empty() || *end != 0 || v < 0)
        return fail(what + ": invalid external data " + kv.key() + " '" + kv.value() + "'");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty())
    return fail(what + ": external data has no location");
  if (llvm::sys::path::is_absolute(location))
    return fail(what + ": external data location '" + location + "' must be relative to the model");
  for (auto it = llvm::sys::path::begin(location), e = llvm::sys::path::end(location); it != e; ++it)
    if (*it == "..")
      return fail(what + ": external data location '" + location + "' leaves the model's directory");
  llvm::SmallString<256> full(dir);
  llvm::sys::path::append(full, location);
  std::string fp(full);
  uint64_t size;
  auto it = fileSizes.find(fp);
  if (it != fileSizes.end()) {
    size = it->second;
  } else {
    if (!llvm::sys::fs::is_regular_file(fp) || llvm::sys::fs::file_size(fp, size))
      return fail(what + ": external data file '" + location + "' not found (looked for " + fp + ")");
    fileSizes[fp] = size;
  }
  DType dt;
  if (!dtypeFromOnnx(t.data_type(), dt))
    return fail(what + ": unsupported data type " + onnxTypeName(t.data_type()));
  Shape s(t.dims().begin(), t.dims().end());
  int64_t numel = 1;
  for (int64_t d : s) {
    if (d < 0 || d > (int64_t(1) << 40) || (d && numel > (int64_t(1) << 40) / d))
      return fail(what + ": invalid dims " + shapeStr(s));
    numel *= d;
  }
  int64_t need = numel * onnxElemSize(t.data_type());
  if ((uint64_t)offset > size)
    return fail(what + ": external data offset " + std::to_string(offset) + " is past the end of '" +
                location + "' (" + std::to_string(size) + " bytes)");
  if (length >= 0 && (uint64_t)offset + (uint64_t)length > size)
    return fail(what + ": external data offset " + std::to_string(offset) + " + length " +
                std::to_string(length) + " is past the end of '" + location + "' (" +
                std::to_string(size) + " bytes)");
  if (length >= 0 && length != need)
    return fail(what + ": external data length " + std::to_string(length) + " does not match dims " +
                shapeStr(s) + " of " + onnxTypeName(t.data_type()) + " (" + std::to_string(need) +
                " bytes)");
  if (length < 0 && size - offset < (uint64_t)need)
    return fail(what + ": external data in '" + location + "' from offset " + std::to_string(offset) +
                " is shorter than dims " + shapeStr(s) + " need (" + std::to_string(need) + " bytes)");
  return true;
}

bool Importer::readExternal(const onnx::TensorProto &t, std::string &bytes, std::string &err) {
  std::string location;
  int64_t offset = 0;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::strtoll(kv.value().c_str(), nullptr, 10);
  }
  llvm::SmallString<256> full(dir);
  llvm::sys::path::append(full, location);
  int64_t need = numElements(Shape(t.dims().begin(), t.dims().end())) * onnxElemSize(t.data_type());
  auto buf = llvm::MemoryBuffer::getFileSlice(full, need, offset, /*IsVolatile=*/false);
  if (!buf) {
    err = "cannot read external data '" + location + "': " + buf.getError().message();
    return false;
  }
  bytes.assign((*buf)->getBufferStart(), (*buf)->getBufferSize());
  return true;
}

bool Importer::dataOf(Val &v, const std::string &what) {
  if (v.data)
    return true;
  if (!v.proto)
    return fail("internal error: constant '" + what + "' has no data");
  std::string err, bytes;
  auto t = std::make_shared<Tensor>();
  bool ok;
  if (v.proto->data_location() == onnx::TensorProto::EXTERNAL)
    ok = readExternal(*v.proto, bytes, err) &&
         decodeTensor(*v.proto, bytes.data(), bytes.size(), *t, err);
  else
    ok = decodeTensor(*v.proto, nullptr, 0, *t, err);
  if (!ok)
    return fail("tensor '" + what + "': " + err);
  v.data = t;
  return true;
}

// An initializer or Constant-node tensor: data stays in the file until needed.
ValP Importer::tensorVal(const onnx::TensorProto &t, const std::string &name) {
  auto r = std::make_shared<Val>();
  if (!dtypeFromOnnx(t.data_type(), r->dt)) {
    fail("tensor '" + name + "': unsupported data type " + onnxTypeName(t.data_type()));
    return nullptr;
  }
  r->shape.assign(t.dims().begin(), t.dims().end());
  int64_t numel = 1;
  for (int64_t d : r->shape) {
    if (d < 0 || d > (int64_t(1) << 40) || (d && numel > (int64_t(1) << 40) / d)) {
      fail("tensor '" + name + "': invalid dims " + shapeStr(r->shape));
      return nullptr;
    }
    numel *= d;
  }
  // Inline data must match the dims (external data is checked by checkExternal).
  if (t.data_location() != onnx::TensorProto::EXTERNAL) {
    int64_t have = -1, need = numel;
    if (t.has_raw_data()) {
      have = (int64_t)t.raw_data().size();
      need = numel * onnxElemSize(t.data_type());
    } else if (t.float_data_size()) {
      have = t.float_data_size();
    } else if (t.int32_data_size()) {
      have = t.int32_data_size();
    } else if (t.int64_data_size()) {
      have = t.int64_data_size();
    } else if (t.double_data_size()) {
      have = t.double_data_size();
    } else if (t.uint64_data_size()) {
      have = t.uint64_data_size();
    } else {
      have = 0;
    }
    if (have != need) {
      fail("tensor '" + name + "': holds " + std::to_string(have) + (t.has_raw_data() ? " bytes" : " values") +
           ", dims " + shapeStr(r->shape) + " of " + onnxTypeName(t.data_type()) + " need " +
           std::to_string(need));
      return nullptr;
    }
  }
  r->isConst = true;
  r->proto = &t;
  r->paramName = name;
  int64_t nonUnit = 0;
  for (int64_t d : r->shape)
    nonUnit += d > 1;
  bool weightLike = numElements(r->shape) > 1024 || nonUnit >= 2 || endsWith(name, ".weight") ||
                    endsWith(name, ".bias");
  r->heavy = r->dt == DType::F32 && weightLike;
  if (r->dt == DType::I64 && weightLike)
    r->integerWeight = "'" + name + "' " + shapeStr(r->shape) + " of " + onnxTypeName(t.data_type());
  return r;
}

// Model-local functions (e.g. torch.onnx dynamo exports) are inlined.
bool Importer::flattenNodes() {
  for (const auto &n : model.graph().node()) {
    const onnx::FunctionProto *f = nullptr;
    for (const auto &fn : model.functions())
      if (fn.name() == n.op_type() && fn.domain() == n.domain())
        f = &fn;
    if (f) {
      if (!inlineFunction(n, *f, 0))
        return false;
    } else {
      nodes.push_back(n);
    }
  }
  return true;
}

bool Importer::inlineFunction(const onnx::NodeProto &call, const onnx::FunctionProto &f, int depth) {
  if (depth > 32)
    return fail("function '" + f.name() + "': recursion too deep");
  std::string prefix = f.name() + "#" + std::to_string(inlineCounter++) + "/";
  std::map<std::string, std::string> rename;
  for (int i = 0; i < f.input_size(); ++i)
    rename[f.input(i)] = i < call.input_size() ? call.input(i) : "";
  for (int i = 0; i < f.output_size(); ++i)
    rename[f.output(i)] = i < call.output_size() ? call.output(i) : "";
  auto mapName = [&](const std::string &s) -> std::string {
    if (s.empty())
      return s;
    auto it = rename.find(s);
    return it != rename.end() ? it->second : prefix + s;
  };
  for (const auto &fn : f.node()) {
    onnx::NodeProto n = fn;
    for (int i = 0; i < n.input_size(); ++i)
      n.set_input(i, mapName(n.input(i)));
    for (int i = 0; i < n.output_size(); ++i)
      n.set_output(i, mapName(n.output(i)));
    if (!n.name().empty())
      n.set_name(prefix + n.name());
    // Attribute references take the caller's value (dropped when the caller has none).
    auto *attrs = n.mutable_attribute();
    for (int i = 0; i < attrs->size();) {
      onnx::AttributeProto &a = (*attrs)[i];
      if (a.ref_attr_name().empty()) {
        ++i;
        continue;
      }
      const onnx::AttributeProto *src = findAttr(call, a.ref_attr_name());
      if (src) {
        std::string name = a.name();
        a = *src;
        a.set_name(name);
        ++i;
      } else {
        attrs->DeleteSubrange(i, 1);
      }
    }
    const onnx::FunctionProto *inner = nullptr;
    for (const auto &g : model.functions())
      if (g.name() == n.op_type() && g.domain() == n.domain())
        inner = &g;
    if (inner) {
      if (!inlineFunction(n, *inner, depth + 1))
        return false;
    } else {
      nodes.push_back(std::move(n));
    }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// IR helpers
//===----------------------------------------------------------------------===//

mlir::Value Importer::makeConst(const Tensor &t) {
  auto type = tensorType(t.shape, t.dt);
  mlir::DenseElementsAttr attr;
  int64_t n = t.numel();
  if (t.dt == DType::F32) {
    bool splat = n > 0 && std::all_of(t.f.begin(), t.f.end(), [&](double v) {
                   return (float)Tensor::roundToFloat(v) == (float)Tensor::roundToFloat(t.f[0]) || (std::isnan(v) && std::isnan(t.f[0]));
                 });
    std::vector<float> vals(splat ? 1 : n);
    for (size_t k = 0; k < vals.size(); ++k)
      vals[k] = (float)Tensor::roundToFloat(t.f[k]);
    attr = mlir::DenseElementsAttr::get(type, llvm::ArrayRef<float>(vals));
  } else if (t.dt == DType::I64) {
    std::vector<int32_t> vals(n);
    for (int64_t k = 0; k < n; ++k) {
      if (t.i[k] < INT32_MIN || t.i[k] > INT32_MAX) {
        fail("integer constant " + std::to_string(t.i[k]) + " does not fit in i32");
        return {};
      }
      vals[k] = (int32_t)t.i[k];
    }
    bool splat = n > 0 && std::all_of(vals.begin(), vals.end(), [&](int32_t v) { return v == vals[0]; });
    if (splat)
      vals.resize(1);
    attr = mlir::DenseElementsAttr::get(type, llvm::ArrayRef<int32_t>(vals));
  } else {
    bool splat = n > 0 && std::all_of(t.i.begin(), t.i.end(), [&](int64_t v) { return v == t.i[0]; });
    llvm::SmallVector<bool> vals(splat ? 1 : n);
    for (size_t k = 0; k < vals.size(); ++k)
      vals[k] = t.i[k] != 0;
    attr = mlir::DenseElementsAttr::get(type, llvm::ArrayRef<bool>(vals));
  }
  return b.create<tt::ConstantOp>(loc, type, llvm::cast<mlir::ElementsAttr>(attr));
}

// A constant used by computation that stays in the IR: float initializers
// (weights) become frozen params, everything else a tessera.constant.
mlir::Value Importer::materialize(Val &v) {
  if (v.v)
    return v.v;
  if (v.nanTestOf) {
    nodeFail("uses IsNaN of a value computed from the token ids; that is only supported as the NaN guard "
             "Where(IsNaN(s), c, s) after a Softmax");
    return {};
  }
  if (v.proto && v.dt == DType::F32 && (v.heavy || numElements(v.shape) > 1)) {
    auto it = params.find(v.paramName);
    if (it != params.end() && shapeOf(it->second) == v.shape) {
      v.v = it->second;
      return v.v;
    }
    // Params go to the top of the function, in order of first use.
    mlir::OpBuilder::InsertionGuard g(b);
    if (lastParam)
      b.setInsertionPointAfter(lastParam);
    else
      b.setInsertionPointToStart(b.getInsertionBlock());
    v.v = b.create<tt::ParamOp>(mlir::NameLoc::get(b.getStringAttr(v.paramName), fileLoc),
                                tensorType(v.shape, DType::F32), tt::ParamKind::frozen,
                                v.paramName);
    params[v.paramName] = v.v;
    lastParam = v.v.getDefiningOp();
    return v.v;
  }
  if (!dataOf(v, v.paramName.empty() ? "constant" : v.paramName))
    return {};
  v.v = makeConst(*v.data);
  return v.v;
}

mlir::Value Importer::asFloat(const ValP &v, const std::string &what) {
  if (v->dt == DType::F32)
    return materialize(*v);
  // An integer (e.g. quantized) weight where a float operand is expected:
  // converting it would silently bake its raw codes into the plan.
  if (!v->integerWeight.empty()) {
    nodeFail("initializer " + v->integerWeight +
             " is used as a float operand: weights must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE "
             "(quantized weights are not supported)");
    return {};
  }
  if (v->isConst) {
    if (!dataOf(*v, what))
      return {};
    Tensor t = Tensor::zeros(DType::F32, v->shape);
    for (int64_t k = 0; k < t.numel(); ++k)
      t.set(k, v->data->getF(k));
    return makeConst(t);
  }
  nodeFail(std::string("input '") + what + "' is " + dtypeName(v->dt) +
           " computed from the token ids; only float tensors are supported here");
  return {};
}

bool Importer::constInts(const ValP &v, const std::string &what, std::vector<int64_t> &out) {
  if (!v || !v->isConst)
    return nodeFail("input '" + what + "' must be a constant (here it depends on the token ids)");
  if (!dataOf(*v, what))
    return false;
  out = v->data->toInts();
  return true;
}

bool Importer::constScalar(const ValP &v, double &out) {
  if (!v || !v->isConst || numElements(v->shape) != 1 || !dataOf(*v, "scalar"))
    return false;
  out = v->data->getF(0);
  return true;
}

mlir::Value Importer::binary(tt::BinaryFn fn, mlir::Value x, mlir::Value y) {
  if (!x || !y)
    return {};
  Shape s;
  std::string err;
  if (!broadcast(shapeOf(x), shapeOf(y), s, err)) {
    nodeFail(err);
    return {};
  }
  return b.create<tt::BinaryOp>(loc, fn, x, y);
}

mlir::Value Importer::transpose(mlir::Value x, const std::vector<int64_t> &perm) {
  if (!x)
    return {};
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i)
    identity &= perm[i] == (int64_t)i;
  if (identity)
    return x;
  return b.create<tt::TransposeOp>(loc, x, perm);
}

mlir::Value Importer::slice(mlir::Value x, const std::vector<int64_t> &starts,
                            const std::vector<int64_t> &limits, const std::vector<int64_t> &strides) {
  if (!x)
    return {};
  Shape in = shapeOf(x);
  bool identity = true;
  for (size_t i = 0; i < in.size(); ++i)
    identity &= starts[i] == 0 && limits[i] == in[i] && strides[i] == 1;
  if (identity)
    return x;
  return b.create<tt::SliceOp>(loc, x, starts, limits, strides);
}

mlir::Value Importer::sliceAxis(mlir::Value x, int64_t axis, int64_t start, int64_t len, int64_t step) {
  if (!x)
    return {};
  Shape in = shapeOf(x);
  std::vector<int64_t> s(in.size(), 0), l(in.begin(), in.end()), st(in.size(), 1);
  s[axis] = start;
  l[axis] = len == 0 ? start : start + (len - 1) * step + 1;
  st[axis] = step;
  return slice(x, s, l, st);
}

mlir::Value Importer::concat(const std::vector<mlir::Value> &xs, int64_t axis) {
  for (mlir::Value x : xs)
    if (!x)
      return {};
  if (xs.size() == 1)
    return xs[0];
  return b.create<tt::ConcatOp>(loc, mlir::ValueRange(xs), (uint64_t)axis);
}

mlir::Value Importer::reduce(tt::ReduceFn fn, mlir::Value x, const std::vector<int64_t> &axes, bool keep) {
  if (!x)
    return {};
  return b.create<tt::ReduceOp>(loc, fn, x, axes, keep);
}

mlir::Value Importer::softmaxAlong(mlir::Value x, int64_t axis) {
  if (!x)
    return {};
  int64_t r = (int64_t)shapeOf(x).size();
  if (axis == r - 1)
    return b.create<tt::SoftmaxOp>(loc, x);
  std::vector<int64_t> perm, inv(r);
  for (int64_t d = 0; d < r; ++d)
    if (d != axis)
      perm.push_back(d);
  perm.push_back(axis);
  for (int64_t d = 0; d < r; ++d)
    inv[perm[d]] = d;
  mlir::Value t = transpose(x, perm);
  mlir::Value s = b.create<tt::SoftmaxOp>(loc, t);
  return transpose(s, inv);
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

// The token ids: the input named input_ids, else the first int [batch, seq]
// input; any other non-initializer input is an error.
const onnx::ValueInfoProto *Importer::tokenInput(std::string &err) const {
  const onnx::GraphProto &g = model.graph();
  std::unordered_set<std::string> inits;
  for (const auto &t : g.initializer())
    inits.insert(t.name());
  std::vector<const onnx::ValueInfoProto *> inputs;
  for (const auto &in : g.input())
    if (!inits.count(in.name()))
      inputs.push_back(&in);
  if (inputs.empty()) {
    err = "graph has no input; expected the token ids (int64 or int32 [batch, seq])";
    return nullptr;
  }
  auto isTokenIds = [](const onnx::ValueInfoProto &in) {
    const auto &type = in.type();
    if (!type.has_tensor_type() || (type.tensor_type().elem_type() != onnx::TensorProto::INT64 &&
                                    type.tensor_type().elem_type() != onnx::TensorProto::INT32))
      return false;
    return !type.tensor_type().has_shape() || type.tensor_type().shape().dim_size() == 2;
  };
  const onnx::ValueInfoProto *tokens = nullptr;
  for (const onnx::ValueInfoProto *in : inputs)
    if (in->name() == "input_ids" && isTokenIds(*in))
      tokens = in;
  for (const onnx::ValueInfoProto *in : inputs)
    if (!tokens && isTokenIds(*in))
      tokens = in;
  for (const onnx::ValueInfoProto *in : inputs) {
    if (in == tokens)
      continue;
    const auto &type = in->type();
    if (tokens) {
      err = "graph input '" + in->name() + "' is not supported: the model may only take the token ids ('" +
            tokens->name() + "'); export it without attention_mask / position_ids / past key values";
      return nullptr;
    }
    std::string got = "a non-tensor";
    if (type.has_tensor_type())
      got = std::string(onnxTypeName(type.tensor_type().elem_type())) +
            (type.tensor_type().has_shape()
                 ? " of rank " + std::to_string(type.tensor_type().shape().dim_size())
                 : "");
    err = "graph input '" + in->name() +
          "' is not supported: the only input must be the token ids (int64 or int32 [batch, seq]), got " + got;
    return nullptr;
  }
  return tokens;
}

bool Importer::importGraph(mlir::func::FuncOp func) {
  const onnx::GraphProto &g = model.graph();
  mlir::Block *body = &func.getBody().front();
  b.setInsertionPointToEnd(body);

  for (const auto &t : g.initializer()) {
    ValP v = tensorVal(t, t.name());
    if (!v)
      return false;
    values[t.name()] = v;
  }

  std::string err;
  const onnx::ValueInfoProto *tokens = tokenInput(err);
  if (!tokens)
    return fail(err);
  if (tokens->type().tensor_type().has_shape() && !respecialize) {
    const auto &dims = tokens->type().tensor_type().shape();
    int64_t want[2] = {opts.batch, opts.seq};
    for (int d = 0; d < 2; ++d)
      if (dims.dim(d).has_dim_value() && dims.dim(d).dim_value() > 0 && dims.dim(d).dim_value() != want[d])
        return fail("graph input '" + tokens->name() + "' has fixed " + (d ? "sequence length " : "batch size ") +
                    std::to_string(dims.dim(d).dim_value()) + " but " + (d ? "--seq " : "--batch ") +
                    std::to_string(want[d]) + " was requested; export with dynamic axes");
  }
  auto ids = std::make_shared<Val>();
  ids->dt = DType::I64;
  ids->shape = {opts.batch, opts.seq};
  ids->v = body->getArgument(0);
  values[tokens->name()] = ids;

  if (g.output_size() != 1)
    return fail("the graph must have exactly one output (the logits), it has " +
                std::to_string(g.output_size()));
  const std::string &outName = g.output(0).name();

  // Only nodes the output depends on are imported.
  needed.insert(outName);
  std::vector<bool> live(nodes.size(), false);
  for (int i = (int)nodes.size() - 1; i >= 0; --i) {
    for (const auto &o : nodes[i].output())
      if (!o.empty() && needed.count(o))
        live[i] = true;
    if (live[i])
      for (const auto &in : nodes[i].input())
        if (!in.empty())
          needed.insert(in);
  }
  // Every node with an op outside the supported set, reported at once.
  std::vector<int> unsupported;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto &n = nodes[i];
    bool defaultDomain = n.domain().empty() || n.domain() == "ai.onnx";
    if (live[i] && (!defaultDomain || (!kMappedOps.count(n.op_type()) && !isFoldableOp(n.op_type()))))
      unsupported.push_back((int)i);
  }
  if (!unsupported.empty()) {
    std::string list;
    for (size_t k = 0; k < std::min<size_t>(unsupported.size(), 4); ++k)
      list += (k ? ", " : "") + nodeDesc(unsupported[k]);
    if (unsupported.size() > 4)
      list += " and " + std::to_string(unsupported.size() - 4) + " more";
    return fail(std::to_string(unsupported.size()) + (unsupported.size() == 1 ? " node uses" : " nodes use") +
                " an unsupported op: " + list + "; supported ops: " + kSupportedOps);
  }

  for (size_t i = 0; i < nodes.size(); ++i)
    if (live[i] && !importNode((int)i)) {
      if (respecialize)
        explainStaticFailure((int)i);
      return false;
    }

  auto it = values.find(outName);
  if (it == values.end())
    return fail("graph output '" + outName + "' is not produced by any node");
  ValP out = it->second;
  curNode = -1;
  loc = mlir::NameLoc::get(b.getStringAttr(outName), fileLoc);
  if (out->dt != DType::F32)
    return fail("graph output '" + outName + "' must be float logits, it is " + dtypeName(out->dt));
  if (out->shape.size() != 3 || out->shape[0] != opts.batch || out->shape[1] != opts.seq)
    return fail("graph output '" + outName + "' has shape " + shapeStr(out->shape) +
                ", expected logits [" + std::to_string(opts.batch) + "," + std::to_string(opts.seq) +
                ",vocab]");
  mlir::Value result = materialize(*out);
  if (!result)
    return false;
  b.create<mlir::func::ReturnOp>(loc, result);
  func.setFunctionType(b.getFunctionType(body->getArgumentTypes(), {result.getType()}));
  return true;
}

int64_t Importer::broadcastFoldSize(const onnx::NodeProto &n, std::vector<ValP> &in) {
  const std::string &op = n.op_type();
  std::string err;
  if (op == "ConstantOfShape" || op == "Expand") {
    ValP s = op == "Expand" ? (in.size() > 1 ? in[1] : nullptr) : (in.empty() ? nullptr : in[0]);
    if (op == "Expand" && (in.empty() || !in[0]))
      return -1;
    if (!s || !dataOf(*s, "shape"))
      return -1;
    Shape sh = s->data->toInts();
    if (op == "Expand" && !broadcast(in[0]->shape, sh, sh, err))
      return -1;
    return numElements(sh);
  }
  if (op == "Where" || op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Max" ||
      op == "Min" || op == "Pow" || op == "Sum" || op == "Mean") {
    Shape s;
    for (const ValP &v : in)
      if (v && !broadcast(s, v->shape, s, err))
        return -1;
    int64_t biggest = 0;
    for (const ValP &v : in)
      if (v)
        biggest = std::max(biggest, numElements(v->shape));
    return numElements(s) > biggest ? numElements(s) : -1;
  }
  return -1;
}

bool Importer::importNode(int idx) {
  curNode = idx;
  const onnx::NodeProto &n = nodes[idx];
  const std::string &op = n.op_type();
  std::string label = n.name().empty() ? op + "#" + std::to_string(idx) : n.name();
  loc = mlir::NameLoc::get(b.getStringAttr(label), fileLoc);

  if (!n.domain().empty() && n.domain() != "ai.onnx")
    return nodeFail("unsupported op (domain '" + n.domain() + "'); supported ops: " + kSupportedOps);

  std::vector<ValP> in;
  for (const auto &name : n.input()) {
    if (name.empty()) {
      in.push_back(nullptr);
      continue;
    }
    auto it = values.find(name);
    if (it == values.end())
      return nodeFail("input '" + name + "' is not defined before this node (graph not topologically sorted?)");
    in.push_back(it->second);
  }
  if (respecialize && !specializeInputs(n, in))
    return false;
  std::vector<ValP> out;

  if (op == "Constant") {
    if (n.output_size() != 1 || n.attribute_size() != 1)
      return nodeFail("a Constant needs one output and one value attribute");
    const onnx::AttributeProto &a = n.attribute(0);
    if (a.name() == "value") {
      ValP v = tensorVal(a.t(), n.output(0));
      if (!v || !checkExternal(a.t(), "Constant '" + n.output(0) + "'"))
        return false;
      out.push_back(v);
    } else if (a.name() == "value_float" || a.name() == "value_int") {
      Tensor t = Tensor::zeros(a.name() == "value_int" ? DType::I64 : DType::F32, {});
      if (a.name() == "value_int")
        t.i[0] = a.i();
      else
        t.set(0, a.f());
      out.push_back(constVal(t));
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
      out.push_back(constVal(t));
    } else {
      return nodeFail("unsupported Constant attribute '" + a.name() + "'");
    }
  } else {
    // Fold on the CPU when every input is known (Shape and Size need only shapes),
    // unless that would copy a weight into a new constant or blow up a broadcast.
    bool shapeOnly = op == "Shape" || op == "Size";
    bool allConst = true, anyHeavy = false;
    for (const ValP &v : in)
      if (v) {
        allConst &= v->isConst;
        anyHeavy |= v->heavy;
      }
    bool fold = isFoldableOp(op) && (shapeOnly || (allConst && !anyHeavy));
    if (fold && !shapeOnly) {
      int64_t size = broadcastFoldSize(n, in);
      if (!error.empty())
        return false;
      if (size > kMaxBroadcastFold)
        fold = false;
    }
    if (fold) {
      std::vector<const Tensor *> args;
      std::vector<Tensor> shapeOnlyArgs;
      shapeOnlyArgs.reserve(in.size());
      for (size_t k = 0; k < in.size(); ++k) {
        const ValP &v = in[k];
        if (!v) {
          args.push_back(nullptr);
        } else if (shapeOnly) {
          Tensor t;
          t.dt = v->dt;
          t.shape = v->shape;
          shapeOnlyArgs.push_back(std::move(t));
          args.push_back(&shapeOnlyArgs.back());
        } else {
          if (!dataOf(*v, n.input(k)))
            return false;
          args.push_back(v->data.get());
        }
      }
      std::vector<Tensor> res;
      std::string err;
      FoldResult r;
      try {
        r = foldNode(n, opset, args, res, err);
      } catch (const std::exception &e) { // e.g. a shape too large to allocate
        r = FoldResult::Error;
        err = std::string("cannot evaluate this node on constants: ") + e.what();
      }
      if (r == FoldResult::Error)
        return nodeFail(err);
      if (r == FoldResult::Folded) {
        std::string integerWeight;
        for (const ValP &v : in)
          if (v && !v->integerWeight.empty())
            integerWeight = v->integerWeight;
        for (Tensor &t : res) {
          if (t.numel() > kMaxFoldElements)
            return nodeFail("folded constant " + shapeStr(t.shape) + " is too large");
          out.push_back(constVal(std::move(t)));
          if (out.back()->dt == DType::I64) // still integer codes
            out.back()->integerWeight = integerWeight;
          // A quantized weight stays one through casts, layout changes and
          // scaling: the MatMul it reaches reports it.
          static const std::set<std::string> dataOps = {"Cast", "CastLike", "Transpose", "Reshape", "Squeeze",
                                                        "Unsqueeze", "Flatten", "Identity"};
          static const std::set<std::string> scaleOps = {"Mul", "Div", "Sub", "Add"};
          for (size_t a = 0; a < in.size() && out.back()->integerWeight.empty(); ++a)
            if (in[a] && ((a == 0 && dataOps.count(op)) || scaleOps.count(op)))
              out.back()->integerWeight = integerWeightOf(*in[a]);
        }
      }
    }
    if (out.empty() && !emitDynamic(n, in, out))
      return false;
  }

  for (int k = 0; k < n.output_size(); ++k) {
    const std::string &name = n.output(k);
    if (name.empty())
      continue;
    if (k >= (int)out.size() || !out[k]) {
      if (needed.count(name))
        return nodeFail("output " + std::to_string(k) + " ('" + name + "') is not supported");
      continue;
    }
    values[name] = out[k];
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Re-specialising a static export (StaticSpecialize.h)
//===----------------------------------------------------------------------===//

// Rewrites the constants of `n` that the export baked for its own shape:
// Reshape / Expand targets, and position tables (RoPE, masks) that meet a
// value whose sequence (or batch) dims changed.
bool Importer::specializeInputs(const onnx::NodeProto &n, std::vector<ValP> &in) {
  const std::string &op = n.op_type();
  auto baked = [&](size_t k) { return k < in.size() && in[k] && in[k]->isConst && in[k]->proto; };
  auto oldShape = [&](size_t k, Shape &s) {
    auto it = exportShapes.find(n.input(k));
    if (it == exportShapes.end())
      return false;
    s = it->second;
    return true;
  };
  auto hint = std::string("; export the model with dynamic shapes (torch.onnx.export(..., dynamic_shapes=...))");
  if ((op == "Reshape" || op == "Expand") && baked(1) && in[0]) {
    Shape o;
    if (!oldShape(0, o) || o == in[0]->shape)
      return true;
    std::vector<int64_t> spec, newSpec;
    if (!constInts(in[1], n.input(1), spec))
      return false;
    std::string err;
    bool ok = op == "Reshape"
                  ? respecializeReshape(o, spec, attrInt(n, "allowzero", 0) != 0, in[0]->shape,
                                        {exportDims[0], exportDims[1], opts.batch, opts.seq}, newSpec, err)
                  : respecializeExpand(o, spec, in[0]->shape, newSpec, err);
    if (!ok)
      return nodeFail("cannot adapt the export's shape constant '" + n.input(1) + "' " + shapeStr(spec) +
                      " to input " + shapeStr(in[0]->shape) + ": " + err + hint);
    Tensor t = Tensor::zeros(DType::I64, {(int64_t)newSpec.size()});
    t.i = newSpec;
    in[1] = constVal(t);
    return true;
  }
  static const std::set<std::string> elementwise = {
      "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less",
      "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"};
  if (!elementwise.count(op))
    return true;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!baked(k))
      continue;
    const Shape &c = in[k]->shape;
    Shape want = c;
    for (size_t j = 0; j < in.size(); ++j) {
      Shape oj;
      if (j == k || !in[j] || !oldShape(j, oj) || oj == in[j]->shape || oj.size() != in[j]->shape.size())
        continue;
      for (size_t d = 1; d <= std::min(c.size(), oj.size()); ++d) {
        size_t ci = c.size() - d, ji = oj.size() - d;
        if (c[ci] != 1 && c[ci] == oj[ji] && in[j]->shape[ji] != oj[ji])
          want[ci] = in[j]->shape[ji];
      }
    }
    if (want == c)
      continue;
    const std::string &name = n.input(k);
    std::string key = name + shapeStr(want);
    if (auto it = regenerated.find(key); it != regenerated.end()) {
      in[k] = it->second;
      continue;
    }
    if (!dataOf(*in[k], name))
      return false;
    // The other RoPE table of the same shape (cos for sin and back) pins the
    // frequencies more precisely than either alone; layers with another theta
    // have their own pair, so each candidate is tried (verification decides).
    std::vector<const Tensor *> siblings;
    bool isCos, sibCos;
    if (in[k]->dt == DType::F32 && ropeKind(*in[k]->data, isCos))
      for (const auto &t : model.graph().initializer()) {
        if (t.name() == name || Shape(t.dims().begin(), t.dims().end()) != c)
          continue;
        auto it = values.find(t.name());
        if (it == values.end() || it->second->dt != DType::F32 || !dataOf(*it->second, t.name()))
          return false;
        if (ropeKind(*it->second->data, sibCos) && sibCos != isCos)
          siblings.push_back(it->second->data.get());
      }
    siblings.push_back(nullptr);
    Tensor t;
    std::string what, err;
    bool ok = false;
    for (const Tensor *sibling : siblings) {
      err.clear();
      if (in[k]->dt == DType::F32 && regeneratePositionTable(*in[k]->data, sibling, want, t, what, err)) {
        ok = true;
        break;
      }
    }
    // A mask that is plainly causal at the export length may be a sliding
    // window of at least that many tokens: when another mask of the model is
    // causal too, they differ somewhere beyond the export length (else the
    // model would not have two), and a longer --seq cannot be built from them.
    if (ok && want[want.size() - 2] > c[c.size() - 2] && isPlainCausalMask(*in[k]->data))
      for (const auto &other : model.graph().initializer()) {
        if (other.name() == name || Shape(other.dims().begin(), other.dims().end()) != c)
          continue;
        auto it = values.find(other.name());
        if (it == values.end() || it->second->dt != DType::F32 || !dataOf(*it->second, other.name()))
          return false;
        if (isPlainCausalMask(*it->second->data))
          return nodeFail("initializers '" + name + "' and '" + other.name() + "' are both plain causal masks at the "
                          "export length " + std::to_string(exportDims[1]) + ": a model with two masks has a sliding "
                          "window in one of them, longer than the export, which the baked masks cannot show; export "
                          "the model at --seq " + std::to_string(opts.seq) + " or longer, or with dynamic shapes");
      }
    if (!ok)
      return nodeFail("initializer '" + name + "' " + shapeStr(c) + " has the export shape [" +
                      std::to_string(exportDims[0]) + "," + std::to_string(exportDims[1]) +
                      "] baked in and is not a recognised RoPE table or attention mask (" +
                      (err.empty() ? "not float" : err) + ")" + hint);
    in[k] = constVal(std::move(t));
    regenerated[key] = in[k];
  }
  return true;
}

// A node of a re-specialised static export failed: point at the constant that
// most likely still holds the export length.
void Importer::explainStaticFailure(int idx) {
  const onnx::NodeProto &n = nodes[idx];
  if (error.find("dynamic shapes") != std::string::npos)
    return;
  for (const auto &name : n.input()) {
    auto it = values.find(name);
    if (it == values.end() || !it->second->proto)
      continue;
    for (int64_t d : it->second->shape)
      if ((d == exportDims[1] && d != opts.seq) || (d == exportDims[0] && d > 1 && d != opts.batch)) {
        error += " (initializer '" + name + "' " + shapeStr(it->second->shape) +
                 " may hold the export shape; export the model with dynamic shapes)";
        return;
      }
  }
}

//===----------------------------------------------------------------------===//
// Node -> tessera ops
//===----------------------------------------------------------------------===//

bool Importer::emitDynamic(const onnx::NodeProto &n, std::vector<ValP> &in, std::vector<ValP> &out) {
  const std::string &op = n.op_type();
  std::string err;
  auto arg = [&](size_t k) -> ValP { return k < in.size() ? in[k] : nullptr; };
  auto needIn = [&](size_t k) -> bool {
    if (!arg(k))
      return nodeFail("missing input " + std::to_string(k));
    return true;
  };
  auto push = [&](mlir::Value v) -> bool {
    if (!v)
      return false;
    // Kernels index with 32-bit integers: a larger value is a malformed (or
    // hostile) shape, refused here rather than after minutes of lowering.
    if (numElements(shapeOf(v)) > kMaxValueElements)
      return nodeFail("the result of shape " + shapeStr(shapeOf(v)) + " has more than 2^31 elements");
    out.push_back(dyn(v));
    return true;
  };
  auto rankOf = [&](size_t k) { return (int64_t)arg(k)->shape.size(); };
  for (size_t k = 0; k < in.size(); ++k)
    if (in[k] && !in[k]->isConst && numElements(in[k]->shape) == 0)
      return nodeFail("empty tensors are not supported (input " + std::to_string(k) + " has shape " +
                      shapeStr(in[k]->shape) + ")");

  static const std::map<std::string, tt::UnaryFn> unaryFns = {
      {"Neg", tt::UnaryFn::neg},         {"Exp", tt::UnaryFn::exp},
      {"Log", tt::UnaryFn::log},         {"Sqrt", tt::UnaryFn::sqrt},
      {"Reciprocal", tt::UnaryFn::reciprocal}, {"Sigmoid", tt::UnaryFn::sigmoid},
      {"Tanh", tt::UnaryFn::tanh},       {"Cos", tt::UnaryFn::cos},
      {"Sin", tt::UnaryFn::sin},         {"Relu", tt::UnaryFn::relu},
      {"Abs", tt::UnaryFn::abs}};
  static const std::map<std::string, tt::BinaryFn> binaryFns = {
      {"Add", tt::BinaryFn::add}, {"Sub", tt::BinaryFn::sub}, {"Mul", tt::BinaryFn::mul},
      {"Div", tt::BinaryFn::div}, {"Pow", tt::BinaryFn::pow}, {"Max", tt::BinaryFn::max},
      {"Min", tt::BinaryFn::min}, {"Sum", tt::BinaryFn::add}, {"Mean", tt::BinaryFn::add}};

  auto definedBy = [](mlir::Value v, tt::UnaryFn fn) -> mlir::Value {
    if (auto u = v.getDefiningOp<tt::UnaryOp>())
      if (u.getFn() == fn)
        return u.getInput();
    return {};
  };

  // Elementwise, one input.
  if (auto it = unaryFns.find(op); it != unaryFns.end()) {
    if (!needIn(0))
      return false;
    mlir::Value x = asFloat(arg(0), n.input(0));
    if (!x)
      return false;
    if (it->second == tt::UnaryFn::reciprocal)
      if (mlir::Value s = definedBy(x, tt::UnaryFn::sqrt))
        return push(unary(tt::UnaryFn::rsqrt, s));
    return push(unary(it->second, x));
  }

  // Elementwise, two or more inputs.
  if (auto it = binaryFns.find(op); it != binaryFns.end()) {
    if (!needIn(0) || !needIn(1))
      return false;
    double c;
    if (op == "Pow" && constScalar(arg(1), c) && rankOf(1) <= rankOf(0) &&
        (c == 1 || c == 2 || c == 0.5 || c == -0.5 || c == -1)) {
      mlir::Value x = asFloat(arg(0), n.input(0));
      if (!x)
        return false;
      if (c == 1)
        return push(x);
      if (c == 2)
        return push(binary(tt::BinaryFn::mul, x, x));
      if (c == 0.5)
        return push(unary(tt::UnaryFn::sqrt, x));
      if (c == -0.5)
        return push(unary(tt::UnaryFn::rsqrt, x));
      return push(unary(tt::UnaryFn::reciprocal, x));
    }
    if (op == "Div" && constScalar(arg(0), c) && c == 1 && rankOf(0) <= rankOf(1)) {
      mlir::Value y = asFloat(arg(1), n.input(1));
      if (!y)
        return false;
      if (mlir::Value s = definedBy(y, tt::UnaryFn::sqrt))
        return push(unary(tt::UnaryFn::rsqrt, s));
      return push(unary(tt::UnaryFn::reciprocal, y));
    }
    std::vector<mlir::Value> xs;
    for (size_t k = 0; k < in.size(); ++k) {
      if (!needIn(k))
        return false;
      mlir::Value x = asFloat(arg(k), n.input(k));
      if (!x)
        return false;
      xs.push_back(x);
    }
    if (op == "Mul" && xs.size() == 2) // x * sigmoid(x) -> silu(x)
      for (int k = 0; k < 2; ++k)
        if (mlir::Value s = definedBy(xs[k], tt::UnaryFn::sigmoid))
          if (s == xs[1 - k] && shapeOf(s) == shapeOf(xs[k]))
            return push(unary(tt::UnaryFn::silu, s));
    mlir::Value acc = xs[0];
    for (size_t k = 1; k < xs.size() && acc; ++k)
      acc = binary(it->second, acc, xs[k]);
    if (acc && op == "Mean" && xs.size() > 1)
      acc = binary(tt::BinaryFn::div, acc, scalarF((float)xs.size()));
    return push(acc);
  }

  if (op == "Identity" || op == "Dropout") {
    if (!needIn(0))
      return false;
    if (op == "Dropout" && n.output_size() > 1 && needed.count(n.output(1)))
      return nodeFail("the Dropout mask output is not supported");
    out.push_back(arg(0)); // keeps the param name of a weight passed through
    return true;
  }

  if (op == "Cast" || op == "CastLike") {
    if (!needIn(0))
      return false;
    DType to;
    if (op == "Cast") {
      int32_t t = (int32_t)attrInt(n, "to", 0);
      if (!dtypeFromOnnx(t, to))
        return nodeFail(std::string("unsupported cast target type ") + onnxTypeName(t));
    } else {
      if (!needIn(1))
        return false;
      to = arg(1)->dt;
    }
    if (to == arg(0)->dt) {
      out.push_back(arg(0));
      return true;
    }
    mlir::Value x = materialize(*arg(0));
    if (!x)
      return false;
    return push(b.create<tt::CastOp>(loc, tensorType(shapeOf(x), to), x));
  }

  if (op == "MatMul" || op == "Gemm") {
    if (!needIn(0) || !needIn(1))
      return false;
    for (int k = 0; k < 2; ++k)
      if (std::string w = integerWeightOf(*arg(k)); !w.empty())
        return nodeFail("input " + std::to_string(k) + " is the integer initializer " + w +
                        " (a quantized weight): LoRA adapts float weights only; export the model in float32, "
                        "float16 or bfloat16");
    mlir::Value a = asFloat(arg(0), n.input(0)), w = asFloat(arg(1), n.input(1));
    if (!a || !w)
      return false;
    bool ta = false, tb = false;
    bool dropM = false, dropN = false;
    if (op == "Gemm") {
      if (rankOf(0) != 2 || rankOf(1) != 2)
        return nodeFail("Gemm inputs must be matrices");
      ta = attrInt(n, "transA", 0) != 0;
      tb = attrInt(n, "transB", 0) != 0;
    } else {
      if (rankOf(0) == 0 || rankOf(1) == 0)
        return nodeFail("MatMul of a scalar");
      if (rankOf(0) == 1) {
        Shape s = shapeOf(a);
        s.insert(s.begin(), 1);
        a = reshape(a, s);
        dropM = true;
      }
      if (rankOf(1) == 1) {
        Shape s = shapeOf(w);
        s.push_back(1);
        w = reshape(w, s);
        dropN = true;
      }
    }
    // MatMul(x, Transpose(W)) -> matmul {transpose_rhs}: the weight stays a param.
    auto swapsLastTwo = [](mlir::Value v) -> mlir::Value {
      auto t = v.getDefiningOp<tt::TransposeOp>();
      if (!t)
        return {};
      auto perm = t.getPerm();
      int64_t r = (int64_t)perm.size();
      for (int64_t d = 0; d < r - 2; ++d)
        if (perm[d] != d)
          return {};
      return r >= 2 && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 ? t.getInput() : mlir::Value();
    };
    if (mlir::Value src = swapsLastTwo(w)) {
      w = src;
      tb = !tb;
    }
    if (mlir::Value src = swapsLastTwo(a)) {
      a = src;
      ta = !ta;
    }
    Shape sa = shapeOf(a), sb = shapeOf(w);
    int64_t ra = (int64_t)sa.size(), rb = (int64_t)sb.size();
    int64_t M = ta ? sa[ra - 1] : sa[ra - 2], K = ta ? sa[ra - 2] : sa[ra - 1];
    int64_t K2 = tb ? sb[rb - 1] : sb[rb - 2], N = tb ? sb[rb - 2] : sb[rb - 1];
    if (K != K2)
      return nodeFail("contraction sizes differ: " + shapeStr(arg(0)->shape) + " x " +
                      shapeStr(arg(1)->shape));
    Shape batch;
    if (!broadcast(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2), batch, err))
      return nodeFail(err);
    mlir::Value r = b.create<tt::MatmulOp>(loc, a, w, ta, tb);
    Shape rs = shapeOf(r);
    if (dropM || dropN) {
      Shape s = rs;
      if (dropN)
        s.erase(s.end() - 1);
      if (dropM)
        s.erase(s.end() - (dropN ? 1 : 2));
      r = reshape(r, s);
    }
    if (op == "Gemm") {
      float alpha = attrFloat(n, "alpha", 1.0f), beta = attrFloat(n, "beta", 1.0f);
      if (alpha != 1.0f)
        r = binary(tt::BinaryFn::mul, r, scalarF(alpha));
      if (arg(2) && beta != 0.0f && r) {
        mlir::Value c = asFloat(arg(2), n.input(2));
        if (!c)
          return false;
        Shape bs;
        if (!broadcast(rs, arg(2)->shape, bs, err) || bs != rs)
          return nodeFail("Gemm bias " + shapeStr(arg(2)->shape) + " does not broadcast to " +
                          shapeStr(rs));
        if (beta != 1.0f)
          c = binary(tt::BinaryFn::mul, c, scalarF(beta));
        r = c ? binary(tt::BinaryFn::add, r, c) : mlir::Value();
      }
    }
    return push(r);
  }

  if (op == "Softmax" || op == "LogSoftmax") {
    if (!needIn(0))
      return false;
    mlir::Value x = asFloat(arg(0), n.input(0));
    int64_t axis;
    if (!x || !normAxis(attrInt(n, "axis", -1), rankOf(0), axis, err))
      return x ? nodeFail(err) : false;
    mlir::Value s = softmaxAlong(x, axis);
    return push(op == "Softmax" ? s : unary(tt::UnaryFn::log, s));
  }

  if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin" ||
      op == "ReduceSumSquare" || op == "ReduceL2") {
    if (!needIn(0))
      return false;
    mlir::Value x = asFloat(arg(0), n.input(0));
    if (!x)
      return false;
    std::vector<int64_t> axesIn;
    Tensor axesT;
    bool haveAxes = arg(1) != nullptr;
    if (haveAxes) {
      if (!constInts(arg(1), n.input(1), axesIn))
        return false;
      axesT = Tensor::zeros(DType::I64, {(int64_t)axesIn.size()});
      axesT.i = axesIn;
    }
    std::vector<int64_t> axes;
    bool noop;
    if (!reduceAxes(n, rankOf(0), haveAxes ? &axesT : nullptr, axes, noop, err))
      return nodeFail(err);
    bool keep = attrInt(n, "keepdims", 1) != 0;
    if (noop)
      return push(x);
    if (op == "ReduceMin") {
      mlir::Value m = reduce(tt::ReduceFn::max, unary(tt::UnaryFn::neg, x), axes, keep);
      return push(unary(tt::UnaryFn::neg, m));
    }
    if (op == "ReduceSumSquare" || op == "ReduceL2") {
      mlir::Value s = reduce(tt::ReduceFn::sum, binary(tt::BinaryFn::mul, x, x), axes, keep);
      return push(op == "ReduceL2" ? unary(tt::UnaryFn::sqrt, s) : s);
    }
    tt::ReduceFn fn = op == "ReduceMean" ? tt::ReduceFn::mean
                      : op == "ReduceSum" ? tt::ReduceFn::sum
                                          : tt::ReduceFn::max;
    return push(reduce(fn, x, axes, keep));
  }

  if (op == "LayerNormalization") {
    if (!needIn(0) || !needIn(1))
      return false;
    for (int k = 1; k < n.output_size(); ++k)
      if (needed.count(n.output(k)))
        return nodeFail("the Mean / InvStdDev outputs of LayerNormalization are not supported");
    mlir::Value x = asFloat(arg(0), n.input(0));
    int64_t axis;
    if (!x || !normAxis(attrInt(n, "axis", -1), rankOf(0), axis, err))
      return x ? nodeFail(err) : false;
    std::vector<int64_t> axes;
    for (int64_t d = axis; d < rankOf(0); ++d)
      axes.push_back(d);
    float eps = attrFloat(n, "epsilon", 1e-5f);
    mlir::Value mean = reduce(tt::ReduceFn::mean, x, axes, true);
    mlir::Value d = binary(tt::BinaryFn::sub, x, mean);
    mlir::Value var = reduce(tt::ReduceFn::mean, binary(tt::BinaryFn::mul, d, d), axes, true);
    mlir::Value rstd = unary(tt::UnaryFn::rsqrt, binary(tt::BinaryFn::add, var, scalarF(eps)));
    mlir::Value y = binary(tt::BinaryFn::mul, d, rstd);
    mlir::Value scale = asFloat(arg(1), n.input(1));
    if (!scale)
      return false;
    y = binary(tt::BinaryFn::mul, y, scale);
    if (arg(2)) {
      mlir::Value bias = asFloat(arg(2), n.input(2));
      if (!bias)
        return false;
      y = binary(tt::BinaryFn::add, y, bias);
    }
    if (y && shapeOf(y) != arg(0)->shape)
      return nodeFail("scale/bias do not broadcast to the input");
    return push(y);
  }

  if (op == "Reshape" || op == "Flatten" || op == "Unsqueeze" || op == "Squeeze") {
    if (!needIn(0))
      return false;
    const Shape &s0 = arg(0)->shape;
    Shape s;
    if (op == "Reshape") {
      std::vector<int64_t> spec;
      if (!needIn(1) || !constInts(arg(1), n.input(1), spec))
        return false;
      if (!reshapeTarget(s0, spec, attrInt(n, "allowzero", 0) != 0, s, err))
        return nodeFail(err);
    } else if (op == "Flatten") {
      int64_t r = (int64_t)s0.size(), axis = attrInt(n, "axis", 1);
      if (axis < 0)
        axis += r;
      if (axis < 0 || axis > r)
        return nodeFail("axis out of range");
      int64_t a = 1, c = 1;
      for (int64_t d = 0; d < r; ++d)
        (d < axis ? a : c) *= s0[d];
      s = {a, c};
    } else {
      std::vector<int64_t> axes;
      bool have = false;
      if (opset >= 13 && arg(1)) {
        if (!constInts(arg(1), n.input(1), axes))
          return false;
        have = true;
      } else if (opset < 13) {
        have = attrInts(n, "axes", axes);
      }
      bool ok = op == "Unsqueeze" ? unsqueezeShape(s0, axes, s, err)
                                  : squeezeShape(s0, have ? &axes : nullptr, s, err);
      if (!ok)
        return nodeFail(err);
    }
    mlir::Value x = materialize(*arg(0));
    return x && push(reshape(x, s));
  }

  if (op == "Transpose") {
    if (!needIn(0))
      return false;
    int64_t r = rankOf(0);
    std::vector<int64_t> perm;
    if (!attrInts(n, "perm", perm))
      for (int64_t d = r - 1; d >= 0; --d)
        perm.push_back(d);
    std::vector<bool> seen(r, false);
    if ((int64_t)perm.size() != r)
      return nodeFail("perm has the wrong length");
    for (int64_t &p : perm) {
      if (!normAxis(p, r, p, err) || seen[p])
        return nodeFail("invalid perm");
      seen[p] = true;
    }
    mlir::Value x = materialize(*arg(0));
    return x && push(transpose(x, perm));
  }

  if (op == "Expand") {
    std::vector<int64_t> spec;
    if (!needIn(0) || !needIn(1) || !constInts(arg(1), n.input(1), spec))
      return false;
    Shape s;
    if (!broadcast(arg(0)->shape, spec, s, err))
      return nodeFail(err);
    mlir::Value x = materialize(*arg(0));
    return x && push(broadcastTo(x, s));
  }

  if (op == "ConstantOfShape") {
    std::vector<int64_t> s;
    if (!needIn(0) || !constInts(arg(0), n.input(0), s))
      return false;
    Tensor v = Tensor::zeros(DType::F32, {});
    if (const auto *a = findAttr(n, "value")) {
      if (!decodeTensor(a->t(), nullptr, 0, v, err))
        return nodeFail("value: " + err);
      v.shape = {};
    }
    mlir::Value c = makeConst(v);
    return c && push(broadcastTo(c, s));
  }

  if (op == "Slice") {
    std::vector<int64_t> starts, ends, axes, steps;
    if (!needIn(0) || !needIn(1) || !needIn(2) || !constInts(arg(1), n.input(1), starts) ||
        !constInts(arg(2), n.input(2), ends))
      return false;
    if (arg(3) && !constInts(arg(3), n.input(3), axes))
      return false;
    if (arg(4) && !constInts(arg(4), n.input(4), steps))
      return false;
    for (int64_t st : steps)
      if (st < 0)
        return nodeFail("negative slice steps are not supported on values computed from the token ids");
    std::vector<SliceDim> dims;
    if (!sliceParams(arg(0)->shape, starts, ends, arg(3) ? &axes : nullptr, arg(4) ? &steps : nullptr,
                     dims, err))
      return nodeFail(err);
    std::vector<int64_t> s, l, st;
    for (const SliceDim &d : dims) {
      s.push_back(d.len ? d.start : 0);
      l.push_back(d.len ? d.start + (d.len - 1) * d.step + 1 : 0);
      st.push_back(d.step);
    }
    mlir::Value x = materialize(*arg(0));
    return x && push(slice(x, s, l, st));
  }

  if (op == "Split") {
    if (!needIn(0))
      return false;
    int64_t axis;
    if (!normAxis(attrInt(n, "axis", 0), rankOf(0), axis, err))
      return nodeFail(err);
    std::vector<int64_t> split, sizes;
    bool have = false;
    if (opset >= 13 && arg(1)) {
      if (!constInts(arg(1), n.input(1), split))
        return false;
      have = true;
    } else if (opset < 13) {
      have = attrInts(n, "split", split);
    }
    int64_t nOut = findAttr(n, "num_outputs") ? attrInt(n, "num_outputs", 1) : n.output_size();
    if (!splitSizes(arg(0)->shape[axis], have ? &split : nullptr, nOut, sizes, err))
      return nodeFail(err);
    mlir::Value x = materialize(*arg(0));
    if (!x)
      return false;
    int64_t start = 0;
    for (int64_t s : sizes) {
      out.push_back(dyn(sliceAxis(x, axis, start, s)));
      start += s;
    }
    return true;
  }

  if (op == "Concat") {
    int64_t axis;
    if (in.empty() || !needIn(0) || !normAxis(attrInt(n, "axis", 0), rankOf(0), axis, err))
      return err.empty() ? false : nodeFail(err);
    DType dt = arg(0)->dt;
    for (const ValP &v : in)
      if (v && v->dt == DType::F32)
        dt = DType::F32;
    std::vector<mlir::Value> xs;
    for (size_t k = 0; k < in.size(); ++k) {
      if (!needIn(k))
        return false;
      if (arg(k)->shape.size() != arg(0)->shape.size())
        return nodeFail("inputs have different ranks");
      for (size_t d = 0; d < arg(k)->shape.size(); ++d)
        if ((int64_t)d != axis && arg(k)->shape[d] != arg(0)->shape[d])
          return nodeFail("input shapes " + shapeStr(arg(0)->shape) + " and " + shapeStr(arg(k)->shape) +
                          " differ off the concat axis");
      if (arg(k)->shape[axis] == 0)
        continue;
      mlir::Value x = dt == DType::F32 ? asFloat(arg(k), n.input(k)) : materialize(*arg(k));
      if (!x)
        return false;
      if (dtOf(x) != dt)
        return nodeFail("inputs have different element types");
      xs.push_back(x);
    }
    if (xs.empty())
      return nodeFail("all inputs are empty");
    return push(concat(xs, axis));
  }

  if (op == "Gather") {
    if (!needIn(0) || !needIn(1))
      return false;
    int64_t axis;
    if (!normAxis(attrInt(n, "axis", 0), rankOf(0), axis, err))
      return nodeFail(err);
    ValP data = arg(0), idx = arg(1);
    Shape ds = data->shape;
    int64_t dim = ds[axis];
    if (idx->dt == DType::F32)
      return nodeFail("Gather indices must be integers");
    if (idx->isConst) {
      std::vector<int64_t> ix;
      if (!constInts(idx, n.input(1), ix))
        return false;
      for (int64_t &k : ix) {
        if (k < -dim || k >= dim)
          return nodeFail("index " + std::to_string(k) + " out of range for dim " + std::to_string(dim));
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
        mlir::Value x = materialize(*data);
        return x && push(reshape(sliceAxis(x, axis, ix[0], (int64_t)ix.size(), step), os));
      }
      if (data->dt != DType::F32)
        return nodeFail("gathering integer data at irregular indices is not supported");
      Tensor t = Tensor::zeros(DType::I64, idx->shape);
      t.i = ix;
      mlir::Value x = materialize(*data), iv = makeConst(t);
      return x && iv && push(b.create<tt::GatherOp>(loc, x, iv, (uint64_t)axis));
    }
    if (data->dt != DType::F32)
      return nodeFail("gathering from integer data with indices computed from the token ids is not supported");
    mlir::Value x = materialize(*data), iv = materialize(*idx);
    if (!x || !iv)
      return false;
    if (dtOf(iv) != DType::I64)
      iv = b.create<tt::CastOp>(loc, tensorType(shapeOf(iv), DType::I64), iv);
    return push(b.create<tt::GatherOp>(loc, x, iv, (uint64_t)axis));
  }

  if (op == "IsNaN") { // resolved by the Where that consumes it (softmaxNanGuard)
    if (!needIn(0))
      return false;
    auto r = std::make_shared<Val>();
    r->dt = DType::Bool;
    r->shape = arg(0)->shape;
    r->nanTestOf = arg(0);
    out.push_back(r);
    return true;
  }

  if (op == "Where") {
    if (!needIn(0) || !needIn(1) || !needIn(2))
      return false;
    if (arg(0)->nanTestOf && arg(0)->nanTestOf == arg(2) && arg(2)->v) {
      mlir::Value s = softmaxNanGuard(arg(2)->v, arg(1));
      return s && push(s);
    }
    if (arg(0)->dt != DType::Bool)
      return nodeFail("condition must be bool");
    mlir::Value c = materialize(*arg(0)), x = asFloat(arg(1), n.input(1)), y = asFloat(arg(2), n.input(2));
    if (!c || !x || !y)
      return false;
    Shape s;
    if (!broadcast(shapeOf(c), shapeOf(x), s, err) || !broadcast(s, shapeOf(y), s, err))
      return nodeFail(err);
    return push(b.create<tt::SelectOp>(loc, c, x, y));
  }

  if (op == "Trilu") {
    if (!needIn(0))
      return false;
    int64_t r = rankOf(0);
    if (r < 2)
      return nodeFail("input must have rank >= 2");
    std::vector<int64_t> kv = {0};
    if (arg(1) && !constInts(arg(1), n.input(1), kv))
      return false;
    bool upper = attrInt(n, "upper", 1) != 0;
    int64_t N = arg(0)->shape[r - 2], M = arg(0)->shape[r - 1];
    Tensor mask = Tensor::zeros(DType::Bool, {N, M});
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < M; ++j)
        mask.i[i * M + j] = upper ? (j - i >= kv[0]) : (j - i <= kv[0]);
    mlir::Value x = asFloat(arg(0), n.input(0)), c = makeConst(mask);
    if (!x || !c)
      return false;
    return push(b.create<tt::SelectOp>(loc, c, x, scalarF(0)));
  }

  if (op == "Tile") {
    std::vector<int64_t> rep;
    if (!needIn(0) || !needIn(1) || !constInts(arg(1), n.input(1), rep))
      return false;
    if ((int64_t)rep.size() != rankOf(0))
      return nodeFail("repeats length differs from the rank");
    mlir::Value x = materialize(*arg(0));
    if (!x)
      return false;
    // Each copy is a concat operand: bound the copies as well as the result.
    int64_t tiled = numElements(shapeOf(x)), copies = 1;
    for (size_t d = 0; d < rep.size(); ++d)
      if (rep[d] < 1 || __builtin_mul_overflow(tiled, rep[d], &tiled) || tiled > kMaxValueElements ||
          (copies *= rep[d]) > 65536)
        return nodeFail(rep[d] < 1 ? "repeats must be >= 1"
                                   : "repeats " + shapeStr(rep) + " are too many (at most 65536 copies, 2^31 elements)");
    for (size_t d = 0; d < rep.size(); ++d) {
      if (rep[d] > 1)
        x = concat(std::vector<mlir::Value>(rep[d], x), (int64_t)d);
    }
    return push(x);
  }

  if (op == "Erf")
    return nodeFail("Erf is not supported yet (exact GELU); export the model with the tanh "
                    "approximation of GELU");

  if (isFoldableOp(op))
    return nodeFail("only supported on constant inputs, but here an input depends on the token ids");
  return nodeFail("unsupported op; supported ops: " + std::string(kSupportedOps));
}

// Where(IsNaN(s), c, s) with s = Softmax(x): torch's scaled_dot_product_attention
// guard that zeroes rows whose every score is masked to -inf. Only constants in
// x can make a whole row -inf, +inf or NaN (the computed scores are finite), so
// the rows that need the guard are known here: they become a constant select,
// and when there are none the guard vanishes.
mlir::Value Importer::softmaxNanGuard(mlir::Value s, const ValP &replacement) {
  auto sm = s.getDefiningOp<tt::SoftmaxOp>();
  if (!sm) {
    nodeFail("IsNaN of a value computed from the token ids is only supported as the NaN guard "
             "Where(IsNaN(s), c, s) after a Softmax over the last axis");
    return {};
  }
  struct ConstIn {
    std::vector<double> vals;
    Shape shape;
  };
  auto constValues = [&](mlir::Value v, ConstIn &out) -> bool {
    while (auto bc = v.getDefiningOp<tt::BroadcastOp>()) // look through broadcasts of a constant
      v = bc.getInput();
    auto c = v.getDefiningOp<tt::ConstantOp>();
    auto attr = c ? mlir::dyn_cast<mlir::DenseElementsAttr>(c.getValue()) : nullptr;
    if (!attr)
      return false;
    out.shape = shapeOf(v);
    out.vals.clear();
    if (attr.getElementType().isF32())
      for (float f : attr.getValues<float>())
        out.vals.push_back(f);
    else if (attr.getElementType().isInteger(1))
      for (bool f : attr.getValues<bool>())
        out.vals.push_back(f);
    else
      return false;
    if (attr.isSplat())
      out.vals.assign(numElements(out.shape), out.vals[0]);
    return true;
  };
  // The constants in the softmax input: an added mask, or the branches of a
  // select (with its condition when that is constant too).
  mlir::Value x = sm.getInput();
  std::vector<ConstIn> added;
  ConstIn branch[2], cond;
  bool haveBranch[2] = {false, false}, constCond = false;
  if (auto add = x.getDefiningOp<tt::BinaryOp>(); add && add.getFn() == tt::BinaryFn::add) {
    for (mlir::Value o : {add.getLhs(), add.getRhs()}) {
      ConstIn c;
      if (constValues(o, c))
        added.push_back(std::move(c));
    }
  } else if (auto sel = x.getDefiningOp<tt::SelectOp>()) {
    constCond = constValues(sel.getCond(), cond);
    haveBranch[0] = constValues(sel.getLhs(), branch[0]);
    haveBranch[1] = constValues(sel.getRhs(), branch[1]);
  }
  // Work on the dims the constants vary along (plus the softmax axis); the
  // rest broadcasts, so the row condition stays as small as the mask.
  Shape S = shapeOf(s), R(S.size(), 1);
  R.back() = S.back();
  auto widen = [&](const Shape &c) {
    for (size_t d = 1; d <= c.size(); ++d)
      if (c[c.size() - d] != 1)
        R[S.size() - d] = S[S.size() - d];
  };
  for (const ConstIn &c : added)
    widen(c.shape);
  for (int side = 0; side < 2; ++side)
    if (haveBranch[side])
      widen(branch[side].shape);
  if (constCond)
    widen(cond.shape);
  // Offset into a tensor of shape `in` broadcast to R for flat index e of R.
  auto bcastIndex = [&](const Shape &in, int64_t e) {
    int64_t off = 0, stride = 1;
    for (int64_t d = (int64_t)R.size() - 1, k = (int64_t)in.size() - 1; d >= 0; --d, --k) {
      int64_t pos = e % R[d];
      e /= R[d];
      if (k >= 0) {
        if (in[k] != 1)
          off += pos * stride;
        stride *= in[k];
      }
    }
    return off;
  };
  auto classOf = [](double v) -> uint8_t { return std::isnan(v) || v == INFINITY ? 2 : v == -INFINITY ? 1 : 0; };
  // Per element of x: 0 finite, 1 -inf, 2 +inf or NaN (from constants only).
  std::vector<uint8_t> cls(numElements(R), 0);
  for (const ConstIn &c : added)
    for (size_t e = 0; e < cls.size(); ++e)
      cls[e] = std::max(cls[e], classOf(c.vals[bcastIndex(c.shape, e)]));
  for (int side = 0; side < 2; ++side) {
    if (!haveBranch[side])
      continue;
    for (size_t e = 0; e < cls.size(); ++e) {
      uint8_t k = classOf(branch[side].vals[bcastIndex(branch[side].shape, e)]);
      if (k && !constCond) {
        nodeFail("the rows this NaN guard zeroes depend on the token ids (a select of non-finite constants "
                 "under a computed condition before the Softmax)");
        return {};
      }
      if (!constCond || (cond.vals[bcastIndex(cond.shape, e)] != 0) == (side == 0))
        cls[e] = std::max(cls[e], k);
    }
  }
  int64_t cols = R.back(), rows = numElements(R) / std::max<int64_t>(cols, 1);
  Tensor nanRow = Tensor::zeros(DType::Bool, Shape(R.begin(), R.end() - 1));
  nanRow.shape.push_back(1);
  bool any = false;
  for (int64_t r = 0; r < rows; ++r) {
    bool allNegInf = cols > 0, bad = false;
    for (int64_t c = 0; c < cols; ++c) {
      uint8_t k = cls[r * cols + c];
      allNegInf &= k == 1;
      bad |= k == 2;
    }
    nanRow.i[r] = allNegInf || bad;
    any |= allNegInf || bad;
  }
  if (!any)
    return s;
  mlir::Value c = asFloat(replacement, "replacement"), rowsNaN = makeConst(nanRow);
  if (!c || !rowsNaN)
    return {};
  return b.create<tt::SelectOp>(loc, rowsNaN, c, s);
}

//===----------------------------------------------------------------------===//

mlir::OwningOpRef<mlir::ModuleOp> Importer::run() {
  ctx.loadDialect<tt::TesseraDialect, mlir::func::FuncDialect>();
  if (opts.batch < 1 || opts.seq < 1) {
    fail("batch and seq must be >= 1");
    return nullptr;
  }
  if (!load())
    return nullptr;
  // A static export requested at another shape: infer shapes at the export
  // shape first (a throw-away import), then re-specialise while importing.
  {
    std::string err;
    const onnx::ValueInfoProto *tokens = tokenInput(err);
    if (tokens && tokens->type().tensor_type().has_shape()) {
      const auto &dims = tokens->type().tensor_type().shape();
      int64_t want[2] = {opts.batch, opts.seq}, have[2] = {opts.batch, opts.seq};
      for (int d = 0; d < 2; ++d)
        if (dims.dim(d).has_dim_value() && dims.dim(d).dim_value() > 0)
          have[d] = dims.dim(d).dim_value();
      if (have[0] != want[0] || have[1] != want[1]) {
        ImportOptions exportOpts = opts;
        exportOpts.batch = have[0];
        exportOpts.seq = have[1];
        std::string exportErr;
        Importer first(ctx, path, exportOpts, exportErr);
        first.setMemory(memory);
        if (!first.run()) { // the graph's own errors show at the export shape already
          error = exportErr.empty() ? path + ": import failed" : exportErr;
          return nullptr;
        }
        exportShapes = first.valueShapes();
        exportDims[0] = have[0];
        exportDims[1] = have[1];
        respecialize = true;
      }
    }
  }

  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(fileLoc);
  b.setInsertionPointToEnd(module->getBody());
  auto idsType = tensorType({opts.batch, opts.seq}, DType::I64);
  auto func = b.create<mlir::func::FuncOp>(fileLoc, "forward", b.getFunctionType({idsType}, {}));
  func.addEntryBlock();
  if (!importGraph(func))
    return nullptr;

  // Diagnostics of verification/cleanup become the one-line error.
  std::string diag;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error && diag.empty()) {
      llvm::raw_string_ostream os(diag);
      os << d.getLocation() << ": " << d;
    }
    return mlir::success();
  });
  if (mlir::failed(mlir::verify(*module))) {
    fail("internal error: the imported IR does not verify: " + diag);
    return nullptr;
  }
  mlir::PassManager pm(&ctx);
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  if (mlir::failed(pm.run(*module))) {
    fail("internal error: cleaning up the imported IR failed: " + diag);
    return nullptr;
  }
  return module;
}

} // namespace

mlir::OwningOpRef<mlir::ModuleOp> importOnnxBytes(mlir::MLIRContext &ctx, std::string_view bytes,
                                                  const std::string &path, const ImportOptions &options,
                                                  std::string &error) {
  error.clear();
  Importer imp(ctx, path, options, error);
  imp.setMemory(&bytes);
  mlir::OwningOpRef<mlir::ModuleOp> m = imp.run();
  if (!m && error.empty())
    error = path + ": import failed";
  return m;
}

mlir::OwningOpRef<mlir::ModuleOp> importOnnx(mlir::MLIRContext &ctx, const std::string &path,
                                             const ImportOptions &options, std::string &error) {
  error.clear();
  Importer imp(ctx, path, options, error);
  mlir::OwningOpRef<mlir::ModuleOp> m = imp.run();
  if (!m && error.empty())
    error = path + ": import failed";
  return m;
}

} // namespace tessera
