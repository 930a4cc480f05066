//===- Autodiff.cpp - tessera-autodiff ------------------------------------===//
//
// Reverse-mode differentiation of @loss for the LoRA parameters.
//
// @loss_grad is a copy of @loss (same arguments) whose body is followed by the
// backward sweep; it returns the loss, then one gradient per LoRA parameter
// name (order of first appearance), each result marked
// {tessera.grad_of = "<param name>"}.
//
// Activity analysis keeps the backward sweep minimal: a value is *active*
// when it depends on a LoRA parameter (varied) and the loss depends on it
// (useful). Only active values receive gradients, and a rule only computes
// the partials of its active operands, so frozen-only branches (and frozen
// weights) get no gradient work at all.
//
// Fan-out gradients accumulate with tessera.binary add. Masks (relu, abs,
// max/min, reduce max) use `tessera.cast f32 -> i1` (x != 0) and
// tessera.select, the core having no comparison op.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/MapVector.h"

#include <cmath>
#include <map>
#include <numeric>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAAUTODIFF
#include "Tessera/Transforms/Passes.h.inc"

namespace {

using Shape = SmallVector<int64_t>;

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }
bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

/// Tensor arithmetic for the backward sweep at one location. Result types
/// are the ops' own inference; scalar constants take the element type of the
/// value they combine with and are created once per (value, type).
struct GradBuilder {
  OpBuilder &b;
  Location loc;
  std::map<std::pair<double, void *>, Value> scalars; // (value, element type)

  GradBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  static Type elementOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }

  /// A rank-0 constant of `like`'s element type.
  Value cst(double v, Value like) {
    Type e = elementOf(like);
    std::pair<double, void *> key{v, const_cast<void *>(e.getAsOpaquePointer())};
    auto it = scalars.find(key);
    if (it != scalars.end())
      return it->second;
    auto type = RankedTensorType::get({}, e);
    Value c = b.create<ConstantOp>(loc, DenseElementsAttr::get(type, b.getFloatAttr(e, v)));
    scalars[key] = c;
    return c;
  }

  Value zeros(RankedTensorType type) {
    return b.create<ConstantOp>(
        loc, DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), 0.0)));
  }

  Value unary(UnaryFn fn, Value x) { return b.create<UnaryOp>(loc, fn, x); }
  Value binary(BinaryFn fn, Value x, Value y) { return b.create<BinaryOp>(loc, fn, x, y); }
  Value add(Value x, Value y) { return binary(BinaryFn::add, x, y); }
  Value sub(Value x, Value y) { return binary(BinaryFn::sub, x, y); }
  Value mul(Value x, Value y) { return binary(BinaryFn::mul, x, y); }
  Value div(Value x, Value y) { return binary(BinaryFn::div, x, y); }
  Value mul(Value x, double c) { return c == 1.0 ? x : mul(x, cst(c, x)); }
  Value neg(Value x) { return unary(UnaryFn::neg, x); }

  /// x != 0, elementwise, as an i1 mask.
  Value nonzero(Value x) {
    auto type = RankedTensorType::get(shapeOf(x), b.getI1Type());
    return b.create<CastOp>(loc, type, x);
  }

  Value select(Value cond, Value x, Value y) { return b.create<SelectOp>(loc, cond, x, y); }

  Value reduce(ReduceFn fn, Value x, ArrayRef<int64_t> axes, bool keepdims) {
    return b.create<ReduceOp>(loc, fn, x, axes, keepdims);
  }

  Value reshape(Value x, ArrayRef<int64_t> shape) {
    if (shapeOf(x) == shape)
      return x;
    return b.create<ReshapeOp>(loc, RankedTensorType::get(shape, elementOf(x)), x);
  }

  Value broadcastTo(Value x, ArrayRef<int64_t> shape) {
    if (shapeOf(x) == shape)
      return x;
    return b.create<BroadcastOp>(loc, RankedTensorType::get(shape, elementOf(x)), x);
  }

  Value transpose(Value x, ArrayRef<int64_t> perm) { return b.create<TransposeOp>(loc, x, perm); }

  Value matmul(Value x, Value y, bool tx, bool ty) { return b.create<MatmulOp>(loc, x, y, tx, ty); }

  Value slice(Value x, ArrayRef<int64_t> starts, ArrayRef<int64_t> limits,
              ArrayRef<int64_t> strides) {
    return b.create<SliceOp>(loc, x, starts, limits, strides);
  }

  Value pad(Value x, ArrayRef<int64_t> low, ArrayRef<int64_t> high, ArrayRef<int64_t> interior) {
    return b.create<PadOp>(loc, x, low, high, interior);
  }

  /// Sums a gradient of a broadcast result back to an operand's shape: reduce
  /// over the broadcast axes, then reshape away the leading/unit dims.
  Value unbroadcast(Value g, ArrayRef<int64_t> target) {
    ArrayRef<int64_t> r = shapeOf(g);
    if (r == target)
      return g;
    size_t off = r.size() - target.size();
    Shape axes;
    for (size_t i = 0; i < r.size(); ++i) {
      bool broadcastAxis = i < off || (target[i - off] == 1);
      if (broadcastAxis && r[i] != 1)
        axes.push_back(i);
    }
    Value v = axes.empty() ? g : reduce(ReduceFn::sum, g, axes, /*keepdims=*/false);
    return reshape(v, target);
  }
};

