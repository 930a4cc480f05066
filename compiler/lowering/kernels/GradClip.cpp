// GradClip.cpp - gradient accumulation and global-norm clipping, the kernels
// between the backward and AdamW (docs/training.md).
//
//   grad_accumulate  accum += grad * hparams[kGradScale]        (per parameter)
//   grad_sumsq       norm[0] += sum(accum^2)                    (per parameter,
//                    one workgroup, tree-ordered: deterministic; the
//                    dispatches are barrier-separated, so the running sum
//                    needs no atomics)
//   clip_coef        norm[1] = sqrt(norm[0]); norm[2] = coefficient; norm[0] = 0
// with coefficient = min(1, max_norm / (norm + 1e-6)) as
// torch.nn.utils.clip_grad_norm_, or 1 when hparams[kMaxGradNorm] <= 0.
#include "compiler/lowering/kernels/Kernels.h"
#include "runtime/plan/Abi.h"

using namespace mlir;

namespace tessera::lowering {

namespace {
using plan::kGradScale;
using plan::kMaxGradNorm;
constexpr int64_t kSumSquares = plan::kGradSumSquares, kTotalNorm = plan::kGradTotalNorm,
                  kClipCoef = plan::kGradClipCoef;
} // namespace

OpLowering lowerGradAccumulate(LoweringContext &ctx, mlir::tessera::AdamWUpdateOp update) {
  auto grad = cast<ShapedType>(update.getGrad().getType());
  auto hparams = cast<ShapedType>(update.getHparams().getType());
  OpLowering lowering;
  int64_t n = numElements(grad.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = kernelConfig<mlir::tessera::ElementwiseConfigAttr>(update).getWorkgroupSize();
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  MemRefType mem = flatMemRefType(grad), hp = flatMemRefType(hparams);
  std::string key = "grad_accumulate " + std::to_string(n) + " hparams " + std::to_string(hp.getNumElements()) +
                    " wg " + std::to_string(wg);
  KernelHandle k = ctx.getOrCreate("grad_accumulate", key, {mem, mem, hp}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    Value accum = kb.arg(0), g = kb.arg(1), h = kb.arg(2);
    Value scale = kb.load(h, kb.idx(kGradScale));
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      kb.store(kb.fadd(kb.load(accum, i), kb.fmul(kb.load(g, i), scale)), accum, i);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  // Slots: 0 grad, 1 hparams, 2 accum.
  lowering.steps.push_back({k, {2, 0, 1}});
  return lowering;
}

OpLowering lowerGradSumSquares(LoweringContext &ctx, ShapedType grad) {
  OpLowering lowering;
  int64_t n = numElements(grad.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = ctx.reduceWorkgroup;
  MemRefType mem = flatMemRefType(grad);
  auto norm = MemRefType::get({3}, Float32Type::get(ctx.module.getContext()));
  std::string key = "grad_sumsq " + std::to_string(n);
  KernelHandle k = ctx.getOrCreate("grad_sumsq", key, {mem, norm}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    Value accum = kb.arg(0), out = kb.arg(1);
    Value shared = kb.sharedArray(wg, kb.b.getF32Type());
    Value tid = kb.threadId();
    SmallVector<Value> part = kb.forLoopIter(tid, kb.idx(n), kb.idx(wg), ValueRange{kb.f32(0.0)},
                                             [&](Value i, ValueRange a) -> SmallVector<Value> {
                                               Value x = kb.load(accum, i);
                                               return {kb.fma(x, x, a[0])};
                                             });
    Value total = kb.workgroupReduce(part[0], shared, tid, wg, [&](Value a, Value c) { return kb.fadd(a, c); });
    kb.ifThen(kb.ulti(tid, 1), [&] {
      Value i = kb.idx(kSumSquares);
      kb.store(kb.fadd(kb.load(out, i), total), out, i);
    });
    return std::array<int64_t, 3>{1, 1, 1};
  });
  // Slots: 0 accum, 1 grad_norm.
  lowering.steps.push_back({k, {0, 1}});
  return lowering;
}

OpLowering lowerClipCoefficient(LoweringContext &ctx, ShapedType hparams) {
  OpLowering lowering;
  MemRefType hp = flatMemRefType(hparams);
  auto norm = MemRefType::get({3}, Float32Type::get(ctx.module.getContext()));
  std::string key = "clip_coef hparams " + std::to_string(hp.getNumElements());
  KernelHandle k = ctx.getOrCreate("clip_coef", key, {norm, hp}, {1, 1, 1}, [&](KernelBuilder &kb) {
    Value out = kb.arg(0), h = kb.arg(1);
    Value total = kb.b.create<math::SqrtOp>(kb.load(out, kb.idx(kSumSquares)));
    Value maxNorm = kb.load(h, kb.idx(kMaxGradNorm));
    Value one = kb.f32(1.0);
    Value coef = kb.fdiv(maxNorm, kb.fadd(total, kb.f32(1e-6)));
    // min(1, coef) written as a select so that a NaN norm gives a NaN
    // coefficient (the runtime reports it) rather than silently 1.
    coef = kb.select(kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, coef, one), one, coef);
    Value clip = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, maxNorm, kb.f32(0.0));
    kb.store(total, out, kb.idx(kTotalNorm));
    kb.store(kb.select(clip, coef, one), out, kb.idx(kClipCoef));
    kb.store(kb.f32(0.0), out, kb.idx(kSumSquares));
    return std::array<int64_t, 3>{1, 1, 1};
  });
  // Slots: 0 grad_norm, 1 hparams.
  lowering.steps.push_back({k, {0, 1}});
  return lowering;
}

} // namespace tessera::lowering
