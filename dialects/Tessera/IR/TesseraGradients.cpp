//===- TesseraGradients.cpp - GradientOpInterface of each op -------------===//
//
// The reverse-mode rule of every differentiable tensor op, beside the op:
// given the gradient g of the result, each rule adds the gradient of its
// active operands (GradientBuilder::accumulate) and builds nothing for the
// others, so frozen-only branches cost no gradient work. Gradients of
// broadcast operands are summed back to their shape (unbroadcast). Masks
// (relu, abs, max/min, reduce max) use `cast f32 -> i1` (x != 0) and select,
// the core having no comparison op. The raised ops (rms_norm, rope,
// attention, glu, embedding) have no rule: tessera-decompose-fused expands
// them before autodiff. The rules are checked numerically against finite
// differences and a float64 interpreter (test/unit/autodiff).
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/GradientBuilder.h"

#include <cmath>
#include <numeric>
#include <optional>

using namespace mlir;
using namespace mlir::tessera;

#include "Tessera/IR/TesseraInterfaces.cpp.inc"

//===----------------------------------------------------------------------===//
// GradientBuilder
//===----------------------------------------------------------------------===//

void GradientBuilder::accumulate(Value v, Value g) {
  if (!active.contains(v))
    return;
  assert(shapeOf(g) == shapeOf(v) && "gradient shape differs from its value's");
  auto it = grads.find(v);
  if (it == grads.end())
    grads[v] = g;
  else
    it->second = add(it->second, g);
}

Value GradientBuilder::cst(double v, Value like) {
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

Value GradientBuilder::zeros(RankedTensorType type) {
  return b.create<ConstantOp>(loc,
                              DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), 0.0)));
}

Value GradientBuilder::nonzero(Value x) {
  auto type = RankedTensorType::get(shapeOf(x), b.getI1Type());
  return b.create<CastOp>(loc, type, x);
}

Value GradientBuilder::reshape(Value x, ArrayRef<int64_t> shape) {
  if (shapeOf(x) == shape)
    return x;
  return b.create<ReshapeOp>(loc, RankedTensorType::get(shape, elementOf(x)), x);
}

Value GradientBuilder::broadcastTo(Value x, ArrayRef<int64_t> shape) {
  if (shapeOf(x) == shape)
    return x;
  return b.create<BroadcastOp>(loc, RankedTensorType::get(shape, elementOf(x)), x);
}

Value GradientBuilder::unbroadcast(Value g, ArrayRef<int64_t> target) {
  ArrayRef<int64_t> r = shapeOf(g);
  if (r == target)
    return g;
  size_t off = r.size() - target.size();
  SmallVector<int64_t> axes;
  for (size_t i = 0; i < r.size(); ++i) {
    bool broadcastAxis = i < off || (target[i - off] == 1);
    if (broadcastAxis && r[i] != 1)
      axes.push_back(i);
  }
  Value v = axes.empty() ? g : reduce(ReduceFn::sum, g, axes, /*keepdims=*/false);
  return reshape(v, target);
}

namespace {

using Shape = SmallVector<int64_t>;

ArrayRef<int64_t> shapeOf(Value v) { return GradientBuilder::shapeOf(v); }

std::optional<double> splatConstant(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  auto d = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!d || !d.isSplat() || !isa<FloatType>(d.getElementType()))
    return std::nullopt;
  return d.getSplatValue<APFloat>().convertToDouble();
}

} // namespace

//===----------------------------------------------------------------------===//
// Rules
//===----------------------------------------------------------------------===//

LogicalResult UnaryOp::backprop(GradientBuilder &gb, Value g) {
  Value x = getInput(), y = getResult(), dx;
  switch (getFn()) {
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
  case UnaryFn::round: // piecewise constant: zero almost everywhere
    dx = gb.zeros(cast<RankedTensorType>(g.getType()));
    break;
  case UnaryFn::abs: { // sign(x), 0 at 0
    Value signed_ = gb.select(gb.nonzero(gb.binary(BinaryFn::max, x, gb.cst(0.0, x))), g, gb.neg(g));
    dx = gb.select(gb.nonzero(x), signed_, gb.cst(0.0, g));
    break;
  }
  }
  gb.accumulate(x, dx);
  return success();
}

