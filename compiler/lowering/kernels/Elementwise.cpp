// Elementwise.cpp - unary, binary, select, cast, fused and copy kernels.
//
// One thread per output element (grid-stride loop when the element count
// exceeds max_workgroup_count * workgroup_size). Operands are read through a
// numpy-broadcast index map with static strides.
//
// Transcendentals are written for fp32 accuracy independent of the driver's
// GLSL.std.450 precision: sin/cos reduce their argument by pi/2 (Cody-Waite)
// and use Taylor polynomials on [-pi/4, pi/4]; tanh uses its Taylor series
// near 0 and 1 - 2/(exp(2|x|)+1) elsewhere; sigmoid-like functions never
// subtract nearly equal numbers; pow handles negative bases with integral
// exponents and zero bases like C's powf.
#include "compiler/lowering/kernels/Kernels.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

std::string opKey(Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  // What determines the code: the op's own attributes and its kernel config,
  // not the annotations earlier passes left (tessera.layer, tessera.module,
  // ...), so that the same op of every decoder layer shares one kernel.
  os << op->getName() << " {";
  for (NamedAttribute a : op->getAttrDictionary()) {
    StringRef name = a.getName().getValue();
    if (name.contains('.') && name != mlir::tessera::TesseraDialect::getKernelConfigAttrName())
      continue;
    os << name << " = " << a.getValue() << ", ";
  }
  os << "} (";
  for (Type t : op->getOperandTypes())
    os << t << ",";
  os << ")->(";
  for (Type t : op->getResultTypes())
    os << t << ",";
  os << ")";
  return s;
}

namespace {

ShapedType shapedOf(Value v) { return cast<ShapedType>(v.getType()); }

int64_t workgroupOf(Operation *op) { return kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize(); }

// Elementwise fp32 math helpers (all take and return f32 values).
struct FMath {
  KernelBuilder &kb;
  ImplicitLocOpBuilder &b;
  explicit FMath(KernelBuilder &k) : kb(k), b(k.b) {}

  Value c(double v) { return kb.f32(v); }
  Value lt(Value a, Value d) { return b.create<arith::CmpFOp>(arith::CmpFPredicate::OLT, a, d); }
  Value gt(Value a, Value d) { return b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, a, d); }
  Value eq(Value a, Value d) { return b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, a, d); }
  Value ne(Value a, Value d) { return b.create<arith::CmpFOp>(arith::CmpFPredicate::ONE, a, d); }
  Value neg(Value a) { return b.create<arith::NegFOp>(a); }
  Value abs(Value a) { return b.create<math::AbsFOp>(a); }
  Value exp(Value a) { return b.create<math::ExpOp>(a); }
  Value floor(Value a) { return b.create<math::FloorOp>(a); }

  // Horner evaluation of sum coeffs[i] * t^i.
  Value poly(Value t, ArrayRef<double> coeffs) {
    Value r = c(coeffs.back());
    for (int i = (int)coeffs.size() - 2; i >= 0; --i)
      r = kb.fma(r, t, c(coeffs[i]));
    return r;
  }

  // 1 / (1 + exp(-x)): no cancellation; exp overflow gives 0, as it should.
  Value sigmoid(Value x) { return kb.fdiv(c(1.0), kb.fadd(c(1.0), exp(neg(x)))); }

  Value tanh(Value x) {
    Value ax = abs(x);
    Value x2 = kb.fmul(x, x);
    // tanh x = x + x^3 P(x^2), |x| < 0.5: Taylor series through x^15.
    Value p = poly(x2, {-1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
                        21844.0 / 6081075, -929569.0 / 638512875});
    Value small = kb.fma(kb.fmul(x, x2), p, x);
    // 1 - 2 / (exp(2|x|) + 1), sign restored.
    Value e = exp(kb.fmul(ax, c(2.0)));
    Value big = kb.fsub(c(1.0), kb.fdiv(c(2.0), kb.fadd(e, c(1.0))));
    big = kb.select(lt(x, c(0.0)), neg(big), big);
    return kb.select(lt(ax, c(0.5)), small, big);
  }

  // sin(x + quadrantShift * pi/2).
  Value sinQuadrant(Value x, int quadrantShift) {
    // k = round(x * 2/pi); r = x - k*pi/2 in three parts (Cody-Waite).
    Value k = floor(kb.fma(x, c(0.63661977236758134), c(0.5)));
    Value r = kb.fma(neg(k), c(1.5703125), x);
    r = kb.fma(neg(k), c(4.838705062866211e-4), r);
    r = kb.fma(neg(k), c(-4.371139006309477e-8), r);
    Value r2 = kb.fmul(r, r);
    // Taylor polynomials, |r| <= pi/4: errors below 1e-11.
    Value sinP = poly(r2, {-1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880, -1.0 / 39916800});
    Value s = kb.fma(kb.fmul(r, r2), sinP, r);
    Value cosP = poly(r2, {-0.5, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800,
                           1.0 / 479001600});
    Value co = kb.fma(r2, cosP, c(1.0));
    // Quadrant q = (k + shift) mod 4 (two's complement & 3 also for k < 0).
    Value ki = b.create<arith::FPToSIOp>(b.getI32Type(), k);
    Value q = b.create<arith::AndIOp>(b.create<arith::AddIOp>(ki, kb.i32(quadrantShift)),
                                      kb.i32(3));
    auto qIs = [&](int v) { return b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, q, kb.i32(v)); };
    // q: 0 -> sin r, 1 -> cos r, 2 -> -sin r, 3 -> -cos r
    Value useCos = b.create<arith::OrIOp>(qIs(1), qIs(3));
    Value v = kb.select(useCos, co, s);
    Value negate = b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, q, kb.i32(2));
    return kb.select(negate, neg(v), v);
  }

  Value pow(Value x, Value y) {
    Value ax = abs(x);
    Value general = exp(kb.fmul(y, b.create<math::LogOp>(ax)));
    Value yInt = eq(floor(y), y);
    Value yOdd = b.create<arith::AndIOp>(yInt, ne(kb.fmul(floor(kb.fmul(y, c(0.5))), c(2.0)), y));
    Value nan = c(std::numeric_limits<double>::quiet_NaN());
    Value inf = c(std::numeric_limits<double>::infinity());
    // Negative base: defined for integral exponents only.
    Value negBase = kb.select(yInt, kb.select(yOdd, neg(general), general), nan);
    Value r = kb.select(lt(x, c(0.0)), negBase, general);
    // Zero base: 0 for y > 0, inf for y < 0 (y == 0 is handled below).
    r = kb.select(eq(x, c(0.0)), kb.select(gt(y, c(0.0)), c(0.0), inf), r);
    // Exact common cases.
    r = kb.select(eq(y, c(2.0)), kb.fmul(x, x), r);
    r = kb.select(eq(y, c(3.0)), kb.fmul(kb.fmul(x, x), x), r);
    r = kb.select(eq(y, c(1.0)), x, r);
    r = kb.select(eq(y, c(0.5)), b.create<math::SqrtOp>(x), r);
    r = kb.select(eq(y, c(-1.0)), kb.fdiv(c(1.0), x), r);
    r = kb.select(eq(y, c(0.0)), c(1.0), r);
    return r;
  }
};

