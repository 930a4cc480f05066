// AdamW.cpp - one AdamW step of a trainable parameter, in place.
//
// Bindings: 0 param, 1 grad, 2 exp_avg (m), 3 exp_avg_sq (v), 4 hparams
// ([lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t, t]).
// Same arithmetic order as torch.optim.AdamW (decoupled weight decay):
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// which is p -= lr (m_hat / (sqrt(v_hat) + eps) + wd p).
#include "compiler/lowering/kernels/Kernels.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

FailureOr<OpLowering> lowerAdamW(LoweringContext &ctx, AdamWUpdateOp op) {
  auto gradT = cast<ShapedType>(op.getGrad().getType());
  auto hpT = cast<ShapedType>(op.getHparams().getType());
  if (numElements(hpT.getShape()) < 7)
    return op.emitOpError("hparams must hold at least 7 values"), failure();
  OpLowering lowering;
  int64_t n = numElements(gradT.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = ctx.profile.adamw_workgroup;
  int64_t groups = gridGroups(n, wg, ctx.profile.max_workgroup_count);
  MemRefType mem = flatMemRefType(gradT), hp = flatMemRefType(hpT);
  std::string key = "adamw " + std::to_string(n) + " hparams " + std::to_string(hp.getNumElements());
  KernelHandle k = ctx.getOrCreate("adamw", key, {mem, mem, mem, mem, hp}, {wg, 1, 1},
                                   [&](KernelBuilder &kb) {
    Value param = kb.arg(0), grad = kb.arg(1), m = kb.arg(2), v = kb.arg(3), h = kb.arg(4);
    // Uniform scalars, loaded once per thread.
    Value lr = kb.load(h, kb.idx(0)), b1 = kb.load(h, kb.idx(1)), b2 = kb.load(h, kb.idx(2)),
          eps = kb.load(h, kb.idx(3)), wd = kb.load(h, kb.idx(4)), bc1 = kb.load(h, kb.idx(5)),
          bc2 = kb.load(h, kb.idx(6));
    Value one = kb.f32(1.0);
    Value stepSize = kb.fdiv(lr, bc1);
    Value sqrtBc2 = kb.b.create<math::SqrtOp>(bc2);
    Value decay = kb.fsub(one, kb.fmul(lr, wd));
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      Value g = kb.load(grad, i);
      Value mi = kb.fadd(kb.fmul(b1, kb.load(m, i)), kb.fmul(kb.fsub(one, b1), g));
      Value vi = kb.fadd(kb.fmul(b2, kb.load(v, i)), kb.fmul(kb.fmul(kb.fsub(one, b2), g), g));
      kb.store(mi, m, i);
      kb.store(vi, v, i);
      Value denom = kb.fadd(kb.fdiv(kb.b.create<math::SqrtOp>(vi), sqrtBc2), eps);
      Value p = kb.fmul(kb.load(param, i), decay);
      p = kb.fsub(p, kb.fmul(stepSize, kb.fdiv(mi, denom)));
      kb.store(p, param, i);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  // Slots: 0 grad, 1 hparams, 2 param, 3 exp_avg, 4 exp_avg_sq.
  lowering.steps.push_back({k, {2, 0, 3, 4, 1}});
  return lowering;
}

} // namespace tessera::lowering
