// DataMovement.cpp - index-mapping copies: transpose, broadcast, slice, pad,
// concat, gather.
//
// One thread per output element; each computes the source offset from its
// flat output index with static strides (adjacent dims that stay contiguous
// are merged first, so e.g. a transpose of the two last dims of [B,H,T,D]
// costs two divisions, not four).
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

ShapedType shapedOf(Value v) { return cast<ShapedType>(v.getType()); }

using CopyFn = std::function<Value(KernelBuilder &, Value /*flat output index*/)>;

// out[i] = fn(i) over all output elements; fn loads from the input args.
OpLowering copyKernel(LoweringContext &ctx, Operation *op, StringRef family, const std::string &key,
                      ArrayRef<ShapedType> ins, ShapedType out, const CopyFn &fn) {
  OpLowering lowering;
  int64_t n = numElements(out.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  SmallVector<Type> args;
  for (ShapedType t : ins)
    args.push_back(flatMemRefType(t));
  args.push_back(flatMemRefType(out));
  unsigned outArg = ins.size();
  KernelHandle k = ctx.getOrCreate(family, key, args, {wg, 1, 1}, [&](KernelBuilder &kb) {
    kb.gridStrideLoop(n, wg, groups, [&](Value i) { kb.store(fn(kb, i), kb.arg(outArg), i); });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  DispatchStep step{k, {}};
  for (unsigned s = 0; s <= ins.size(); ++s)
    step.slots.push_back(s);
  lowering.steps.push_back(step);
  return lowering;
}

} // namespace

FailureOr<OpLowering> lowerTranspose(LoweringContext &ctx, TransposeOp op) {
  ShapedType in = shapedOf(op.getInput()), out = shapedOf(op.getResult());
  SmallVector<int64_t> inStrides = rowMajorStrides(in.getShape());
  SmallVector<int64_t> outStrides = rowMajorStrides(out.getShape());
  SmallVector<DimMap> dims;
  for (size_t d = 0; d < out.getRank(); ++d)
    dims.push_back({out.getShape()[d], outStrides[d], inStrides[op.getPerm()[d]]});
  dims = simplifyIndexMap(dims);
  int64_t n = numElements(out.getShape());
  return copyKernel(ctx, op, "transpose", opKey(op), {in}, out, [=](KernelBuilder &kb, Value i) {
    return kb.load(kb.arg(0), kb.applyIndexMap(i, dims, n));
  });
}

FailureOr<OpLowering> lowerBroadcast(LoweringContext &ctx, BroadcastOp op) {
  ShapedType in = shapedOf(op.getInput()), out = shapedOf(op.getResult());
  SmallVector<DimMap> dims = broadcastIndexMap(out.getShape(), in.getShape());
  int64_t n = numElements(out.getShape());
  return copyKernel(ctx, op, "broadcast", opKey(op), {in}, out, [=](KernelBuilder &kb, Value i) {
    return kb.load(kb.arg(0), kb.applyIndexMap(i, dims, n));
  });
}

FailureOr<OpLowering> lowerSlice(LoweringContext &ctx, SliceOp op) {
  ShapedType in = shapedOf(op.getInput()), out = shapedOf(op.getResult());
  SmallVector<int64_t> inStrides = rowMajorStrides(in.getShape());
  SmallVector<int64_t> outStrides = rowMajorStrides(out.getShape());
  SmallVector<DimMap> dims;
  int64_t base = 0;
  for (size_t d = 0; d < out.getRank(); ++d) {
    base += op.getStarts()[d] * inStrides[d];
    dims.push_back({out.getShape()[d], outStrides[d], op.getStrides()[d] * inStrides[d]});
  }
  dims = simplifyIndexMap(dims);
  int64_t n = numElements(out.getShape());
  return copyKernel(ctx, op, "slice", opKey(op), {in}, out, [=](KernelBuilder &kb, Value i) {
    return kb.load(kb.arg(0), kb.addi(kb.applyIndexMap(i, dims, n), base));
  });
}

FailureOr<OpLowering> lowerPad(LoweringContext &ctx, PadOp op) {
  ShapedType in = shapedOf(op.getInput()), out = shapedOf(op.getResult());
  SmallVector<int64_t> inShape(in.getShape()), outShape(out.getShape());
  SmallVector<int64_t> low(op.getLow()), interior(op.getInterior());
  int64_t n = numElements(outShape);
  if (numElements(inShape) == 0) {
    // All zeros: a pad of an empty tensor (a broadcast of the constant 0).
    return copyKernel(ctx, op, "pad", opKey(op), {in}, out,
                      [](KernelBuilder &kb, Value) { return kb.f32(0.0); });
  }
  return copyKernel(ctx, op, "pad", opKey(op), {in}, out, [=](KernelBuilder &kb, Value i) {
    SmallVector<int64_t> inStrides = rowMajorStrides(inShape);
    SmallVector<int64_t> outStrides = rowMajorStrides(outShape);
    Value valid = kb.i1(true);
    Value off = kb.idx(0);
    for (size_t d = 0; d < outShape.size(); ++d) {
      if (inShape[d] == 1 && outShape[d] == 1)
        continue;
      Value c = i;
      if (outStrides[d] != 1)
        c = kb.udiv(c, kb.idx(outStrides[d]));
      if (d > 0)
        c = kb.urem(c, kb.idx(outShape[d]));
      Value p = c;
      if (low[d] > 0) {
        // c >= low, then p = c - low (only used when valid).
        valid = kb.andi(valid, kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, c,
                                                          kb.idx(low[d])));
        p = kb.sub(c, kb.idx(low[d]));
      }
      Value q = p;
      if (interior[d] > 0) {
        Value step = kb.idx(interior[d] + 1);
        valid = kb.andi(valid, kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::eq,
                                                          kb.urem(p, step), kb.idx(0)));
        q = kb.udiv(p, step);
      }
      if (outShape[d] != inShape[d])
        valid = kb.andi(valid, kb.ulti(q, inShape[d]));
      off = kb.add(off, kb.muli(q, inStrides[d]));
    }
    return kb.ifElse(valid, kb.b.getF32Type(), [&] { return kb.load(kb.arg(0), off); },
                     [&] { return kb.f32(0.0); });
  });
}