Value emitUnary(KernelBuilder &kb, UnaryFn fn, Value x) {
  FMath m(kb);
  ImplicitLocOpBuilder &b = kb.b;
  switch (fn) {
  case UnaryFn::neg: return m.neg(x);
  case UnaryFn::exp: return m.exp(x);
  case UnaryFn::log: return b.create<math::LogOp>(x);
  case UnaryFn::sqrt: return b.create<math::SqrtOp>(x);
  case UnaryFn::rsqrt: return b.create<math::RsqrtOp>(x);
  case UnaryFn::reciprocal: return kb.fdiv(m.c(1.0), x);
  case UnaryFn::sigmoid: return m.sigmoid(x);
  case UnaryFn::tanh: return m.tanh(x);
  case UnaryFn::silu: return kb.fdiv(x, kb.fadd(m.c(1.0), m.exp(m.neg(x))));
  case UnaryFn::gelu_tanh: {
    // 0.5 x (1 + tanh u) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
    Value x3 = kb.fmul(kb.fmul(x, x), x);
    Value u = kb.fmul(m.c(0.79788456080286536), kb.fma(x3, m.c(0.044715), x));
    return kb.fdiv(x, kb.fadd(m.c(1.0), m.exp(kb.fmul(u, m.c(-2.0)))));
  }
  case UnaryFn::cos: return m.sinQuadrant(x, 1);
  case UnaryFn::sin: return m.sinQuadrant(x, 0);
  case UnaryFn::relu: return kb.fmax(x, m.c(0.0));
  case UnaryFn::abs: return m.abs(x);
  case UnaryFn::round: return b.create<math::RoundEvenOp>(x);
  }
  llvm_unreachable("unary fn");
}

Value emitBinary(KernelBuilder &kb, BinaryFn fn, Value x, Value y) {
  ImplicitLocOpBuilder &b = kb.b;
  switch (fn) {
  case BinaryFn::add: return kb.fadd(x, y);
  case BinaryFn::sub: return kb.fsub(x, y);
  case BinaryFn::mul: return kb.fmul(x, y);
  case BinaryFn::div: return kb.fdiv(x, y);
  case BinaryFn::pow: return FMath(kb).pow(x, y);
  case BinaryFn::max: return b.create<arith::MaximumFOp>(x, y);
  case BinaryFn::min: return b.create<arith::MinimumFOp>(x, y);
  }
  llvm_unreachable("binary fn");
}

