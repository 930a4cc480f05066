// OnnxImporter.cpp - ONNX ModelProto -> `func.func @forward` of tessera ops.
//
// The graph is specialised to the requested [batch, seq]: every tensor gets a
// static shape, and every node whose inputs are all known (shape arithmetic,
// RoPE tables, causal masks) is evaluated on the CPU; what remains depends on
// the token ids and is mapped onto tessera ops. Both are the op's handlers in
// the registry (OpRegistry.h, one file per op family in ops/). Weight
// initializers are never folded: they become `tessera.param frozen "<name>"`,
// read by the runtime from the model file. A static export requested at
// another shape is imported twice: at its export shape (to learn every
// value's old shape), then at the new one with its baked shape constants,
// RoPE tables and masks rewritten (StaticSpecialize.h). See docs/importer.md.
#include "compiler/import/OnnxImporter.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"
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

namespace tessera::onnximport {
namespace {

constexpr int64_t kMinOpset = 13, kMaxOpset = 18;
constexpr int64_t kMinIrVersion = 3, kMaxIrVersion = 10;
// Folded constants that would grow past this many elements by broadcasting
// (Expand, Where, elementwise ops, ConstantOfShape) stay in the IR as a
// broadcast of the smaller constant instead.
constexpr int64_t kMaxBroadcastFold = int64_t(1) << 20;
// No folded constant may exceed this.
constexpr int64_t kMaxFoldElements = int64_t(1) << 26;

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

bool Importer::fail(const std::string &msg) {
  if (error.empty()) {
    error = path + ": " + msg;
    for (char &c : error) // names from the file may hold control characters: one line
      if ((unsigned char)c < 0x20 || c == 0x7f)
        c = ' ';
  }
  return false;
}

std::string Importer::nodeDesc(int idx) const {
  const onnx::NodeProto &n = nodes[idx];
  std::string d = n.name().empty() ? "node #" + std::to_string(idx) : "node '" + n.name() + "'";
  return d + " (" + (n.domain().empty() || n.domain() == "ai.onnx" ? "" : n.domain() + ".") +
         n.op_type() + ")";
}

bool Importer::nodeFail(const std::string &msg) {
  return fail(curNode >= 0 ? nodeDesc(curNode) + ": " + msg : msg);
}

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

mlir::Value Importer::unary(tt::UnaryFn fn, mlir::Value x) {
  if (!x)
    return {};
  return b.create<tt::UnaryOp>(loc, fn, x);
}

mlir::Value Importer::reshape(mlir::Value x, const Shape &s) {
  if (!x)
    return {};
  return b.create<tt::ReshapeOp>(loc, tensorType(s, dtOf(x)), x);
}

mlir::Value Importer::broadcastTo(mlir::Value x, const Shape &s) {
  if (!x)
    return {};
  return b.create<tt::BroadcastOp>(loc, tensorType(s, dtOf(x)), x);
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
  return b.create<tt::TransposeOp>(loc, x, perm);
}

mlir::Value Importer::slice(mlir::Value x, const std::vector<int64_t> &starts,
                            const std::vector<int64_t> &limits, const std::vector<int64_t> &strides) {
  if (!x)
    return {};
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
  const OpRegistry &registry = defaultDomain();
  std::vector<int> unsupported;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto &n = nodes[i];
    bool defaultDomain = n.domain().empty() || n.domain() == "ai.onnx";
    if (live[i] && (!defaultDomain || !registry.lookup(n.op_type(), opset)))
      unsupported.push_back((int)i);
  }
  if (!unsupported.empty()) {
    std::string list;
    for (size_t k = 0; k < std::min<size_t>(unsupported.size(), 4); ++k)
      list += (k ? ", " : "") + nodeDesc(unsupported[k]);
    if (unsupported.size() > 4)
      list += " and " + std::to_string(unsupported.size() - 4) + " more";
    return fail(std::to_string(unsupported.size()) + (unsupported.size() == 1 ? " node uses" : " nodes use") +
                " an unsupported op: " + list + "; supported ops: " + registry.supportedOps(opset));
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

bool Importer::importNode(int idx) {
  curNode = idx;
  const onnx::NodeProto &n = nodes[idx];
  const std::string &op = n.op_type();
  std::string label = n.name().empty() ? op + "#" + std::to_string(idx) : n.name();
  loc = mlir::NameLoc::get(b.getStringAttr(label), fileLoc);

  const OpHandler *handler = nullptr;
  if (n.domain().empty() || n.domain() == "ai.onnx")
    handler = defaultDomain().lookup(op, opset);
  if (!handler)
    return nodeFail((n.domain().empty() || n.domain() == "ai.onnx" ? "unsupported op" : "unsupported op (domain '" + n.domain() + "')") +
                    std::string("; supported ops: ") + defaultDomain().supportedOps(opset));

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
  if (respecialize && !specializeInputs(*handler, n, in))
    return false;
  std::vector<ValP> out;

  // Fold on the CPU when every input is known (Shape and Size need only shapes),
  // unless that would copy a weight into a new constant or blow up a broadcast.
  bool shapeOnly = handler->foldNeedsShapesOnly;
  bool allConst = true, anyHeavy = false;
  for (const ValP &v : in)
    if (v) {
      allConst &= v->isConst;
      anyHeavy |= v->heavy;
    }
  bool fold = handler->fold && (shapeOnly || (allConst && !anyHeavy));
  if (fold && !shapeOnly && handler->foldSize) {
    int64_t size = handler->foldSize(*this, in);
    if (!error.empty())
      return false;
    if (size > kMaxBroadcastFold)
      fold = false;
  }
  if (fold && !foldNode(*handler, n, in, out))
    return false;
  if (out.empty()) {
    for (size_t k = 0; k < in.size(); ++k)
      if (in[k] && !in[k]->isConst && numElements(in[k]->shape) == 0)
        return nodeFail("empty tensors are not supported (input " + std::to_string(k) + " has shape " +
                        shapeStr(in[k]->shape) + ")");
    if (!handler->emit)
      return nodeFail("only supported on constant inputs, but here an input depends on the token ids");
    Node node{*this, n, in, out};
    if (!handler->emit(node))
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

// Evaluates `n` on its constant inputs with the op's fold handler.
bool Importer::foldNode(const OpHandler &h, const onnx::NodeProto &n, std::vector<ValP> &in,
                        std::vector<ValP> &out) {
  bool shapeOnly = h.foldNeedsShapesOnly;
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
    FoldNode f{n, opset, args, res, err};
    r = f.need(0) ? h.fold(f) : FoldResult::Error;
  } catch (const std::exception &e) { // e.g. a shape too large to allocate
    r = FoldResult::Error;
    err = std::string("cannot evaluate this node on constants: ") + e.what();
  }
  if (r == FoldResult::Error)
    return nodeFail(err);
  if (r == FoldResult::Folded) {
    const std::string &op = n.op_type();
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
  return true;
}

//===----------------------------------------------------------------------===//
// Re-specialising a static export (StaticSpecialize.h)
//===----------------------------------------------------------------------===//

// Rewrites the constants of `n` that the export baked for its own shape:
// Reshape / Expand targets, and position tables (RoPE, masks) that meet a
// value whose sequence (or batch) dims changed.
bool Importer::specializeInputs(const OpHandler &h, const onnx::NodeProto &n, std::vector<ValP> &in) {
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
  if (h.targetShape != TargetShape::none && baked(1) && in[0]) {
    Shape o;
    if (!oldShape(0, o) || o == in[0]->shape)
      return true;
    std::vector<int64_t> spec, newSpec;
    if (!constInts(in[1], n.input(1), spec))
      return false;
    std::string err;
    bool ok = h.targetShape == TargetShape::reshape
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
  if (!h.broadcasts)
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
  mlir::tessera::setProgramRole(func, mlir::tessera::ProgramRole::forward);
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

} // namespace tessera::onnximport

namespace tessera {

mlir::OwningOpRef<mlir::ModuleOp> importOnnxBytes(mlir::MLIRContext &ctx, std::string_view bytes,
                                                  const std::string &path, const ImportOptions &options,
                                                  std::string &error) {
  error.clear();
  onnximport::Importer imp(ctx, path, options, error);
  imp.setMemory(&bytes);
  mlir::OwningOpRef<mlir::ModuleOp> m = imp.run();
  if (!m && error.empty())
    error = path + ": import failed";
  return m;
}

mlir::OwningOpRef<mlir::ModuleOp> importOnnx(mlir::MLIRContext &ctx, const std::string &path,
                                             const ImportOptions &options, std::string &error) {
  error.clear();
  onnximport::Importer imp(ctx, path, options, error);
  mlir::OwningOpRef<mlir::ModuleOp> m = imp.run();
  if (!m && error.empty())
    error = path + ": import failed";
  return m;
}

} // namespace tessera
