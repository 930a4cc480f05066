// Reduction.cpp - sum / mean / max over any set of axes.
//
// The input offset of (output o, reduced element r) is base(o) + off(r), both
// static index maps. Two strategies (the op's #tessera.reduction_config):
//  * serial: one thread per output loops over the reduced elements. Used
//    when the reduced extent is small (<= serial_max), or when there are many
//    outputs and the innermost dim is kept (then neighbouring threads read
//    neighbouring addresses).
//  * workgroup: one workgroup per output, threads stride over the reduced
//    elements, then a shared-memory tree reduction.
//  * subgroup: one subgroup per output, its lanes stride over the reduced
//    elements (coalesced when the innermost dim is reduced), then a subgroup
//    reduction: many short rows (a per-head RMSNorm's 128) without a
//    workgroup's barriers. The subgroups and their size are read at run time,
//    so any device subgroup size is exact; the profile's only sets how many
//    outputs a workgroup takes.
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

ReduceProblem reduceProblem(ReduceOp op) {
  ArrayRef<int64_t> shape = cast<ShapedType>(op.getInput().getType()).getShape();
  SmallVector<bool> reduced(shape.size(), false);
  for (int64_t a : op.getAxes())
    reduced[a] = true;
  ReduceProblem p;
  for (size_t d = 0; d < shape.size(); ++d)
    (reduced[d] ? p.extent : p.outputs) *= shape[d];
  for (int d = (int)shape.size() - 1; d >= 0; --d)
    if (shape[d] != 1) {
      p.innermostReduced = reduced[d];
      break;
    }
  return p;
}

FailureOr<OpLowering> lowerReduce(LoweringContext &ctx, ReduceOp op) {
  auto in = cast<ShapedType>(op.getInput().getType());
  auto out = cast<ShapedType>(op.getResult().getType());
  ArrayRef<int64_t> shape = in.getShape();
  SmallVector<int64_t> inStrides = rowMajorStrides(shape);
  SmallVector<bool> reduced(shape.size(), false);
  for (int64_t a : op.getAxes())
    reduced[a] = true;

  int64_t outputs = 1, extent = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    (reduced[d] ? extent : outputs) *= shape[d];
  // Kept / reduced dims with their row-major strides in the output / in the
  // reduced index space.
  SmallVector<DimMap> keptMap, redMap;
  {
    int64_t ks = outputs, rs = extent;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (reduced[d]) {
        rs /= shape[d];
        redMap.push_back({shape[d], rs, inStrides[d]});
      } else {
        ks /= shape[d];
        keptMap.push_back({shape[d], ks, inStrides[d]});
      }
    }
    keptMap = simplifyIndexMap(keptMap);
    redMap = simplifyIndexMap(redMap);
  }
  OpLowering lowering;
  if (outputs == 0)
    return lowering;
  ReduceFn fn = op.getFn();
  auto config = kernelConfig<ReductionConfigAttr>(op);
  const ReductionStrategy strategy = config.getStrategy();
  bool serial = strategy == ReductionStrategy::serial;
  int64_t wg = config.getWorkgroupSize();
  // subgroup: outputs per workgroup, at the profile's subgroup size
  const int64_t rowsPerGroup = std::max<int64_t>(1, wg / std::max<int64_t>(1, ctx.subgroupSize));
  int64_t groups = serial ? gridGroups(outputs, wg, ctx.maxWorkgroupCount)
                   : strategy == ReductionStrategy::subgroup
                       ? std::min(ceilDiv(outputs, rowsPerGroup), ctx.maxWorkgroupCount)
                       : std::min(outputs, ctx.maxWorkgroupCount);
  std::string key = opKey(op) + " " + stringifyReductionStrategy(strategy).str();

  auto init = [&](KernelBuilder &kb) {
    return kb.f32(fn == ReduceFn::max ? -std::numeric_limits<double>::infinity() : 0.0);
  };
  auto combine = [fn](KernelBuilder &kb, Value a, Value c) {
    return fn == ReduceFn::max ? kb.fmax(a, c) : kb.fadd(a, c);
  };
  auto finalize = [fn, extent](KernelBuilder &kb, Value v) {
    return fn == ReduceFn::mean ? kb.fdiv(v, kb.f32((double)extent)) : v;
  };

  SmallVector<Type> args = {flatMemRefType(in), flatMemRefType(out)};
  KernelHandle k = ctx.getOrCreate(
      "reduce_" + stringifyReduceFn(fn).str(), key, args, {wg, 1, 1}, [&](KernelBuilder &kb) {
        Value input = kb.arg(0), output = kb.arg(1);
        if (serial) {
          kb.gridStrideLoop(outputs, wg, groups, [&](Value o) {
            Value base = kb.applyIndexMap(o, keptMap, outputs);
            SmallVector<Value> acc = kb.forLoopIter(
                kb.idx(0), kb.idx(extent), kb.idx(1), ValueRange{init(kb)},
                [&](Value r, ValueRange a) -> SmallVector<Value> {
                  Value x = kb.load(input, kb.add(base, kb.applyIndexMap(r, redMap, extent)));
                  return {combine(kb, a[0], x)};
                });
            kb.store(finalize(kb, acc[0]), output, o);
          });
        } else if (strategy == ReductionStrategy::subgroup) {
          subgroupRows(
              kb, outputs, extent, rowsPerGroup, groups, [&] { return init(kb); },
              fn == ReduceFn::max ? gpu::AllReduceOperation::MAXIMUMF : gpu::AllReduceOperation::ADD,
              [&](Value o) { return kb.applyIndexMap(o, keptMap, outputs); },
              [&](Value base, Value r, Value acc) {
                return combine(kb, acc, kb.load(input, kb.add(base, kb.applyIndexMap(r, redMap, extent))));
              },
              [&](Value o, Value total) { kb.store(finalize(kb, total), output, o); });
        } else {
          Value shared = kb.sharedArray(wg, kb.b.getF32Type());
          Value tid = kb.threadId();
          workgroupLoop(kb, outputs, groups, [&](Value o) {
            Value base = kb.applyIndexMap(o, keptMap, outputs);
            SmallVector<Value> acc = kb.forLoopIter(
                tid, kb.idx(extent), kb.idx(wg), ValueRange{init(kb)},
                [&](Value r, ValueRange a) -> SmallVector<Value> {
                  Value x = kb.load(input, kb.add(base, kb.applyIndexMap(r, redMap, extent)));
                  return {combine(kb, a[0], x)};
                });
            Value total = kb.workgroupReduce(acc[0], shared, tid, wg, [&](Value a, Value c) {
              return combine(kb, a, c);
            });
            kb.ifThen(kb.ulti(tid, 1), [&] { kb.store(finalize(kb, total), output, o); });
          });
        }
        return std::array<int64_t, 3>{groups, 1, 1};
      });
  lowering.steps.push_back({k, {0, 1}});
  return lowering;
}

} // namespace tessera::lowering