std::optional<double> splatConstant(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  auto d = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!d || !d.isSplat() || !isa<FloatType>(d.getElementType()))
    return std::nullopt;
  return d.getSplatValue<APFloat>().convertToDouble();
}

struct TesseraAutodiffPass : impl::TesseraAutodiffBase<TesseraAutodiffPass> {
  using TesseraAutodiffBase::TesseraAutodiffBase;

  DenseSet<Value> active;
  DenseMap<Value, Value> grads;

  void accumulate(GradBuilder &gb, Value v, Value g) {
    if (!active.contains(v))
      return;
    assert(shapeOf(g) == shapeOf(v) && "gradient shape differs from its value's");
    auto it = grads.find(v);
    if (it == grads.end())
      grads[v] = g;
    else
      it->second = gb.add(it->second, g);
  }

  LogicalResult unaryRule(GradBuilder &gb, UnaryOp op, Value g) {
    Value x = op.getInput(), y = op.getResult(), dx;
    switch (op.getFn()) {
    case UnaryFn::neg:
      dx = gb.neg(g);
      break;
    case UnaryFn::exp:
      dx = gb.mul(g, y);
      break;
    case UnaryFn::log:
      dx = gb.div(g, x);
      break;
    case UnaryFn::sqrt: // 1 / (2 sqrt x)
      dx = gb.div(gb.mul(g, 0.5), y);
      break;
    case UnaryFn::rsqrt: // -x^{-3/2} / 2 = -y^3 / 2
      dx = gb.mul(g, gb.mul(gb.mul(y, gb.mul(y, y)), -0.5));
      break;
    case UnaryFn::reciprocal:
      dx = gb.neg(gb.mul(g, gb.mul(y, y)));
      break;
    case UnaryFn::sigmoid:
      dx = gb.mul(g, gb.mul(y, gb.sub(gb.cst(1.0, y), y)));
      break;
    case UnaryFn::tanh:
      dx = gb.mul(g, gb.sub(gb.cst(1.0, y), gb.mul(y, y)));
      break;
    case UnaryFn::silu: { // s (1 + x (1 - s))
      Value s = gb.unary(UnaryFn::sigmoid, x);
      Value d = gb.mul(s, gb.add(gb.cst(1.0, s), gb.mul(x, gb.sub(gb.cst(1.0, s), s))));
      dx = gb.mul(g, d);
      break;
    }
    case UnaryFn::gelu_tanh: {
      // y = x/2 (1 + tanh u), u = c (x + k x^3);
      // dy/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3 k x^2).
      const double c = std::sqrt(2.0 / M_PI), k = 0.044715;
      Value x2 = gb.mul(x, x);
      Value u = gb.mul(gb.mul(x, gb.add(gb.cst(1.0, x), gb.mul(x2, k))), c);
      Value t = gb.unary(UnaryFn::tanh, u);
      Value du = gb.mul(gb.add(gb.cst(1.0, x), gb.mul(x2, 3.0 * k)), c);
      Value left = gb.mul(gb.add(gb.cst(1.0, t), t), 0.5);
      Value right = gb.mul(gb.mul(gb.mul(x, 0.5), gb.sub(gb.cst(1.0, t), gb.mul(t, t))), du);
      dx = gb.mul(g, gb.add(left, right));
      break;
    }
    case UnaryFn::cos:
      dx = gb.neg(gb.mul(g, gb.unary(UnaryFn::sin, x)));
      break;
    case UnaryFn::sin:
      dx = gb.mul(g, gb.unary(UnaryFn::cos, x));
      break;
    case UnaryFn::relu: // y != 0 <=> x > 0
      dx = gb.select(gb.nonzero(y), g, gb.cst(0.0, g));
      break;
    case UnaryFn::abs: { // sign(x), 0 at 0
      Value signed_ = gb.select(gb.nonzero(gb.binary(BinaryFn::max, x, gb.cst(0.0, x))), g, gb.neg(g));
      dx = gb.select(gb.nonzero(x), signed_, gb.cst(0.0, g));
      break;
    }
    }
    accumulate(gb, x, dx);
    return success();
  }

