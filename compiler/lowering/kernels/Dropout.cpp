// Dropout.cpp - the LoRA dropout kernel (tessera.dropout in a training program).
//
// One thread per element, grid-stride. The mask is a pure function of
// (seed, site, flat index i), so the forward, the backward (the same op on the
// gradient) and a recomputed forward agree without storing it:
//   key  = fmix32(seed * 0x9E3779B9 ^ site)          seed = hparams[10], < 2^24
//   h_i  = fmix32(i * 0x9E3779B9 + key)
//   y_i  = h_i >= threshold ? x_i * scale : 0         threshold = rate * 2^32,
//                                                     scale = 1 / (1 - rate)
// fmix32 is MurmurHash3's finaliser: every input bit reaches every output bit,
// so neighbouring elements, seeds and sites give independent-looking bits.
#include "compiler/lowering/kernels/Kernels.h"
#include "runtime/plan/Abi.h"

#include <cmath>

using namespace mlir;

namespace tessera::lowering {

namespace {
constexpr int64_t kDropoutSeed = plan::kDropoutSeed;
constexpr uint32_t kGolden = 0x9E3779B9u;

// An i32 constant with the bits of `v`.
Value u32(ImplicitLocOpBuilder &b, uint32_t v) {
  return b.create<arith::ConstantIntOp>(int64_t(int32_t(v)), 32).getResult();
}

Value fmix32(ImplicitLocOpBuilder &b, Value h) {
  h = b.create<arith::XOrIOp>(h, b.create<arith::ShRUIOp>(h, u32(b, 16)));
  h = b.create<arith::MulIOp>(h, u32(b, 0x85EBCA6Bu));
  h = b.create<arith::XOrIOp>(h, b.create<arith::ShRUIOp>(h, u32(b, 13)));
  h = b.create<arith::MulIOp>(h, u32(b, 0xC2B2AE35u));
  return b.create<arith::XOrIOp>(h, b.create<arith::ShRUIOp>(h, u32(b, 16)));
}
} // namespace

uint32_t dropoutThreshold(double rate) {
  double t = std::floor(rate * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : uint32_t(t);
}

FailureOr<OpLowering> lowerDropout(LoweringContext &ctx, mlir::tessera::DropoutOp op, ShapedType hparams) {
  if (hparams.getNumElements() <= kDropoutSeed)
    return op.emitOpError("needs the dropout seed in hparams[10] (11 training hparams), got ")
               << hparams.getNumElements() << " values",
           failure();
  OpLowering lowering;
  auto t = cast<ShapedType>(op.getType());
  int64_t n = numElements(t.getShape());
  if (n == 0)
    return lowering;
  double rate = op.getRate().convertToDouble();
  uint32_t threshold = dropoutThreshold(rate), site = uint32_t(op.getSite());
  float scale = float(1.0 / (1.0 - rate));
  int64_t wg = kernelConfig<mlir::tessera::ElementwiseConfigAttr>(op).getWorkgroupSize();
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  MemRefType mem = flatMemRefType(cast<ShapedType>(op.getInput().getType())), outMem = flatMemRefType(t),
             hp = flatMemRefType(hparams);
  std::string key = "dropout " + std::to_string(n) + " threshold " + std::to_string(threshold) + " site " +
                    std::to_string(site) + " hparams " + std::to_string(hp.getNumElements()) + " wg " + std::to_string(wg);
  KernelHandle k = ctx.getOrCreate("dropout", key, {mem, outMem, hp}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    auto c = [&](uint32_t v) { return u32(b, v); };
    Value x = kb.arg(0), y = kb.arg(1), h = kb.arg(2);
    Value seed = b.create<arith::FPToUIOp>(b.getI32Type(), kb.load(h, kb.idx(kDropoutSeed)));
    Value mixed = fmix32(b, b.create<arith::XOrIOp>(b.create<arith::MulIOp>(seed, c(kGolden)), c(site)));
    Value s = kb.f32(scale), zero = kb.f32(0.0), thr = c(threshold);
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      Value i32 = b.create<arith::IndexCastUIOp>(b.getI32Type(), i);
      Value bits = fmix32(b, b.create<arith::AddIOp>(b.create<arith::MulIOp>(i32, c(kGolden)), mixed));
      Value keep = b.create<arith::CmpIOp>(arith::CmpIPredicate::uge, bits, thr);
      kb.store(kb.select(keep, kb.fmul(kb.load(x, i), s), zero), y, i);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  // Slots: 0 input, 1 result, 2 hparams.
  lowering.steps.push_back({k, {0, 1, 2}});
  return lowering;
}

} // namespace tessera::lowering