LogicalResult BinaryOp::backprop(GradientBuilder &gb, Value g) {
  Value a = getLhs(), c = getRhs(), y = getResult();
  bool needA = gb.isActive(a), needC = gb.isActive(c);
  Value da, dc;
  switch (getFn()) {
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
    bool isMax = getFn() == BinaryFn::max;
    if (needA)
      da = gb.select(isMax ? gt : lt, g, tie);
    if (needC)
      dc = gb.select(isMax ? lt : gt, g, tie);
    break;
  }
  }
  if (needA)
    gb.accumulate(a, gb.unbroadcast(gb.broadcastTo(da, shapeOf(y)), shapeOf(a)));
  if (needC)
    gb.accumulate(c, gb.unbroadcast(gb.broadcastTo(dc, shapeOf(y)), shapeOf(c)));
  return success();
}

LogicalResult SelectOp::backprop(GradientBuilder &gb, Value g) {
  if (gb.isActive(getLhs()))
    gb.accumulate(getLhs(),
               gb.unbroadcast(gb.select(getCond(), g, gb.cst(0.0, g)), shapeOf(getLhs())));
  if (gb.isActive(getRhs()))
    gb.accumulate(getRhs(),
               gb.unbroadcast(gb.select(getCond(), gb.cst(0.0, g), g), shapeOf(getRhs())));
  return success();
}

LogicalResult CastOp::backprop(GradientBuilder &gb, Value g) {
  // Active casts are float -> float (a cast to an integer type ends activity).
  gb.accumulate(getInput(), g);
  return success();
}

LogicalResult DropoutOp::backprop(GradientBuilder &gb, Value g) {
  // A fixed mask times a constant: the same op (same site, so the same
  // mask in the same program) applied to the gradient.
  gb.accumulate(getInput(),
             gb.b.create<DropoutOp>(gb.loc, g, getRateAttr(), getSiteAttr()));
  return success();
}

LogicalResult ActQuantOp::backprop(GradientBuilder &gb, Value g) {
  // Straight-through estimator (BitNet, transformers' ActQuant): the
  // rounding is treated as the identity.
  gb.accumulate(getInput(), g);
  return success();
}

LogicalResult MatmulOp::backprop(GradientBuilder &gb, Value g) {
  Value a = getLhs(), c = getRhs();
  bool ta = getTransposeLhs(), tc = getTransposeRhs();
  if (gb.isActive(a)) {
    // dA = g op(c)^T; with transpose_lhs, d(a) = dA^T = op(c) g^T.
    Value da = ta ? gb.matmul(c, g, /*tx=*/tc, /*ty=*/true) : gb.matmul(g, c, false, !tc);
    gb.accumulate(a, gb.unbroadcast(da, shapeOf(a)));
  }
  if (gb.isActive(c)) {
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
    gb.accumulate(c, gb.unbroadcast(dc, shapeOf(c)));
  }
  return success();
}

LogicalResult ReduceOp::backprop(GradientBuilder &gb, Value g) {
  Value x = getInput(), y = getResult();
  ArrayRef<int64_t> in = shapeOf(x);
  ArrayRef<int64_t> axes = getAxes();
  Shape keep(in);
  int64_t count = 1;
  for (int64_t a : axes) {
    keep[a] = 1;
    count *= in[a];
  }
  // A rank-0 gradient broadcasts as is; otherwise put the reduced axes back as 1s.
  Value gk = shapeOf(g).empty() ? g : gb.reshape(g, keep);
  Value dx;
  switch (getFn()) {
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
  gb.accumulate(x, gb.broadcastTo(dx, in));
  return success();
}

LogicalResult SoftmaxOp::backprop(GradientBuilder &gb, Value g) {
  Value y = getResult();
  int64_t last = shapeOf(y).size() - 1;
  Value s = gb.reduce(ReduceFn::sum, gb.mul(g, y), {last}, /*keepdims=*/true);
  gb.accumulate(getInput(), gb.mul(y, gb.sub(g, s)));
  return success();
}

LogicalResult TransposeOp::backprop(GradientBuilder &gb, Value g) {
  ArrayRef<int64_t> perm = getPerm();
  Shape inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    inv[perm[i]] = i;
  gb.accumulate(getInput(), gb.transpose(g, inv));
  return success();
}

LogicalResult ReshapeOp::backprop(GradientBuilder &gb, Value g) {
  gb.accumulate(getInput(), gb.reshape(g, shapeOf(getInput())));
  return success();
}

LogicalResult BroadcastOp::backprop(GradientBuilder &gb, Value g) {
  gb.accumulate(getInput(), gb.unbroadcast(g, shapeOf(getInput())));
  return success();
}

LogicalResult SliceOp::backprop(GradientBuilder &gb, Value g) {
  ArrayRef<int64_t> in = shapeOf(getInput()), out = shapeOf(getResult());
  Shape low, high, interior;
  for (size_t i = 0; i < in.size(); ++i) {
    if (out[i] == 0)
      return success(); // empty slice: no gradient
    int64_t s = getStarts()[i], st = getStrides()[i];
    low.push_back(s);
    interior.push_back(st - 1);
    high.push_back(in[i] - s - (out[i] - 1) * st - 1);
  }
  gb.accumulate(getInput(), gb.pad(g, low, high, interior));
  return success();
}

LogicalResult PadOp::backprop(GradientBuilder &gb, Value g) {
  ArrayRef<int64_t> in = shapeOf(getInput());
  Shape starts, limits, strides;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 0)
      return success();
    int64_t lo = getLow()[i], st = getInterior()[i] + 1;
    starts.push_back(lo);
    limits.push_back(lo + (in[i] - 1) * st + 1);
    strides.push_back(st);
  }
  gb.accumulate(getInput(), gb.slice(g, starts, limits, strides));
  return success();
}