  LogicalResult binaryRule(GradBuilder &gb, BinaryOp op, Value g) {
    Value a = op.getLhs(), c = op.getRhs(), y = op.getResult();
    bool needA = active.contains(a), needC = active.contains(c);
    Value da, dc;
    switch (op.getFn()) {
    case BinaryFn::add:
      da = g;
      dc = g;
      break;
    case BinaryFn::sub:
      da = g;
      if (needC)
        dc = gb.neg(g);
      break;
    case BinaryFn::mul:
      if (needA)
        da = gb.mul(g, c);
      if (needC)
        dc = gb.mul(g, a);
      break;
    case BinaryFn::div:
      if (needA)
        da = gb.div(g, c);
      if (needC) // -a / c^2 = -y / c
        dc = gb.neg(gb.mul(g, gb.div(y, c)));
      break;
    case BinaryFn::pow:
      if (needA) {
        if (std::optional<double> e = splatConstant(c)) {
          if (*e == 0.0)
            da = gb.mul(g, 0.0);
          else if (*e == 1.0)
            da = g;
          else if (*e == 2.0)
            da = gb.mul(g, gb.mul(a, 2.0));
          else
            da = gb.mul(g, gb.mul(gb.binary(BinaryFn::pow, a, gb.cst(*e - 1.0, a)), *e));
        } else {
          Value em1 = gb.sub(c, gb.cst(1.0, c));
          da = gb.mul(g, gb.mul(c, gb.binary(BinaryFn::pow, a, em1)));
        }
      }
      if (needC)
        dc = gb.mul(g, gb.mul(y, gb.unary(UnaryFn::log, a)));
      break;
    case BinaryFn::max:
    case BinaryFn::min: {
      // The larger (smaller) operand takes the gradient; ties split it evenly.
      Value d = gb.sub(a, c);
      Value gt = gb.nonzero(gb.binary(BinaryFn::max, d, gb.cst(0.0, d)));
      Value lt = gb.nonzero(gb.binary(BinaryFn::min, d, gb.cst(0.0, d)));
      Value tie = gb.select(gb.nonzero(d), gb.cst(0.0, g), gb.mul(g, 0.5));
      bool isMax = op.getFn() == BinaryFn::max;
      if (needA)
        da = gb.select(isMax ? gt : lt, g, tie);
      if (needC)
        dc = gb.select(isMax ? lt : gt, g, tie);
      break;
    }
    }
    if (needA)
      accumulate(gb, a, gb.unbroadcast(gb.broadcastTo(da, shapeOf(y)), shapeOf(a)));
    if (needC)
      accumulate(gb, c, gb.unbroadcast(gb.broadcastTo(dc, shapeOf(y)), shapeOf(c)));
    return success();
  }