FailureOr<OpLowering> lowerConcat(LoweringContext &ctx, ConcatOp op) {
  ShapedType out = shapedOf(op.getResult());
  int64_t axis = op.getAxis();
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < out.getRank(); ++d)
    inner *= out.getShape()[d];
  int64_t total = out.getShape()[axis];
  SmallVector<ShapedType> ins;
  SmallVector<int64_t> sizes;
  for (Value v : op.getInputs()) {
    ins.push_back(shapedOf(v));
    sizes.push_back(shapedOf(v).getShape()[axis]);
  }
  Type elem = computeElementType(out.getElementType());
  return copyKernel(ctx, op, "concat", opKey(op), ins, out, [=](KernelBuilder &kb, Value i) {
    Value outer = kb.udiv(i, kb.idx(total * inner));
    Value rem = kb.urem(i, kb.idx(total * inner));
    Value ca = inner == 1 ? rem : kb.udiv(rem, kb.idx(inner));
    Value inn = inner == 1 ? kb.idx(0) : kb.urem(rem, kb.idx(inner));
    // Input k covers [offset_k, offset_k + size_k) of the axis; nested ifs
    // from the first input on.
    std::function<Value(size_t, int64_t)> pick = [&](size_t k, int64_t offset) -> Value {
      auto loadFrom = [&]() {
        Value local = kb.sub(ca, kb.idx(offset));
        Value src = kb.add(kb.add(kb.muli(outer, sizes[k] * inner), kb.muli(local, inner)), inn);
        return kb.load(kb.arg(k), src);
      };
      size_t next = k + 1;
      while (next < sizes.size() && sizes[next] == 0)
        ++next;
      if (next >= sizes.size())
        return loadFrom();
      return kb.ifElse(kb.ulti(ca, offset + sizes[k]), elem, loadFrom,
                       [&] { return pick(next, offset + sizes[k]); });
    };
    size_t first = 0;
    while (first < sizes.size() && sizes[first] == 0)
      ++first;
    return pick(first, 0);
  });
}

FailureOr<OpLowering> lowerGather(LoweringContext &ctx, GatherOp op) {
  ShapedType in = shapedOf(op.getInput()), idx = shapedOf(op.getIndices()),
             out = shapedOf(op.getResult());
  int64_t axis = op.getAxis();
  int64_t dim = in.getShape()[axis];
  int64_t post = 1;
  for (int64_t d = axis + 1; d < in.getRank(); ++d)
    post *= in.getShape()[d];
  int64_t nIdx = numElements(idx.getShape());
  // A tile of a split table (tessera-split-large-tensors): indices address
  // the whole table of `table` rows, of which this input holds rows
  // offset..offset+dim-1; the others gather zeros.
  int64_t offset = 0, table = dim;
  bool tiled = false;
  if (std::optional<ArrayRef<int64_t>> tile = op.getTile())
    offset = (*tile)[0], table = (*tile)[1], tiled = true;
  return copyKernel(ctx, op, "gather", opKey(op), {in, idx}, out, [=](KernelBuilder &kb, Value i) {
    ImplicitLocOpBuilder &b = kb.b;
    Value outer = kb.udiv(i, kb.idx(nIdx * post));
    Value j = kb.udiv(i, kb.idx(post));
    if (nIdx > 1)
      j = kb.urem(j, kb.idx(nIdx));
    else
      j = kb.idx(0);
    Value inner = post == 1 ? kb.idx(0) : kb.urem(i, kb.idx(post));
    // ONNX: negative indices count from the end; out-of-range ones are
    // clamped so that a bad token id can never read outside the buffer.
    Value t = kb.load(kb.arg(1), j);
    Value isNeg = b.create<arith::CmpIOp>(arith::CmpIPredicate::slt, t, kb.i32(0));
    t = kb.select(isNeg, b.create<arith::AddIOp>(t, kb.i32(table)), t);
    t = b.create<arith::MaxSIOp>(t, kb.i32(0));
    t = b.create<arith::MinSIOp>(t, kb.i32(table - 1));
    Value inTile;
    if (tiled) {
      t = b.create<arith::SubIOp>(t, kb.i32(offset));
      inTile = b.create<arith::AndIOp>(b.create<arith::CmpIOp>(arith::CmpIPredicate::sge, t, kb.i32(0)),
                                       b.create<arith::CmpIOp>(arith::CmpIPredicate::slt, t, kb.i32(dim)));
      t = b.create<arith::MinSIOp>(b.create<arith::MaxSIOp>(t, kb.i32(0)), kb.i32(dim - 1));
    }
    Value ti = b.create<arith::IndexCastOp>(b.getIndexType(), t);
    Value src = kb.add(kb.add(kb.muli(outer, dim * post), kb.muli(ti, post)), inner);
    Value v = kb.load(kb.arg(0), src);
    return tiled ? kb.select(inTile, v, kb.f32(0.0)) : v;
  });
}

} // namespace tessera::lowering