LogicalResult ConcatOp::backprop(GradientBuilder &gb, Value g) {
  ArrayRef<int64_t> out = shapeOf(getResult());
  int64_t axis = getAxis(), offset = 0;
  for (Value in : getInputs()) {
    int64_t size = shapeOf(in)[axis];
    if (gb.isActive(in)) {
      Shape starts(out.size(), 0), limits(out), strides(out.size(), 1);
      starts[axis] = offset;
      limits[axis] = offset + size;
      gb.accumulate(in, gb.slice(g, starts, limits, strides));
    }
    offset += size;
  }
  return success();
}

LogicalResult GatherOp::backprop(GradientBuilder &gb, Value g) {
  if (gb.isActive(getInput()))
    return emitOpError("tessera-autodiff: a LoRA parameter flows into the table of this "
                         "gather; gradients of gather tables are not supported (tables "
                         "are frozen embeddings)");
  return success();
}

LogicalResult CrossEntropyOp::backprop(GradientBuilder &gb, Value g) {
  Value dl = gb.b.create<CrossEntropyGradOp>(gb.loc, getLogits(), getLabels(), g,
                                             getIgnoreIndexAttr(), getShiftAttr());
  gb.accumulate(getLogits(), dl);
  return success();
}

// RoPE is linear in its input: the gradient is the adjoint rotation,
// dx = g * cos + rotate_half^T(g * sin), one tessera.rope {transposed} (and
// the adjoint of that is the op itself). The tables come from the positions
// (constants and inputs), never from a LoRA parameter.
LogicalResult RopeOp::backprop(GradientBuilder &gb, Value g) {
  if (gb.isActive(getCos()) || gb.isActive(getSin()))
    return emitOpError("the cos/sin tables depend on a LoRA parameter: rope has no table gradient");
  if (!gb.isActive(getInput()))
    return success();
  if (getInputPermutation() || getResultPermutation())
    return emitOpError("has folded transposes (tessera-fold-rope-transposes runs after autodiff)");
  auto dx = gb.b.create<RopeOp>(gb.loc, g, getCos(), getSin(), !getTransposed(), nullptr, nullptr);
  gb.accumulate(getInput(), dx.getResult());
  return success();
}

// One backward op for dq, dk and dv (FlashAttention-2): the probabilities are
// recomputed from lse, never stored. lse itself is no differentiable output
// (tessera-autodiff passes the gradient of the result only).
LogicalResult FlashAttentionOp::backprop(GradientBuilder &gb, Value g) {
  if (gb.gradientOf(getLse()))
    return emitOpError("lse has a gradient: only the result of a flash_attention is differentiable");
  if (Value mask = getMask(); mask && gb.isActive(mask))
    return emitOpError("the mask depends on a LoRA parameter: flash_attention has no mask gradient");
  Value q = getQuery(), k = getKey(), v = getValue();
  if (!gb.isActive(q) && !gb.isActive(k) && !gb.isActive(v))
    return success();
  auto grad = gb.b.create<FlashAttentionGradOp>(gb.loc, q, k, v, getResult(), getLse(), g, getMask(),
                                               getScaleAttr(), getKvGroupsAttr());
  gb.accumulate(q, grad.getDquery());
  gb.accumulate(k, grad.getDkey());
  gb.accumulate(v, grad.getDvalue());
  return success();
}