  LogicalResult matmulRule(GradBuilder &gb, MatmulOp op, Value g) {
    Value a = op.getLhs(), c = op.getRhs();
    bool ta = op.getTransposeLhs(), tc = op.getTransposeRhs();
    if (active.contains(a)) {
      // dA = g op(c)^T; with transpose_lhs, d(a) = dA^T = op(c) g^T.
      Value da = ta ? gb.matmul(c, g, /*tx=*/tc, /*ty=*/true) : gb.matmul(g, c, false, !tc);
      accumulate(gb, a, gb.unbroadcast(da, shapeOf(a)));
    }
    if (active.contains(c)) {
      ArrayRef<int64_t> as = shapeOf(a);
      Value dc;
      if (shapeOf(c).size() == 2 && as.size() > 2 && !ta) {
        // Linear layer: fold the batch dims of a and g into the rows, one 2-D
        // product instead of a batched one reduced afterwards.
        int64_t rows = std::accumulate(as.begin(), as.end() - 1, int64_t(1), std::multiplies<>());
        Value a2 = gb.reshape(a, {rows, as.back()});
        Value g2 = gb.reshape(g, {rows, shapeOf(g).back()});
        dc = tc ? gb.matmul(g2, a2, true, false) : gb.matmul(a2, g2, true, false);
      } else {
        // dC = op(a)^T g; with transpose_rhs, d(c) = dC^T = g^T op(a).
        dc = tc ? gb.matmul(g, a, true, ta) : gb.matmul(a, g, !ta, false);
      }
      accumulate(gb, c, gb.unbroadcast(dc, shapeOf(c)));
    }
    return success();
  }

  LogicalResult reduceRule(GradBuilder &gb, ReduceOp op, Value g) {
    Value x = op.getInput(), y = op.getResult();
    ArrayRef<int64_t> in = shapeOf(x);
    ArrayRef<int64_t> axes = op.getAxes();
    Shape keep(in);
    int64_t count = 1;
    for (int64_t a : axes) {
      keep[a] = 1;
      count *= in[a];
    }
    // A rank-0 gradient broadcasts as is; otherwise put the reduced axes back as 1s.
    Value gk = shapeOf(g).empty() ? g : gb.reshape(g, keep);
    Value dx;
    switch (op.getFn()) {
    case ReduceFn::sum:
      dx = gb.broadcastTo(gk, in);
      break;
    case ReduceFn::mean:
      dx = gb.broadcastTo(gb.mul(gk, 1.0 / (double)count), in);
      break;
    case ReduceFn::max: {
      // Mask of the elements equal to the max; ties share the gradient.
      Value ne = gb.nonzero(gb.sub(x, shapeOf(y).empty() ? y : gb.reshape(y, keep)));
      Value isMax = gb.select(ne, gb.cst(0.0, x), gb.cst(1.0, x));
      Value ties = gb.reduce(ReduceFn::sum, isMax, axes, /*keepdims=*/true);
      dx = gb.select(ne, gb.cst(0.0, x), gb.div(gk, ties));
      break;
    }
    }
    accumulate(gb, x, gb.broadcastTo(dx, in));
    return success();
  }

  LogicalResult softmaxRule(GradBuilder &gb, SoftmaxOp op, Value g) {
    Value y = op.getResult();
    int64_t last = shapeOf(y).size() - 1;
    Value s = gb.reduce(ReduceFn::sum, gb.mul(g, y), {last}, /*keepdims=*/true);
    accumulate(gb, op.getInput(), gb.mul(y, gb.sub(g, s)));
    return success();
  }

  LogicalResult transposeRule(GradBuilder &gb, TransposeOp op, Value g) {
    ArrayRef<int64_t> perm = op.getPerm();
    Shape inv(perm.size());
    for (size_t i = 0; i < perm.size(); ++i)
      inv[perm[i]] = i;
    accumulate(gb, op.getInput(), gb.transpose(g, inv));
    return success();
  }

  LogicalResult sliceRule(GradBuilder &gb, SliceOp op, Value g) {
    ArrayRef<int64_t> in = shapeOf(op.getInput()), out = shapeOf(op.getResult());
    Shape low, high, interior;
    for (size_t i = 0; i < in.size(); ++i) {
      if (out[i] == 0)
        return success(); // empty slice: no gradient
      int64_t s = op.getStarts()[i], st = op.getStrides()[i];
      low.push_back(s);
      interior.push_back(st - 1);
      high.push_back(in[i] - s - (out[i] - 1) * st - 1);
    }
    accumulate(gb, op.getInput(), gb.pad(g, low, high, interior));
    return success();
  }

