// ActQuant.cpp - per-row absmax int8 fake quantisation (tessera.act_quant):
//   a = (1 / max(max_j |x_j|, eps)) * 127,  y_j = clamp(roundeven(x_j a), -128, 127) / a
// in f32, the operations in the order transformers' export performs them, so
// every rounding is the same as torch's on the same row maximum (both
// divisions correctly rounded on every device: KernelBuilder::fdivRounded).
//
// Strategies (the op's #tessera.reduction_config, chosen like softmax's):
// serial, one thread per row; workgroup, one workgroup per row with a
// shared-memory tree reduction for the maximum.
#include "compiler/lowering/kernels/ActQuantRow.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

FailureOr<OpLowering> lowerActQuant(LoweringContext &ctx, ActQuantOp op) {
  auto type = cast<ShapedType>(op.getInput().getType());
  OpLowering lowering;
  int64_t n = numElements(type.getShape());
  if (n == 0)
    return lowering;
  const RowKernel rk = rowKernel(ctx, type, kernelConfig<ReductionConfigAttr>(op));
  const int64_t len = rk.len, rows = rk.rows, wg = rk.wg, groups = rk.groups;
  const bool serial = rk.serial;
  double eps = op.getEps().convertToDouble();
  std::string key = opKey(op) + rk.strategy();
  MemRefType mem = flatMemRefType(type), outMem = flatMemRefType(cast<ShapedType>(op.getType()));

  KernelHandle k = ctx.getOrCreate("act_quant", key, {mem, outMem}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    Value in = kb.arg(0), out = kb.arg(1);
    Value zero = kb.idx(0), one = kb.idx(1), lenV = kb.idx(len);
    // The scale from the row's max |x|, then every element of the row.
    auto quantiseRow = [&](Value base, Value m, Value from, Value step) {
      Value a = actQuantScale(kb, m, eps);
      kb.forLoop(from, lenV, step, [&](Value j) {
        Value at = kb.add(base, j);
        kb.store(kb.fdivRounded(actQuantCode(kb, kb.load(in, at), a), a), out, at);
      });
    };
    if (serial) {
      kb.gridStrideLoop(rows, wg, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        quantiseRow(base, rowAbsMax(kb, in, base, zero, lenV, one), zero, one);
      });
    } else {
      Value shared = kb.sharedArray(wg, kb.b.getF32Type());
      Value tid = kb.threadId();
      Value step = kb.idx(wg);
      workgroupLoop(kb, rows, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        Value pm = rowAbsMax(kb, in, base, tid, lenV, step);
        Value m = kb.workgroupReduce(pm, shared, tid, wg,
                                     [&](Value a, Value c) { return kb.fmax(a, c); });
        quantiseRow(base, m, tid, step);
      });
    }
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  lowering.steps.push_back({k, {0, 1}});
  return lowering;
}

} // namespace tessera::lowering
