// AdamW.cpp - one AdamW step of a trainable parameter, in place.
//
// Bindings: 0 param, 1 grad, 2 exp_avg (m), 3 exp_avg_sq (v), 4 hparams
// ([lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t, t, ...]).
// adamw_accum (plans with an optimizer_step program) reads the accumulated
// gradient instead, multiplies it by the clip coefficient (binding 5,
// grad_norm[2]) and zeroes the accumulator.
// Same arithmetic order as torch.optim.AdamW (decoupled weight decay):
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// which is p -= lr (m_hat / (sqrt(v_hat) + eps) + wd p).
#include "compiler/lowering/kernels/Kernels.h"
#include "runtime/plan/Abi.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

namespace {

// The update of one element; `g` is the gradient to apply.
struct AdamWScalars {
  Value lr, b1, b2, eps, stepSize, sqrtBc2, decay, one;
};

AdamWScalars loadScalars(KernelBuilder &kb, Value h) {
  AdamWScalars s;
  // Uniform scalars, loaded once per thread.
  s.lr = kb.load(h, kb.idx(plan::kLearningRate));
  s.b1 = kb.load(h, kb.idx(plan::kBeta1));
  s.b2 = kb.load(h, kb.idx(plan::kBeta2));
  s.eps = kb.load(h, kb.idx(plan::kEpsilon));
  Value wd = kb.load(h, kb.idx(plan::kWeightDecay)), bc1 = kb.load(h, kb.idx(plan::kBiasCorrection1)),
        bc2 = kb.load(h, kb.idx(plan::kBiasCorrection2));
  s.one = kb.f32(1.0);
  s.stepSize = kb.fdiv(s.lr, bc1);
  s.sqrtBc2 = kb.b.create<math::SqrtOp>(bc2);
  s.decay = kb.fsub(s.one, kb.fmul(s.lr, wd));
  return s;
}

// `keep` (optional, uniform): when true the element is left as it was (a
// step whose gradient norm is not finite is not applied).
void updateElement(KernelBuilder &kb, const AdamWScalars &s, Value param, Value m, Value v, Value i, Value g,
                   Value keep = {}) {
  Value m0 = kb.load(m, i), v0 = kb.load(v, i), p0 = kb.load(param, i);
  Value mi = kb.fadd(kb.fmul(s.b1, m0), kb.fmul(kb.fsub(s.one, s.b1), g));
  Value vi = kb.fadd(kb.fmul(s.b2, v0), kb.fmul(kb.fmul(kb.fsub(s.one, s.b2), g), g));
  Value denom = kb.fadd(kb.fdiv(kb.b.create<math::SqrtOp>(vi), s.sqrtBc2), s.eps);
  Value p = kb.fmul(p0, s.decay);
  p = kb.fsub(p, kb.fmul(s.stepSize, kb.fdiv(mi, denom)));
  if (keep) {
    mi = kb.select(keep, m0, mi);
    vi = kb.select(keep, v0, vi);
    p = kb.select(keep, p0, p);
  }
  kb.store(mi, m, i);
  kb.store(vi, v, i);
  kb.store(p, param, i);
}

} // namespace

FailureOr<OpLowering> lowerAdamW(LoweringContext &ctx, AdamWUpdateOp op) {
  auto gradT = cast<ShapedType>(op.getGrad().getType());
  auto hpT = cast<ShapedType>(op.getHparams().getType());
  if (numElements(hpT.getShape()) < 7)
    return op.emitOpError("hparams must hold at least 7 values"), failure();
  OpLowering lowering;
  int64_t n = numElements(gradT.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  MemRefType mem = flatMemRefType(gradT), hp = flatMemRefType(hpT);
  std::string key = "adamw " + std::to_string(n) + " hparams " + std::to_string(hp.getNumElements()) + " wg " + std::to_string(wg);
  KernelHandle k = ctx.getOrCreate("adamw", key, {mem, mem, mem, mem, hp}, {wg, 1, 1},
                                   [&](KernelBuilder &kb) {
    Value param = kb.arg(0), grad = kb.arg(1), m = kb.arg(2), v = kb.arg(3);
    AdamWScalars s = loadScalars(kb, kb.arg(4));
    kb.gridStrideLoop(n, wg, groups, [&](Value i) { updateElement(kb, s, param, m, v, i, kb.load(grad, i)); });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  // Slots: 0 grad, 1 hparams, 2 param, 3 exp_avg, 4 exp_avg_sq.
  lowering.steps.push_back({k, {2, 0, 3, 4, 1}});
  return lowering;
}

FailureOr<OpLowering> lowerAdamWAccumulated(LoweringContext &ctx, AdamWUpdateOp op) {
  auto gradT = cast<ShapedType>(op.getGrad().getType());
  auto hpT = cast<ShapedType>(op.getHparams().getType());
  if (numElements(hpT.getShape()) < 10)
    return op.emitOpError("hparams must hold 10 values for clipping and accumulation"), failure();
  OpLowering lowering;
  int64_t n = numElements(gradT.getShape());
  if (n == 0)
    return lowering;
  int64_t wg = kernelConfig<ElementwiseConfigAttr>(op).getWorkgroupSize();
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  MemRefType mem = flatMemRefType(gradT), hp = flatMemRefType(hpT);
  auto norm = MemRefType::get({3}, Float32Type::get(ctx.module.getContext()));
  std::string key = "adamw_accum " + std::to_string(n) + " hparams " + std::to_string(hp.getNumElements()) +
                    " wg " + std::to_string(wg); // configs of one size differ (tuned exact entries)
  KernelHandle k = ctx.getOrCreate("adamw_accum", key, {mem, mem, mem, mem, hp, norm}, {wg, 1, 1},
                                   [&](KernelBuilder &kb) {
    Value param = kb.arg(0), accum = kb.arg(1), m = kb.arg(2), v = kb.arg(3);
    AdamWScalars s = loadScalars(kb, kb.arg(4));
    Value coef = kb.load(kb.arg(5), kb.idx(plan::kGradClipCoef));
    // A NaN/inf global norm (plan::kGradTotalNorm): skip the update, so that
    // the runtime can stop with the last good adapter. Tested on the bits
    // (exponent all ones): without SignedZeroInfNanPreserve a driver may fold
    // float NaN tests away.
    Value norm = kb.load(kb.arg(5), kb.idx(plan::kGradTotalNorm));
    Value bits = kb.b.create<arith::BitcastOp>(kb.b.getI32Type(), norm);
    Value exponent = kb.b.create<arith::AndIOp>(bits, kb.i32(0x7f800000));
    Value keep = kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, exponent, kb.i32(0x7f800000));
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      // As torch: the clipped gradient is grad * coef (coef = 1 exactly when not clipping).
      Value g = kb.fmul(kb.load(accum, i), coef);
      kb.store(kb.f32(0.0), accum, i); // ready for the next optimizer step
      updateElement(kb, s, param, m, v, i, g, keep);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  // Slots: 0 accum, 1 hparams, 2 param, 3 exp_avg, 4 exp_avg_sq, 5 grad_norm.
  lowering.steps.push_back({k, {2, 0, 3, 4, 1, 5}});
  return lowering;
}

} // namespace tessera::lowering