  LogicalResult padRule(GradBuilder &gb, PadOp op, Value g) {
    ArrayRef<int64_t> in = shapeOf(op.getInput());
    Shape starts, limits, strides;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] == 0)
        return success();
      int64_t lo = op.getLow()[i], st = op.getInterior()[i] + 1;
      starts.push_back(lo);
      limits.push_back(lo + (in[i] - 1) * st + 1);
      strides.push_back(st);
    }
    accumulate(gb, op.getInput(), gb.slice(g, starts, limits, strides));
    return success();
  }

  LogicalResult concatRule(GradBuilder &gb, ConcatOp op, Value g) {
    ArrayRef<int64_t> out = shapeOf(op.getResult());
    int64_t axis = op.getAxis(), offset = 0;
    for (Value in : op.getInputs()) {
      int64_t size = shapeOf(in)[axis];
      if (active.contains(in)) {
        Shape starts(out.size(), 0), limits(out), strides(out.size(), 1);
        starts[axis] = offset;
        limits[axis] = offset + size;
        accumulate(gb, in, gb.slice(g, starts, limits, strides));
      }
      offset += size;
    }
    return success();
  }

  LogicalResult rule(GradBuilder &gb, Operation *op, Value g) {
    if (auto o = dyn_cast<UnaryOp>(op))
      return unaryRule(gb, o, g);
    if (auto o = dyn_cast<BinaryOp>(op))
      return binaryRule(gb, o, g);
    if (auto o = dyn_cast<SelectOp>(op)) {
      if (active.contains(o.getLhs()))
        accumulate(gb, o.getLhs(),
                   gb.unbroadcast(gb.select(o.getCond(), g, gb.cst(0.0, g)), shapeOf(o.getLhs())));
      if (active.contains(o.getRhs()))
        accumulate(gb, o.getRhs(),
                   gb.unbroadcast(gb.select(o.getCond(), gb.cst(0.0, g), g), shapeOf(o.getRhs())));
      return success();
    }
    if (auto o = dyn_cast<CastOp>(op)) {
      // Active casts are float -> float (a cast to an integer type ends activity).
      accumulate(gb, o.getInput(), g);
      return success();
    }
    if (auto o = dyn_cast<DropoutOp>(op)) {
      // A fixed mask times a constant: the same op (same site, so the same
      // mask in the same program) applied to the gradient.
      accumulate(gb, o.getInput(),
                 gb.b.create<DropoutOp>(gb.loc, g, o.getRateAttr(), o.getSiteAttr()));
      return success();
    }
    if (auto o = dyn_cast<MatmulOp>(op))
      return matmulRule(gb, o, g);
    if (auto o = dyn_cast<ReduceOp>(op))
      return reduceRule(gb, o, g);
    if (auto o = dyn_cast<SoftmaxOp>(op))
      return softmaxRule(gb, o, g);
    if (auto o = dyn_cast<TransposeOp>(op))
      return transposeRule(gb, o, g);
    if (auto o = dyn_cast<ReshapeOp>(op)) {
      accumulate(gb, o.getInput(), gb.reshape(g, shapeOf(o.getInput())));
      return success();
    }
    if (auto o = dyn_cast<BroadcastOp>(op)) {
      accumulate(gb, o.getInput(), gb.unbroadcast(g, shapeOf(o.getInput())));
      return success();
    }
    if (auto o = dyn_cast<SliceOp>(op))
      return sliceRule(gb, o, g);
    if (auto o = dyn_cast<PadOp>(op))
      return padRule(gb, o, g);
    if (auto o = dyn_cast<ConcatOp>(op))
      return concatRule(gb, o, g);
    if (auto o = dyn_cast<GatherOp>(op)) {
      if (active.contains(o.getInput()))
        return o.emitOpError("tessera-autodiff: a LoRA parameter flows into the table of this "
                             "gather; gradients of gather tables are not supported (tables "
                             "are frozen embeddings)");
      return success();
    }
    if (auto o = dyn_cast<CrossEntropyOp>(op)) {
      Value dl = gb.b.create<CrossEntropyGradOp>(gb.loc, o.getLogits(), o.getLabels(), g,
                                                 o.getIgnoreIndexAttr(), o.getShiftAttr());
      accumulate(gb, o.getLogits(), dl);
      return success();
    }
    return op->emitOpError("tessera-autodiff: no gradient rule for '")
           << op->getName() << "', which lies between a LoRA parameter and the loss";
  }

  void runOnOperation() override {
    active.clear();
    grads.clear();
    ModuleOp module = getOperation();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss) {
      emitError(module.getLoc(), "tessera-autodiff: the module has no @loss function "
                                 "(run tessera-append-loss first)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad")) {
      emitError(module.getLoc(), "tessera-autodiff: the module already has a @loss_grad symbol");
      return signalPassFailure();
    }
    auto scalar = RankedTensorType::get({}, Float32Type::get(module.getContext()));
    if (loss.isExternal() || !loss.getBody().hasOneBlock() ||
        loss.getFunctionType().getNumResults() != 1 ||
        loss.getFunctionType().getResult(0) != scalar) {
      emitError(loss.getLoc(),
                "tessera-autodiff: @loss must have a single-block body returning one "
                "tensor<f32>");
      return signalPassFailure();
    }

    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(loss);
    auto grad = cast<func::FuncOp>(b.clone(*loss));
    grad.setSymName("loss_grad");
    Block &body = grad.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value lossValue = ret.getOperand(0);

    // Activity analysis.
    SmallVector<Operation *> ops;
    DenseSet<Value> varied, useful;
    llvm::MapVector<StringAttr, SmallVector<ParamOp>> loraParams;
    for (Operation &op : body.without_terminator()) {
      ops.push_back(&op);
      if (auto p = dyn_cast<ParamOp>(op)) {
        if (p.getKind() != ParamKind::frozen) {
          varied.insert(p.getResult());
          loraParams[p.getNameAttr()].push_back(p);
        }
        continue;
      }
      if (llvm::any_of(op.getOperands(), [&](Value v) { return varied.contains(v); }))
        for (Value r : op.getResults())
          if (isFloatTensor(r))
            varied.insert(r);
    }
    useful.insert(lossValue);
    for (Operation *op : llvm::reverse(ops))
      if (llvm::any_of(op->getResults(), [&](Value r) { return useful.contains(r); }))
        for (Value v : op->getOperands())
          useful.insert(v);
    for (Value v : varied)
      if (useful.contains(v))
        active.insert(v);

    // Backward sweep, inserted before the return.
    b.setInsertionPoint(ret);
    GradBuilder gb(b, ret.getLoc());
    if (active.contains(lossValue))
      grads[lossValue] = gb.cst(1.0, lossValue);
    for (Operation *op : llvm::reverse(ops)) {
      if (op->getNumResults() != 1 || isa<ParamOp, ConstantOp>(op))
        continue; // leaves
      auto it = grads.find(op->getResult(0));
      if (it == grads.end())
        continue;
      gb.loc = op->getLoc();
      if (failed(rule(gb, op, it->second)))
        return signalPassFailure();
    }

    // Results: the loss, then one gradient per LoRA parameter name.
    gb.loc = ret.getLoc();
    SmallVector<Value> results{lossValue};
    SmallVector<StringAttr> names;
    for (auto &[name, params] : loraParams) {
      Value total;
      for (ParamOp p : params) {
        Value g = grads.lookup(p.getResult());
        if (g)
          total = total ? gb.add(total, g) : g;
      }
      if (!total)
        total = gb.zeros(cast<RankedTensorType>(params.front().getType()));
      results.push_back(total);
      names.push_back(name);
    }
    b.create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();

    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    grad.setType(b.getFunctionType(grad.getArgumentTypes(), resultTypes));
    SmallVector<DictionaryAttr> resAttrs{b.getDictionaryAttr({})};
    for (StringAttr name : names)
      resAttrs.push_back(b.getDictionaryAttr({b.getNamedAttr("tessera.grad_of", name)}));
    grad.setAllResultAttrs(resAttrs);
  }
};

} // namespace
} // namespace mlir::tessera
