// Softmax.cpp - numerically stable softmax over the last axis:
// y = exp(x - max) / sum(exp(x - max)).
//
// Strategies (the op's #tessera.reduction_config): serial, one thread per
// row; workgroup, one workgroup per row with shared-memory tree reductions
// for the max and the sum.
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

FailureOr<OpLowering> lowerSoftmax(LoweringContext &ctx, SoftmaxOp op) {
  auto type = cast<ShapedType>(op.getInput().getType());
  OpLowering lowering;
  int64_t n = numElements(type.getShape());
  if (n == 0)
    return lowering;
  const RowKernel rk = rowKernel(ctx, type, kernelConfig<ReductionConfigAttr>(op));
  const int64_t len = rk.len, rows = rk.rows, wg = rk.wg, groups = rk.groups;
  const bool serial = rk.serial;
  std::string key = opKey(op) + rk.strategy();
  MemRefType mem = flatMemRefType(type), outMem = flatMemRefType(cast<ShapedType>(op.getType()));
  double negInf = -std::numeric_limits<double>::infinity();

  KernelHandle k = ctx.getOrCreate("softmax", key, {mem, outMem}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    Value in = kb.arg(0), out = kb.arg(1);
    Value zero = kb.idx(0), one = kb.idx(1), lenV = kb.idx(len);
    if (serial) {
      kb.gridStrideLoop(rows, wg, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        auto at = [&](Value j) { return kb.add(base, j); };
        Value m = kb.forLoopIter(zero, lenV, one, ValueRange{kb.f32(negInf)},
                                 [&](Value j, ValueRange a) -> SmallVector<Value> {
                                   return {kb.fmax(a[0], kb.load(in, at(j)))};
                                 })[0];
        Value s = kb.forLoopIter(zero, lenV, one, ValueRange{kb.f32(0.0)},
                                 [&](Value j, ValueRange a) -> SmallVector<Value> {
                                   Value e = kb.b.create<math::ExpOp>(
                                       kb.fsub(kb.load(in, at(j)), m));
                                   return {kb.fadd(a[0], e)};
                                 })[0];
        kb.forLoop(zero, lenV, one, [&](Value j) {
          Value e = kb.b.create<math::ExpOp>(kb.fsub(kb.load(in, at(j)), m));
          kb.store(kb.fdiv(e, s), out, at(j));
        });
      });
    } else {
      Value shared = kb.sharedArray(wg, kb.b.getF32Type());
      Value tid = kb.threadId();
      Value step = kb.idx(wg);
      workgroupLoop(kb, rows, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        auto at = [&](Value j) { return kb.add(base, j); };
        Value pm = kb.forLoopIter(tid, lenV, step, ValueRange{kb.f32(negInf)},
                                  [&](Value j, ValueRange a) -> SmallVector<Value> {
                                    return {kb.fmax(a[0], kb.load(in, at(j)))};
                                  })[0];
        Value m = kb.workgroupReduce(pm, shared, tid, wg,
                                     [&](Value a, Value c) { return kb.fmax(a, c); });
        Value ps = kb.forLoopIter(tid, lenV, step, ValueRange{kb.f32(0.0)},
                                  [&](Value j, ValueRange a) -> SmallVector<Value> {
                                    Value e = kb.b.create<math::ExpOp>(
                                        kb.fsub(kb.load(in, at(j)), m));
                                    return {kb.fadd(a[0], e)};
                                  })[0];
        Value s = kb.workgroupReduce(ps, shared, tid, wg,
                                     [&](Value a, Value c) { return kb.fadd(a, c); });
        kb.forLoop(tid, lenV, step, [&](Value j) {
          Value e = kb.b.create<math::ExpOp>(kb.fsub(kb.load(in, at(j)), m));
          kb.store(kb.fdiv(e, s), out, at(j));
        });
      });
    }
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  lowering.steps.push_back({k, {0, 1}});
  return lowering;
}

} // namespace tessera::lowering
