// KernelBuilder.cpp - helpers shared by the kernel generators.
#include "compiler/lowering/kernels/KernelBuilder.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;

namespace tessera::lowering {

Type storageElementType(Type t) {
  if (t.isF32() || t.isF16())
    return t;
  if (t.isBF16())
    return IntegerType::get(t.getContext(), 16);
  return IntegerType::get(t.getContext(), 32);
}

Type computeElementType(Type t) {
  if (isa<FloatType>(t))
    return Float32Type::get(t.getContext());
  return IntegerType::get(t.getContext(), 32);
}

int64_t numElements(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

MemRefType flatMemRefType(ShapedType t) {
  int64_t n = std::max<int64_t>(1, numElements(t.getShape()));
  return MemRefType::get({n}, storageElementType(t.getElementType()));
}

SmallVector<int64_t> rowMajorStrides(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> s(shape.size(), 1);
  for (int i = (int)shape.size() - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

SmallVector<DimMap> simplifyIndexMap(ArrayRef<DimMap> dims) {
  SmallVector<DimMap> out;
  for (const DimMap &d : dims) {
    if (d.size == 1)
      continue;
    if (!out.empty()) {
      DimMap &prev = out.back();
      // prev is the outer dim: merge when it continues d in both layouts.
      if (prev.outStride == d.outStride * d.size && prev.inStride == d.inStride * d.size) {
        prev.size *= d.size;
        prev.outStride = d.outStride;
        prev.inStride = d.inStride;
        continue;
      }
    }
    out.push_back(d);
  }
  return out;
}

SmallVector<DimMap> broadcastIndexMap(ArrayRef<int64_t> out, ArrayRef<int64_t> in) {
  SmallVector<int64_t> outStrides = rowMajorStrides(out);
  SmallVector<int64_t> inStrides = rowMajorStrides(in);
  SmallVector<DimMap> dims;
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t inStride = 0;
    if (i >= lead && in[i - lead] != 1)
      inStride = inStrides[i - lead];
    dims.push_back({out[i], outStrides[i], inStride});
  }
  return simplifyIndexMap(dims);
}

int64_t gridGroups(int64_t n, int64_t wg, int64_t maxGroups) {
  return std::max<int64_t>(1, std::min(ceilDiv(n, wg), maxGroups));
}

//===----------------------------------------------------------------------===//

KernelBuilder::KernelBuilder(ModuleOp module, StringRef name, ArrayRef<Type> args,
                             std::array<int64_t, 3> local, Attribute targetEnv)
    : b(module.getLoc(), module.getContext()), localSize(local) {
  MLIRContext *ctx = module.getContext();
  b.setInsertionPointToEnd(module.getBody());
  gpuModule = b.create<gpu::GPUModuleOp>(name);
  if (targetEnv)
    gpuModule->setAttr(spirv::getTargetEnvAttrName(), targetEnv);
  b.setInsertionPointToStart(gpuModule.getBody());
  func = b.create<gpu::GPUFuncOp>(name, FunctionType::get(ctx, args, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  SmallVector<int32_t> wg = {(int32_t)local[0], (int32_t)local[1], (int32_t)local[2]};
  func->setAttr(spirv::getEntryPointABIAttrName(), spirv::getEntryPointABIAttr(ctx, wg));
  b.setInsertionPointToStart(&func.getBody().front());
}

void KernelBuilder::finish() { b.create<gpu::ReturnOp>(); }

Value KernelBuilder::idx(int64_t v) { return b.create<arith::ConstantIndexOp>(v); }
Value KernelBuilder::f32(double v) {
  return b.create<arith::ConstantOp>(b.getF32FloatAttr((float)v));
}
Value KernelBuilder::i32(int64_t v) { return b.create<arith::ConstantIntOp>(v, 32); }
Value KernelBuilder::i1(bool v) { return b.create<arith::ConstantIntOp>(v, 1); }

Value KernelBuilder::threadId(gpu::Dimension d) { return b.create<gpu::ThreadIdOp>(d); }
Value KernelBuilder::blockId(gpu::Dimension d) { return b.create<gpu::BlockIdOp>(d); }

Value KernelBuilder::add(Value a, Value c) { return b.create<arith::AddIOp>(a, c); }
Value KernelBuilder::sub(Value a, Value c) { return b.create<arith::SubIOp>(a, c); }
Value KernelBuilder::mul(Value a, Value c) { return b.create<arith::MulIOp>(a, c); }
Value KernelBuilder::udiv(Value a, Value c) { return b.create<arith::DivUIOp>(a, c); }
Value KernelBuilder::urem(Value a, Value c) { return b.create<arith::RemUIOp>(a, c); }
Value KernelBuilder::ult(Value a, Value c) {
  return b.create<arith::CmpIOp>(arith::CmpIPredicate::ult, a, c);
}
Value KernelBuilder::andi(Value a, Value c) { return b.create<arith::AndIOp>(a, c); }

Value KernelBuilder::fadd(Value a, Value c) { return b.create<arith::AddFOp>(a, c); }
Value KernelBuilder::fsub(Value a, Value c) { return b.create<arith::SubFOp>(a, c); }
Value KernelBuilder::fmul(Value a, Value c) { return b.create<arith::MulFOp>(a, c); }
Value KernelBuilder::fdiv(Value a, Value c) { return b.create<arith::DivFOp>(a, c); }
Value KernelBuilder::fdivRounded(Value a, Value c) {
  Type t32 = b.getI32Type();
  auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) { return b.create<arith::CmpIOp>(p, x, y).getResult(); };
  auto andI = [&](Value x, int64_t m) { return b.create<arith::AndIOp>(x, i32(m)).getResult(); };
  Value ia = b.create<arith::BitcastOp>(t32, a), ic = b.create<arith::BitcastOp>(t32, c);
  Value sign = andI(b.create<arith::XOrIOp>(ia, ic), INT32_MIN); // the sign bit
  Value ea = andI(b.create<arith::ShRUIOp>(ia, i32(23)), 0xff), ec = andI(b.create<arith::ShRUIOp>(ic, i32(23)), 0xff);
  Value ma = b.create<arith::OrIOp>(andI(ia, 0x7fffff), i32(0x800000));
  Value mc = b.create<arith::OrIOp>(andI(ic, 0x7fffff), i32(0x800000));
  // mc <= r < 2 mc, so the quotient's leading bit is the first one computed.
  Value lt = cmp(arith::CmpIPredicate::ult, ma, mc);
  Value r = select(lt, b.create<arith::ShLIOp>(ma, i32(1)), ma);
  Value e = b.create<arith::SubIOp>(b.create<arith::AddIOp>(b.create<arith::SubIOp>(ea, ec), i32(127)),
                                    b.create<arith::ExtUIOp>(t32, lt));
  Value q = i32(0);
  Value zero = i32(0);
  for (int bit = 0; bit < 24; ++bit) { // q = floor(r0 * 2^23 / mc), r = 2 * remainder
    Value ge = cmp(arith::CmpIPredicate::uge, r, mc);
    r = b.create<arith::SubIOp>(r, select(ge, mc, zero));
    q = b.create<arith::OrIOp>(b.create<arith::ShLIOp>(q, i32(1)), b.create<arith::ExtUIOp>(t32, ge));
    r = b.create<arith::ShLIOp>(r, i32(1));
  }
  // Round half to even: guard = the next bit, sticky = anything after it.
  Value guard = cmp(arith::CmpIPredicate::uge, r, mc);
  Value rest = b.create<arith::SubIOp>(r, select(guard, mc, zero));
  Value odd = cmp(arith::CmpIPredicate::ne, andI(q, 1), zero);
  Value up = b.create<arith::AndIOp>(guard, b.create<arith::OrIOp>(cmp(arith::CmpIPredicate::ne, rest, zero), odd));
  q = b.create<arith::AddIOp>(q, b.create<arith::ExtUIOp>(t32, up));
  // A carry out of the significand (q = 2^24) moves into the exponent.
  Value bits = b.create<arith::OrIOp>(
      sign, b.create<arith::AddIOp>(b.create<arith::ShLIOp>(e, i32(23)), b.create<arith::SubIOp>(q, i32(0x800000))));
  auto normal = [&](Value x) { // 1 <= x <= 254 (signed: e may be negative)
    return b.create<arith::AndIOp>(cmp(arith::CmpIPredicate::sge, x, i32(1)), cmp(arith::CmpIPredicate::sle, x, i32(254)))
        .getResult();
  };
  Value ok = b.create<arith::AndIOp>(b.create<arith::AndIOp>(normal(ea), normal(ec)), normal(e));
  return select(ok, b.create<arith::BitcastOp>(b.getF32Type(), bits), fdiv(a, c));
}
Value KernelBuilder::fma(Value a, Value c, Value d) { return b.create<math::FmaOp>(a, c, d); }
Value KernelBuilder::fmax(Value a, Value c) { return b.create<arith::MaximumFOp>(a, c); }
Value KernelBuilder::select(Value cond, Value a, Value c) {
  return b.create<arith::SelectOp>(cond, a, c);
}

Value KernelBuilder::bf16ToF32(Value bits) {
  Value wide = b.create<arith::ExtUIOp>(b.getI32Type(), bits);
  return b.create<arith::BitcastOp>(b.getF32Type(), b.create<arith::ShLIOp>(wide, i32(16)));
}

Value KernelBuilder::f32ToBf16(Value x) {
  Value bits = b.create<arith::BitcastOp>(b.getI32Type(), x);
  Value lsb = b.create<arith::AndIOp>(b.create<arith::ShRUIOp>(bits, i32(16)), i32(1));
  Value rounded = b.create<arith::AddIOp>(bits, b.create<arith::AddIOp>(lsb, i32(0x7FFF)));
  Value magnitude = b.create<arith::AndIOp>(bits, i32(0x7FFFFFFF));
  Value isNan = b.create<arith::CmpIOp>(arith::CmpIPredicate::ugt, magnitude, i32(0x7F800000));
  Value quiet = b.create<arith::OrIOp>(b.create<arith::ShRUIOp>(bits, i32(16)), i32(0x40));
  Value top = select(isNan, quiet, b.create<arith::ShRUIOp>(rounded, i32(16)));
  return b.create<arith::TruncIOp>(b.getIntegerType(16), top);
}

Value KernelBuilder::load(Value mem, Value i) {
  Value v = b.create<memref::LoadOp>(mem, ValueRange{i});
  Type t = v.getType();
  if (t.isF16())
    return b.create<arith::ExtFOp>(b.getF32Type(), v);
  if (t.isInteger(16))
    return bf16ToF32(v);
  return v;
}

void KernelBuilder::store(Value v, Value mem, Value i) {
  Type t = cast<MemRefType>(mem.getType()).getElementType();
  if (t.isF16() && v.getType().isF32()) {
    Value lim = f32(65504.0);
    v = b.create<arith::MinimumFOp>(b.create<arith::MaximumFOp>(v, b.create<arith::NegFOp>(lim)), lim);
    v = b.create<arith::TruncFOp>(b.getF16Type(), v);
  } else if (t.isInteger(16) && v.getType().isF32()) {
    v = f32ToBf16(v);
  }
  b.create<memref::StoreOp>(v, mem, ValueRange{i});
}

Value KernelBuilder::sharedArray(int64_t n, Type elem) {
  auto space = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto type = MemRefType::get({n}, elem, MemRefLayoutAttrInterface{}, space);
  // Allocations go first in the function so that they dominate every use.
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&func.getBody().front());
  return b.create<memref::AllocOp>(type);
}

void KernelBuilder::barrier() { b.create<gpu::BarrierOp>(); }

void KernelBuilder::forLoop(Value lb, Value ub, Value step, const std::function<void(Value)> &body) {
  b.create<scf::ForOp>(lb, ub, step, ValueRange{},
                       [&](OpBuilder &, Location, Value iv, ValueRange) {
                         body(iv);
                         b.create<scf::YieldOp>();
                       });
}

SmallVector<Value>
KernelBuilder::forLoopIter(Value lb, Value ub, Value step, ValueRange init,
                           const std::function<SmallVector<Value>(Value, ValueRange)> &body) {
  std::optional<int64_t> l = getConstantIntValue(lb), u = getConstantIntValue(ub);
  if (l && u && *u > *l) {
    // At least one iteration: a plain scf.for.
    auto loop = b.create<scf::ForOp>(lb, ub, step, init,
                                     [&](OpBuilder &, Location, Value iv, ValueRange acc) {
                                       SmallVector<Value> next = body(iv, acc);
                                       b.create<scf::YieldOp>(next);
                                     });
    return SmallVector<Value>(loop.getResults());
  }
  // Possibly zero iterations (e.g. i = threadId; i < n; i += workgroup): the
  // upstream SCF-to-SPIR-V lowering of scf.for keeps results in a function
  // variable written only inside the body, which is undefined after a loop
  // that never ran (garbage on NVIDIA). scf.while carries them through its
  // header, which always runs.
  SmallVector<Type> types = {b.getIndexType()};
  SmallVector<Value> operands = {lb};
  for (Value v : init) {
    types.push_back(v.getType());
    operands.push_back(v);
  }
  SmallVector<Location> locs(types.size(), b.getLoc());
  auto loop = b.create<scf::WhileOp>(types, operands);
  {
    OpBuilder::InsertionGuard guard(b);
    Block *before = b.createBlock(&loop.getBefore(), {}, types, locs);
    b.setInsertionPointToStart(before);
    Value cond = ult(before->getArgument(0), ub);
    b.create<scf::ConditionOp>(cond, before->getArguments());
    Block *after = b.createBlock(&loop.getAfter(), {}, types, locs);
    b.setInsertionPointToStart(after);
    SmallVector<Value> next = {add(after->getArgument(0), step)};
    for (Value v : body(after->getArgument(0), after->getArguments().drop_front()))
      next.push_back(v);
    b.create<scf::YieldOp>(next);
  }
  return SmallVector<Value>(loop.getResults().drop_front());
}

void KernelBuilder::ifThen(Value cond, const std::function<void()> &then) {
  auto op = b.create<scf::IfOp>(TypeRange{}, cond, /*addThenBlock=*/true, /*addElseBlock=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&op.getThenRegion().front());
  then();
  b.create<scf::YieldOp>();
}

Value KernelBuilder::ifElse(Value cond, Type type, const std::function<Value()> &then,
                            const std::function<Value()> &otherwise) {
  auto op = b.create<scf::IfOp>(TypeRange{type}, cond, true, true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&op.getThenRegion().front());
    b.create<scf::YieldOp>(ValueRange{then()});
    b.setInsertionPointToStart(&op.getElseRegion().front());
    b.create<scf::YieldOp>(ValueRange{otherwise()});
  }
  return op.getResult(0);
}

SmallVector<Value> KernelBuilder::ifElseValues(Value cond, TypeRange types,
                                               const std::function<SmallVector<Value>()> &then,
                                               const std::function<SmallVector<Value>()> &otherwise) {
  auto op = b.create<scf::IfOp>(types, cond, true, true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&op.getThenRegion().front());
    b.create<scf::YieldOp>(then());
    b.setInsertionPointToStart(&op.getElseRegion().front());
    b.create<scf::YieldOp>(otherwise());
  }
  return SmallVector<Value>(op.getResults());
}

Value KernelBuilder::applyIndexMap(Value i, ArrayRef<DimMap> dims, int64_t outNumel) {
  Value off;
  for (const DimMap &d : dims) {
    if (d.inStride == 0)
      continue;
    Value c = i;
    if (d.outStride != 1)
      c = udiv(c, idx(d.outStride));
    // The outermost extent needs no remainder: i < outNumel.
    if (d.outStride * d.size < outNumel)
      c = urem(c, idx(d.size));
    c = muli(c, d.inStride);
    off = off ? add(off, c) : c;
  }
  return off ? off : idx(0);
}

void KernelBuilder::gridStrideLoop(int64_t n, int64_t wg, int64_t groups,
                                   const std::function<void(Value)> &body) {
  Value gid = add(muli(blockId(), wg), threadId());
  if (groups * wg >= n) {
    // One item per thread at most: a guard instead of a loop.
    ifThen(ulti(gid, n), [&] { body(gid); });
    return;
  }
  forLoop(gid, idx(n), idx(groups * wg), body);
}

Value KernelBuilder::workgroupReduce(Value partial, Value shared, Value tid, int64_t wg,
                                     const std::function<Value(Value, Value)> &combine) {
  store(partial, shared, tid);
  barrier();
  for (int64_t s = wg / 2; s >= 1; s /= 2) {
    ifThen(ulti(tid, s), [&] {
      Value a = load(shared, tid);
      Value c = load(shared, addi(tid, s));
      store(combine(a, c), shared, tid);
    });
    barrier();
  }
  Value r = load(shared, idx(0));
  barrier(); // `shared` may be reused right after
  return r;
}

} // namespace tessera::lowering