using ElementFn = std::function<Value(KernelBuilder &, ArrayRef<Value>)>;
using ElementsFn = std::function<SmallVector<Value>(KernelBuilder &, ArrayRef<Value>)>;

// One kernel: out_j[i] = fn_j(in_0[map_0(i)], ..., in_k[map_k(i)]), the
// outputs of one shape.
OpLowering elementwiseMulti(LoweringContext &ctx, StringRef family, const std::string &key, ArrayRef<ShapedType> ins,
                            ArrayRef<ShapedType> outs, int64_t wg, const ElementsFn &fn) {
  OpLowering lowering;
  ShapedType out = outs.front();
  int64_t n = numElements(out.getShape());
  if (n == 0)
    return lowering;
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  SmallVector<Type> args;
  for (ShapedType t : ins)
    args.push_back(flatMemRefType(t));
  for (ShapedType t : outs)
    args.push_back(flatMemRefType(t));
  SmallVector<ShapedType> inTypes(ins.begin(), ins.end());
  size_t numOuts = outs.size();
  KernelHandle k = ctx.getOrCreate(family, key, args, {wg, 1, 1}, [&](KernelBuilder &kb) {
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      SmallVector<Value> vals;
      for (size_t a = 0; a < inTypes.size(); ++a) {
        ArrayRef<int64_t> shape = inTypes[a].getShape();
        Value off;
        if (shape == out.getShape())
          off = i;
        else if (numElements(shape) == 1)
          off = kb.idx(0);
        else
          off = kb.applyIndexMap(i, broadcastIndexMap(out.getShape(), shape), n);
        vals.push_back(kb.load(kb.arg(a), off));
      }
      SmallVector<Value> results = fn(kb, vals);
      for (size_t j = 0; j < numOuts; ++j)
        kb.store(results[j], kb.arg(inTypes.size() + j), i);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  DispatchStep step{k, {}};
  for (unsigned s = 0; s < ins.size() + numOuts; ++s)
    step.slots.push_back(s);
  lowering.steps.push_back(step);
  return lowering;
}

// One kernel: out[i] = fn(in_0[map_0(i)], ..., in_k[map_k(i)]).
OpLowering elementwise(LoweringContext &ctx, StringRef family, const std::string &key,
                       ArrayRef<ShapedType> ins, ShapedType out, int64_t wg, const ElementFn &fn) {
  return elementwiseMulti(ctx, family, key, ins, {out}, wg, [&](KernelBuilder &kb, ArrayRef<Value> v) {
    return SmallVector<Value>{fn(kb, v)};
  });
}

} // namespace

FailureOr<OpLowering> lowerUnary(LoweringContext &ctx, UnaryOp op) {
  UnaryFn fn = op.getFn();
  return elementwise(ctx, "unary_" + stringifyUnaryFn(fn).str(), opKey(op),
                     {shapedOf(op.getInput())}, shapedOf(op.getResult()), workgroupOf(op),
                     [fn](KernelBuilder &kb, ArrayRef<Value> v) { return emitUnary(kb, fn, v[0]); });
}

FailureOr<OpLowering> lowerBinary(LoweringContext &ctx, BinaryOp op) {
  BinaryFn fn = op.getFn();
  return elementwise(ctx, "binary_" + stringifyBinaryFn(fn).str(), opKey(op),
                     {shapedOf(op.getLhs()), shapedOf(op.getRhs())}, shapedOf(op.getResult()),
                     workgroupOf(op), [fn](KernelBuilder &kb, ArrayRef<Value> v) {
                       return emitBinary(kb, fn, v[0], v[1]);
                     });
}

FailureOr<OpLowering> lowerSelect(LoweringContext &ctx, SelectOp op) {
  return elementwise(ctx, "select", opKey(op),
                     {shapedOf(op.getCond()), shapedOf(op.getLhs()), shapedOf(op.getRhs())},
                     shapedOf(op.getResult()), workgroupOf(op), [](KernelBuilder &kb, ArrayRef<Value> v) {
                       Value c = kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, v[0],
                                                            kb.i32(0));
                       return kb.select(c, v[1], v[2]);
                     });
}

