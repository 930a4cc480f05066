// ops/Reduction.cpp - reductions and normalisations: Reduce*, Softmax,
// LogSoftmax, LayerNormalization, CumSum.
//
// ReduceMean / Sum / Max map to tessera.reduce; ReduceMin, ReduceSumSquare
// and ReduceL2 to reduce plus unary/binary. Axes come from the attribute or,
// where the opset moved them there (ReduceSum 13, the others 18), from input
// 1: one handler takes whichever the node has, for every opset the importer
// reads (13-18). Softmax over a non-last axis goes through transposes;
// LayerNormalization is spelled out in core ops.
#include "compiler/import/FoldUtil.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"

#include <limits>

namespace tessera::onnximport {
namespace {

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

FoldResult foldReduce(FoldNode &f) {
  const Tensor *x = f.input(0);
  std::vector<int64_t> axes;
  bool noop;
  if (!reduceAxes(f.proto, (int64_t)x->shape.size(), f.input(1), axes, noop, f.err))
    return f.fail();
  if (noop) {
    f.out.push_back(*x);
    return FoldResult::Folded;
  }
  Tensor t;
  reduceFold(f.proto.op_type(), *x, axes, attrInt(f.proto, "keepdims", 1) != 0, t);
  return f.folded(std::move(t));
}

FoldResult foldCumSum(FoldNode &f) {
  const Tensor *x = f.input(0);
  if (!f.need(1))
    return f.fail();
  int64_t r = (int64_t)x->shape.size(), axis;
  if (!normAxis(f.input(1)->getI(0), r, axis, f.err))
    return f.fail();
  bool excl = attrInt(f.proto, "exclusive", 0) != 0, rev = attrInt(f.proto, "reverse", 0) != 0;
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
  return f.folded(std::move(t));
}

bool emitReduce(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  std::string err;
  if (!node.need(0))
    return false;
  mlir::Value x = node.asFloat(0);
  if (!x)
    return false;
  std::vector<int64_t> axesIn;
  Tensor axesT;
  bool haveAxes = node.arg(1) != nullptr;
  if (haveAxes) {
    if (!node.constInts(1, axesIn))
      return false;
    axesT = Tensor::zeros(DType::I64, {(int64_t)axesIn.size()});
    axesT.i = axesIn;
  }
  std::vector<int64_t> axes;
  bool noop;
  if (!reduceAxes(n, node.rank(0), haveAxes ? &axesT : nullptr, axes, noop, err))
    return node.fail(err);
  bool keep = attrInt(n, "keepdims", 1) != 0;
  if (noop)
    return node.push(x);
  if (op == "ReduceMin") {
    mlir::Value m = imp.reduce(tt::ReduceFn::max, imp.unary(tt::UnaryFn::neg, x), axes, keep);
    return node.push(imp.unary(tt::UnaryFn::neg, m));
  }
  if (op == "ReduceSumSquare" || op == "ReduceL2") {
    mlir::Value s = imp.reduce(tt::ReduceFn::sum, imp.binary(tt::BinaryFn::mul, x, x), axes, keep);
    return node.push(op == "ReduceL2" ? imp.unary(tt::UnaryFn::sqrt, s) : s);
  }
  tt::ReduceFn fn = op == "ReduceMean" ? tt::ReduceFn::mean
                    : op == "ReduceSum" ? tt::ReduceFn::sum
                                        : tt::ReduceFn::max;
  return node.push(imp.reduce(fn, x, axes, keep));
}

bool emitSoftmax(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  std::string err;
  if (!node.need(0))
    return false;
  mlir::Value x = node.asFloat(0);
  int64_t axis;
  if (!x || !normAxis(attrInt(n, "axis", -1), node.rank(0), axis, err))
    return x ? node.fail(err) : false;
  mlir::Value s = imp.softmaxAlong(x, axis);
  return node.push(op == "Softmax" ? s : imp.unary(tt::UnaryFn::log, s));
}

bool emitLayerNormalization(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  std::string err;
  if (!node.need(0) || !node.need(1))
    return false;
  for (int k = 1; k < n.output_size(); ++k)
    if (imp.needed.count(n.output(k)))
      return node.fail("the Mean / InvStdDev outputs of LayerNormalization are not supported");
  mlir::Value x = node.asFloat(0);
  int64_t axis;
  if (!x || !normAxis(attrInt(n, "axis", -1), node.rank(0), axis, err))
    return x ? node.fail(err) : false;
  std::vector<int64_t> axes;
  for (int64_t d = axis; d < node.rank(0); ++d)
    axes.push_back(d);
  float eps = attrFloat(n, "epsilon", 1e-5f);
  mlir::Value mean = imp.reduce(tt::ReduceFn::mean, x, axes, true);
  mlir::Value d = imp.binary(tt::BinaryFn::sub, x, mean);
  mlir::Value var = imp.reduce(tt::ReduceFn::mean, imp.binary(tt::BinaryFn::mul, d, d), axes, true);
  mlir::Value rstd = imp.unary(tt::UnaryFn::rsqrt, imp.binary(tt::BinaryFn::add, var, imp.scalarF(eps)));
  mlir::Value y = imp.binary(tt::BinaryFn::mul, d, rstd);
  mlir::Value scale = node.asFloat(1);
  if (!scale)
    return false;
  y = imp.binary(tt::BinaryFn::mul, y, scale);
  if (node.arg(2)) {
    mlir::Value bias = node.asFloat(2);
    if (!bias)
      return false;
    y = imp.binary(tt::BinaryFn::add, y, bias);
  }
  if (y && Importer::shapeOf(y) != node.arg(0)->shape)
    return node.fail("scale/bias do not broadcast to the input");
  return node.push(y);
}

} // namespace

void populateReductionOps(OpRegistry &r) {
  for (const char *op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare"})
    r.on(op, 13).withFold(foldReduce).withEmit(emitReduce);
  r.on("ReduceL2", 13).withEmit(emitReduce);
  r.on("ReduceProd", 13).withFold(foldReduce);
  for (const char *op : {"Softmax", "LogSoftmax"})
    r.on(op, 13).withEmit(emitSoftmax);
  r.on("LayerNormalization", 13).withEmit(emitLayerNormalization);
  r.on("CumSum", 13).withFold(foldCumSum);
}

} // namespace tessera::onnximport
