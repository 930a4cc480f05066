// ops/Elementwise.cpp - elementwise ONNX ops: unary functions, arithmetic,
// comparisons and logic, Where, IsNaN / IsInf.
//
// Arithmetic and unary functions fold on constants and map to tessera.unary /
// tessera.binary (numpy broadcasting); comparisons and logic fold only (the
// core has no comparison op). Where maps to tessera.select; IsNaN of a
// computed value only as the NaN guard that torch's attention puts after a
// softmax (Where(IsNaN(s), c, s)), resolved here from the constant mask.
#include "compiler/import/FoldUtil.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"

#include <cmath>
#include <limits>
#include <map>

namespace tessera::onnximport {
namespace {

//===----------------------------------------------------------------------===//
// Evaluation on constants
//===----------------------------------------------------------------------===//

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


FoldResult foldUnary(FoldNode &f) {
  const std::string &op = f.proto.op_type();
  const Tensor *x = f.input(0);
  bool ok;
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
  return f.folded(std::move(t));
}

FoldResult foldNot(FoldNode &f) {
  const Tensor *x = f.input(0);
  Tensor t = Tensor::zeros(DType::Bool, x->shape);
  for (int64_t k = 0; k < x->numel(); ++k)
    t.i[k] = x->getF(k) == 0;
  return f.folded(std::move(t));
}

// Add, Sub, Mul, Div, Pow, Mod and the comparisons / logic ops.
FoldResult foldBinary(FoldNode &f) {
  if (!f.need(1))
    return f.fail();
  Tensor t;
  if (!binaryFold(f.proto.op_type(), *f.input(0), *f.input(1), attrInt(f.proto, "fmod", 0) != 0, t, f.err))
    return f.fail();
  return f.folded(std::move(t));
}

// Max, Min, Sum, Mean: any number of inputs.
FoldResult foldVariadic(FoldNode &f) {
  const std::string &op = f.proto.op_type();
  Tensor acc = *f.input(0);
  std::string bop = op == "Sum" || op == "Mean" ? "Add" : op;
  for (size_t k = 1; k < f.in.size(); ++k) {
    if (!f.need(k))
      return f.fail();
    Tensor t;
    if (!binaryFold(bop, acc, *f.input(k), false, t, f.err))
      return f.fail();
    acc = std::move(t);
  }
  if (op == "Mean") {
    Tensor n = Tensor::zeros(acc.dt, {});
    n.setI(0, (int64_t)f.in.size());
    Tensor t;
    if (!binaryFold("Div", acc, n, false, t, f.err))
      return f.fail();
    acc = std::move(t);
  }
  return f.folded(std::move(acc));
}

FoldResult foldClip(FoldNode &f) {
  Tensor acc = *f.input(0);
  bool attrs = f.opset < 11;
  for (int k : {1, 2}) {
    Tensor bound;
    if (attrs) {
      const char *name = k == 1 ? "min" : "max";
      bool present = false;
      for (const auto &a : f.proto.attribute())
        present |= a.name() == name;
      if (!present)
        continue;
      bound = Tensor::zeros(DType::F32, {});
      bound.set(0, attrFloat(f.proto, name, 0.0f));
    } else if (k < (int)f.in.size() && f.input(k)) {
      bound = *f.input(k);
    } else {
      continue;
    }
    Tensor t;
    if (!binaryFold(k == 1 ? "Max" : "Min", acc, bound, false, t, f.err))
      return f.fail();
    acc = std::move(t);
  }
  return f.folded(std::move(acc));
}

FoldResult foldWhere(FoldNode &f) {
  if (!f.need(1) || !f.need(2))
    return f.fail();
  const Tensor &c = *f.input(0), &a = *f.input(1), &b = *f.input(2);
  Shape s;
  if (!broadcast(c.shape, a.shape, s, f.err) || !broadcast(s, b.shape, s, f.err))
    return f.fail();
  auto ic = bcastOffsets(c.shape, s), ia = bcastOffsets(a.shape, s), ib = bcastOffsets(b.shape, s);
  DType dt = a.dt == DType::F32 || b.dt == DType::F32 ? DType::F32 : a.dt;
  Tensor t = Tensor::zeros(dt, s);
  for (size_t k = 0; k < ic.size(); ++k) {
    bool cv = c.getF(ic[k]) != 0;
    if (dt == DType::F32) t.set(k, cv ? a.getF(ia[k]) : b.getF(ib[k]));
    else t.setI(k, cv ? a.getI(ia[k]) : b.getI(ib[k]));
  }
  return f.folded(std::move(t));
}

// IsNaN, IsInf.
FoldResult foldIsSpecial(FoldNode &f) {
  const Tensor *x = f.input(0);
  bool isNaN = f.proto.op_type() == "IsNaN";
  bool pos = attrInt(f.proto, "detect_positive", 1) != 0, neg = attrInt(f.proto, "detect_negative", 1) != 0;
  Tensor t = Tensor::zeros(DType::Bool, x->shape);
  for (int64_t k = 0; k < x->numel(); ++k) {
    double v = x->dt == DType::F32 ? x->f[k] : 0.0; // integers are never NaN / inf
    t.i[k] = isNaN ? std::isnan(v) : std::isinf(v) && (v > 0 ? pos : neg);
  }
  return f.folded(std::move(t));
}

//===----------------------------------------------------------------------===//
// Mapping to tessera ops
//===----------------------------------------------------------------------===//

const std::map<std::string, tt::UnaryFn> kUnaryFns = {
    {"Neg", tt::UnaryFn::neg},         {"Exp", tt::UnaryFn::exp},
    {"Log", tt::UnaryFn::log},         {"Sqrt", tt::UnaryFn::sqrt},
    {"Reciprocal", tt::UnaryFn::reciprocal}, {"Sigmoid", tt::UnaryFn::sigmoid},
    {"Tanh", tt::UnaryFn::tanh},       {"Cos", tt::UnaryFn::cos},
    {"Sin", tt::UnaryFn::sin},         {"Relu", tt::UnaryFn::relu},
    {"Abs", tt::UnaryFn::abs},         {"Round", tt::UnaryFn::round}};

const std::map<std::string, tt::BinaryFn> kBinaryFns = {
    {"Add", tt::BinaryFn::add}, {"Sub", tt::BinaryFn::sub}, {"Mul", tt::BinaryFn::mul},
    {"Div", tt::BinaryFn::div}, {"Pow", tt::BinaryFn::pow}, {"Max", tt::BinaryFn::max},
    {"Min", tt::BinaryFn::min}, {"Sum", tt::BinaryFn::add}, {"Mean", tt::BinaryFn::add}};

bool emitUnary(Node &node) {
  Importer &imp = node.imp;
  if (!node.need(0))
    return false;
  mlir::Value x = node.asFloat(0);
  if (!x)
    return false;
  return node.push(imp.unary(kUnaryFns.at(node.op()), x));
}

// Add, Sub, Mul, Div, Pow, Max, Min (two inputs), Sum, Mean (any number).
bool emitBinary(Node &node) {
  Importer &imp = node.imp;
  const std::string &op = node.op();
  if (!node.need(0) || !node.need(1))
    return false;
  std::vector<mlir::Value> xs;
  for (size_t k = 0; k < node.in.size(); ++k) {
    if (!node.need(k))
      return false;
    mlir::Value x = node.asFloat(k);
    if (!x)
      return false;
    xs.push_back(x);
  }
  tt::BinaryFn fn = kBinaryFns.at(op);
  mlir::Value acc = xs[0];
  for (size_t k = 1; k < xs.size() && acc; ++k)
    acc = imp.binary(fn, acc, xs[k]);
  if (acc && op == "Mean" && xs.size() > 1)
    acc = imp.binary(tt::BinaryFn::div, acc, imp.scalarF((float)xs.size()));
  return node.push(acc);
}

// Clip(x, min, max): torch's clamp, max(x, min) then min(., max); either
// bound may be absent (opset 11+: empty inputs; earlier: attributes).
bool emitClip(Node &node) {
  Importer &imp = node.imp;
  if (!node.need(0))
    return false;
  mlir::Value x = node.asFloat(0);
  if (!x)
    return false;
  bool attrs = node.opset() < 11;
  for (size_t k : {1, 2}) {
    mlir::Value bound;
    if (attrs) {
      const char *name = k == 1 ? "min" : "max";
      bool present = false;
      for (const auto &a : node.proto.attribute())
        present |= a.name() == name;
      if (present)
        bound = imp.scalarF(attrFloat(node.proto, name, 0.0f));
    } else if (node.arg(k)) {
      if (numElements(node.arg(k)->shape) != 1)
        return node.fail(std::string(k == 1 ? "min" : "max") + " must be a scalar, got shape " +
                         shapeStr(node.arg(k)->shape));
      bound = node.asFloat(k);
    }
    if (node.arg(k) && !attrs && !bound)
      return false;
    if (bound)
      x = imp.binary(k == 1 ? tt::BinaryFn::max : tt::BinaryFn::min, x, bound);
    if (!x)
      return false;
  }
  return node.push(x);
}

bool emitErf(Node &node) {
  return node.fail("Erf is not supported yet (exact GELU); export the model with the tanh "
                   "approximation of GELU");
}

bool emitIsNaN(Node &node) { // resolved by the Where that consumes it (softmaxNanGuard)
  if (!node.need(0))
    return false;
  auto r = std::make_shared<Val>();
  r->dt = DType::Bool;
  r->shape = node.arg(0)->shape;
  r->nanTestOf = node.arg(0);
  node.out.push_back(r);
  return true;
}

mlir::Value softmaxNanGuard(Node &node, mlir::Value s, const ValP &replacement);

bool emitWhere(Node &node) {
  Importer &imp = node.imp;
  if (!node.need(0) || !node.need(1) || !node.need(2))
    return false;
  if (node.arg(0)->nanTestOf && node.arg(0)->nanTestOf == node.arg(2) && node.arg(2)->v) {
    mlir::Value s = softmaxNanGuard(node, node.arg(2)->v, node.arg(1));
    return s && node.push(s);
  }
  if (node.arg(0)->dt != DType::Bool)
    return node.fail("condition must be bool");
  mlir::Value c = node.materialize(0), x = node.asFloat(1), y = node.asFloat(2);
  if (!c || !x || !y)
    return false;
  Shape s;
  std::string err;
  if (!broadcast(Importer::shapeOf(c), Importer::shapeOf(x), s, err) ||
      !broadcast(s, Importer::shapeOf(y), s, err))
    return node.fail(err);
  return node.push(imp.b.create<tt::SelectOp>(imp.loc, c, x, y));
}

// Where(IsNaN(s), c, s): see the top of the file.
// Where(IsNaN(s), c, s) with s = Softmax(x): torch's scaled_dot_product_attention
// guard that zeroes rows whose every score is masked to -inf. Only constants in
// x can make a whole row -inf, +inf or NaN (the computed scores are finite), so
// the rows that need the guard are known here: they become a constant select,
// and when there are none the guard vanishes.
mlir::Value softmaxNanGuard(Node &node, mlir::Value s, const ValP &replacement) {
  Importer &imp = node.imp;
  auto sm = s.getDefiningOp<tt::SoftmaxOp>();
  if (!sm) {
    node.fail("IsNaN of a value computed from the token ids is only supported as the NaN guard "
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
    out.shape = Importer::shapeOf(v);
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
  Shape S = Importer::shapeOf(s), R(S.size(), 1);
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
        node.fail("the rows this NaN guard zeroes depend on the token ids (a select of non-finite constants "
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
  mlir::Value c = imp.asFloat(replacement, "replacement"), rowsNaN = imp.makeConst(nanRow);
  if (!c || !rowsNaN)
    return {};
  return imp.b.create<tt::SelectOp>(imp.loc, rowsNaN, c, s);
}


/// Elements of the broadcast result when it is larger than every input
/// (folding it would grow the data), else -1.
int64_t broadcastGrowth(Importer &, std::vector<ValP> &in) {
  Shape s;
  std::string err;
  for (const ValP &v : in)
    if (v && !broadcast(s, v->shape, s, err))
      return -1;
  int64_t biggest = 0;
  for (const ValP &v : in)
    if (v)
      biggest = std::max(biggest, numElements(v->shape));
  return numElements(s) > biggest ? numElements(s) : -1;
}

} // namespace

void populateElementwiseOps(OpRegistry &r) {
  for (const auto &[op, fn] : kUnaryFns)
    r.on(op, 13).withFold(foldUnary).withEmit(emitUnary);
  for (const char *op : {"Floor", "Ceil", "Sign"})
    r.on(op, 13).withFold(foldUnary);
  r.on("Erf", 13).withFold(foldUnary).withEmit(emitErf).constantOnly();

  for (const char *op : {"Add", "Sub", "Mul", "Div", "Pow"})
    r.on(op, 13).withFold(foldBinary).withEmit(emitBinary).broadcasting().boundedFold(broadcastGrowth);
  for (const char *op : {"Max", "Min", "Sum", "Mean"})
    r.on(op, 13).withFold(foldVariadic).withEmit(emitBinary).broadcasting().boundedFold(broadcastGrowth);
  r.on("Clip", 13).withFold(foldClip).withEmit(emitClip).broadcasting();
  r.on("Mod", 13).withFold(foldBinary);
  for (const char *op : {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"})
    r.on(op, 13).withFold(foldBinary).broadcasting();
  r.on("Not", 13).withFold(foldNot);

  r.on("Where", 13).withFold(foldWhere).withEmit(emitWhere).broadcasting().boundedFold(broadcastGrowth);
  r.on("IsNaN", 13).withFold(foldIsSpecial).withEmit(emitIsNaN).nanGuardOnly();
  r.on("IsInf", 13).withFold(foldIsSpecial);
}

} // namespace tessera::onnximport