namespace {

// A cast of one loaded element (f32 for any float type, i32 for i32 and
// i1, holding 0/1) to the computed representation of `to`: f32 (stores
// round to the result type) or i32.
Value emitCast(KernelBuilder &kb, Type from, Type to, Value x) {
  ImplicitLocOpBuilder &b = kb.b;
  bool fromFloat = isa<FloatType>(from), toFloat = isa<FloatType>(to);
  if (to.isInteger(1)) {
    Value nz = fromFloat ? (Value)b.create<arith::CmpFOp>(arith::CmpFPredicate::UNE, x, kb.f32(0.0))
                         : (Value)b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, x, kb.i32(0));
    return b.create<arith::ExtUIOp>(b.getI32Type(), nz);
  }
  if (toFloat)
    return fromFloat ? x : (Value)b.create<arith::SIToFPOp>(b.getF32Type(), x);
  if (fromFloat) // to i32
    return b.create<arith::FPToSIOp>(b.getI32Type(), x);
  return x; // i32 <- i32 / i1
}

// What a store of `x` (f32) into a buffer of `elem` and a load back give:
// the rounding of an intermediate the unfused plan stored (KernelBuilder.h).
Value roundTo(KernelBuilder &kb, Type elem, Value x) {
  ImplicitLocOpBuilder &b = kb.b;
  if (elem.isF16()) {
    Value lim = kb.f32(65504.0);
    x = b.create<arith::MinimumFOp>(b.create<arith::MaximumFOp>(x, b.create<arith::NegFOp>(lim)), lim);
    Value half = b.create<arith::TruncFOp>(b.getF16Type(), x);
    return b.create<arith::ExtFOp>(b.getF32Type(), half);
  }
  if (elem.isBF16())
    return kb.bf16ToF32(kb.f32ToBf16(x));
  return x;
}

Type elementOf(Value v) { return getElementTypeOrSelf(v.getType()); }

} // namespace

FailureOr<OpLowering> lowerCast(LoweringContext &ctx, CastOp op) {
  Type from = shapedOf(op.getInput()).getElementType();
  Type to = shapedOf(op.getResult()).getElementType();
  return elementwise(ctx, "cast", opKey(op), {shapedOf(op.getInput())}, shapedOf(op.getResult()),
                     workgroupOf(op), [from, to](KernelBuilder &kb, ArrayRef<Value> v) -> Value {
                       return emitCast(kb, from, to, v[0]);
                     });
}

FailureOr<OpLowering> lowerFusedElementwise(LoweringContext &ctx, FusedElementwiseOp op) {
  SmallVector<ShapedType> ins, outs;
  for (Value v : op.getInputs())
    ins.push_back(shapedOf(v));
  for (Value v : op.getResults())
    outs.push_back(shapedOf(v));
  Block *body = &op.getBody().front();
  SmallVector<Value> yielded(op.getYielded());
  // The body's ops determine the code: they are part of the kernel's key.
  std::string key = opKey(op) + " body " + op.bodySignature();
  return elementwiseMulti(
      ctx, "fused_elementwise", key, ins, outs, workgroupOf(op),
      [body, yielded](KernelBuilder &kb, ArrayRef<Value> loaded) -> SmallVector<Value> {
        DenseMap<Value, Value> env;
        for (BlockArgument a : body->getArguments())
          env[a] = loaded[a.getArgNumber()];
        for (Operation &o : body->without_terminator()) {
          Value r = llvm::TypeSwitch<Operation *, Value>(&o)
                        .Case([&](UnaryOp u) { return emitUnary(kb, u.getFn(), env[u.getInput()]); })
                        .Case([&](BinaryOp bo) { return emitBinary(kb, bo.getFn(), env[bo.getLhs()], env[bo.getRhs()]); })
                        .Case([&](SelectOp so) {
                          Value c = kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, env[so.getCond()], kb.i32(0));
                          return kb.select(c, env[so.getLhs()], env[so.getRhs()]);
                        })
                        .Case([&](CastOp co) {
                          return emitCast(kb, elementOf(co.getInput()), elementOf(co.getResult()), env[co.getInput()]);
                        });
          // Rounded where the unfused plan stored it (a store rounds the
          // same way again, exactly: the value is representable).
          env[o.getResult(0)] = roundTo(kb, elementOf(o.getResult(0)), r);
        }
        SmallVector<Value> out;
        for (Value y : yielded)
          out.push_back(env[y]);
        return out;
      });
}

OpLowering lowerCopy(LoweringContext &ctx, int64_t n, Type elem) {
  auto t = RankedTensorType::get({n}, elem);
  std::string key = "copy " + std::to_string(n) + (elem.isF32() ? " f32" : " i32");
  return elementwise(ctx, "copy", key, {t}, t, ctx.elementwiseWorkgroup,
                     [](KernelBuilder &, ArrayRef<Value> v) { return v[0]; });
}

} // namespace tessera::lowering
