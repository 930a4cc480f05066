// Attention.cpp - fused (FlashAttention-style) attention, forward and backward.
//
// flash_attention: one workgroup per query row (b, h, t). The row of q is
// staged in shared memory; keys are visited W (the workgroup size) at a time,
// one key per thread: its score q.k * scale + mask, the block's max and sum
// by tree reductions, and the online-softmax update of the running max m,
// sum l and the output accumulators (each thread owns the dims tid, tid + W,
// ...). No [T, S] buffer exists; lse = m + log(l) is stored for the backward.
//
// flash_attention_grad (FlashAttention-2), without atomics: two kernels.
//   dq:    one workgroup per query row: D = dout.out, then per key block
//          P = exp(score - lse), dP = dout.v, dS = P (dP - D), dq += dS k.
//   dk/dv: one workgroup per key row (b, kv head, s), looping over the
//          kv_groups query heads that share it and their queries:
//          dv += P dout, dk += dS q (D recomputed per query).
// Both scale dq, dk by `scale` at the end.
//
// Fully masked rows (every score -inf): the block max stays -inf, and the
// exponentials are taken against 0 instead (m_safe), so p = 0, l = 0, the
// result row is 0 and lse = +inf, which makes the backward's P = 0 too: no
// NaN anywhere. A finite large negative mask (finfo.min) behaves as softmax.
//
// Loads widen f16/bf16 to f32, all sums are f32, stores round to the
// result's type (KernelBuilder). The config is the op's reduction_config
// (strategy workgroup, a power-of-two workgroup_size).
#include "compiler/lowering/kernels/Kernels.h"

#include <limits>

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// The shapes every attention kernel sees.
struct AttentionShape {
  int64_t B, H, T, S, D, KH, G;
  SmallVector<int64_t, 4> maskStrides; // per [B, H, T, S] dim, 0 where broadcast
  bool hasMask = false;
};

AttentionShape attentionShape(Value q, Value k, Value mask, int64_t groups) {
  ArrayRef<int64_t> qs = cast<ShapedType>(q.getType()).getShape();
  ArrayRef<int64_t> ks = cast<ShapedType>(k.getType()).getShape();
  AttentionShape s{qs[0], qs[1], qs[2], ks[2], qs[3], ks[1], groups, {0, 0, 0, 0}, false};
  if (mask) {
    s.hasMask = true;
    ArrayRef<int64_t> ms = cast<ShapedType>(mask.getType()).getShape();
    SmallVector<int64_t> padded(4 - ms.size(), 1);
    padded.append(ms.begin(), ms.end());
    SmallVector<int64_t> strides = rowMajorStrides(padded);
    for (int i = 0; i < 4; ++i)
      s.maskStrides[i] = padded[i] == 1 ? 0 : strides[i];
  }
  return s;
}

Value kexp(KernelBuilder &kb, Value x) { return kb.b.create<math::ExpOp>(x); }
Value isNegInf(KernelBuilder &kb, Value x) {
  return kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, x, kb.f32(-kInf));
}
Value umin(KernelBuilder &kb, Value a, Value c) { return kb.select(kb.ult(a, c), a, c); }

/// sum over d < D of x[xBase + d] * y[yBase + d] (either may be shared memory).
Value dot(KernelBuilder &kb, Value x, Value xBase, Value y, Value yBase, int64_t D) {
  return kb.forLoopIter(kb.idx(0), kb.idx(D), kb.idx(1), ValueRange{kb.f32(0.0)},
                        [&](Value d, ValueRange a) -> SmallVector<Value> {
                          return {kb.fma(kb.load(x, kb.add(xBase, d)), kb.load(y, kb.add(yBase, d)), a[0])};
                        })[0];
}

/// Copies `D` elements from mem[base...] into shared[0..D) (all threads), then a barrier.
void stage(KernelBuilder &kb, Value shared, Value mem, Value base, int64_t D, Value tid, int64_t W) {
  kb.forLoop(tid, kb.idx(D), kb.idx(W), [&](Value d) { kb.store(kb.load(mem, kb.add(base, d)), shared, d); });
}

/// The mask offset of row (b, h, t) and key s: rowBase + s * stride.
Value maskRowBase(KernelBuilder &kb, const AttentionShape &s, Value b, Value h, Value t) {
  return kb.add(kb.add(kb.muli(b, s.maskStrides[0]), kb.muli(h, s.maskStrides[1])), kb.muli(t, s.maskStrides[2]));
}

/// The score of query row qBase (in `qmem`) and key row kBase (in `kmem`):
/// dot * scale + mask.
Value score(KernelBuilder &kb, const AttentionShape &s, double scale, Value qmem, Value qBase, Value kmem,
            Value kBase, Value mask, Value maskBase, Value key) {
  Value x = kb.fmul(dot(kb, qmem, qBase, kmem, kBase, s.D), kb.f32(scale));
  if (mask)
    x = kb.fadd(x, kb.load(mask, kb.add(maskBase, kb.muli(key, s.maskStrides[3]))));
  return x;
}

FailureOr<ReductionConfigAttr> attentionConfig(Operation *op) {
  auto c = kernelConfig<ReductionConfigAttr>(op);
  int64_t wg = c.getWorkgroupSize();
  if (c.getStrategy() != ReductionStrategy::workgroup || wg < 1 || (wg & (wg - 1)))
    return op->emitOpError("needs a workgroup reduction_config of a power-of-two size, got ") << c, failure();
  return c;
}

MemRefType memOf(Value v) { return flatMemRefType(cast<ShapedType>(v.getType())); }

} // namespace

FailureOr<OpLowering> lowerFlashAttention(LoweringContext &ctx, FlashAttentionOp op) {
  FailureOr<ReductionConfigAttr> config = attentionConfig(op);
  if (failed(config))
    return failure();
  AttentionShape s = attentionShape(op.getQuery(), op.getKey(), op.getMask(), op.getKvGroups());
  const int64_t W = config->getWorkgroupSize(), nd = ceilDiv(s.D, W), rows = s.B * s.H * s.T;
  const double scale = op.getScale().convertToDouble();
  OpLowering lowering;
  if (rows == 0)
    return lowering;
  int64_t groups = std::min(rows, ctx.maxWorkgroupCount);
  SmallVector<Type> args;
  SmallVector<unsigned> slots;
  for (Value v : op->getOperands())
    args.push_back(memOf(v)), slots.push_back(slots.size());
  for (Value v : op->getResults())
    args.push_back(memOf(v)), slots.push_back(slots.size());
  const unsigned nIn = op->getNumOperands();

  KernelHandle k = ctx.getOrCreate("flash_attention", opKey(op), args, {W, 1, 1}, [&](KernelBuilder &kb) {
    Value q = kb.arg(0), key = kb.arg(1), val = kb.arg(2), mask = s.hasMask ? kb.arg(3) : Value();
    Value out = kb.arg(nIn), lse = kb.arg(nIn + 1);
    Type f32 = kb.b.getF32Type();
    Value qs = kb.sharedArray(s.D, f32), ps = kb.sharedArray(W, f32), red = kb.sharedArray(W, f32);
    Value tid = kb.threadId();
    workgroupLoop(kb, rows, groups, [&](Value r) {
      Value bh = kb.udiv(r, kb.idx(s.T)), t = kb.urem(r, kb.idx(s.T));
      Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
      Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
      Value mBase = mask ? maskRowBase(kb, s, b, h, t) : Value();
      stage(kb, qs, q, kb.muli(r, s.D), s.D, tid, W);
      kb.barrier();
      SmallVector<Value> init = {kb.f32(-kInf), kb.f32(0.0)};
      for (int64_t j = 0; j < nd; ++j)
        init.push_back(kb.f32(0.0));
      SmallVector<Value> fin = kb.forLoopIter(
          kb.idx(0), kb.idx(s.S), kb.idx(W), init, [&](Value k0, ValueRange a) -> SmallVector<Value> {
            Value key_i = kb.add(k0, tid);
            Value x = kb.ifElse(kb.ulti(key_i, s.S), f32, [&] {
              return score(kb, s, scale, qs, kb.idx(0), key, kb.add(kvBase, kb.muli(key_i, s.D)), mask, mBase, key_i);
            }, [&] { return kb.f32(-kInf); });
            Value bm = kb.workgroupReduce(x, red, tid, W, [&](Value u, Value w) { return kb.fmax(u, w); });
            Value m = kb.fmax(a[0], bm);
            Value mSafe = kb.select(isNegInf(kb, m), kb.f32(0.0), m);
            Value p = kexp(kb, kb.fsub(x, mSafe));
            Value alpha = kexp(kb, kb.fsub(a[0], mSafe));
            Value bl = kb.workgroupReduce(p, red, tid, W, [&](Value u, Value w) { return kb.fadd(u, w); });
            kb.store(p, ps, tid);
            kb.barrier();
            Value n = umin(kb, kb.idx(W), kb.sub(kb.idx(s.S), k0));
            SmallVector<Value> next = {m, kb.fma(a[1], alpha, bl)};
            for (int64_t j = 0; j < nd; ++j) {
              Value d = kb.addi(tid, j * W);
              Value acc = kb.ifElse(kb.ulti(d, s.D), f32, [&] {
                return kb.forLoopIter(kb.idx(0), n, kb.idx(1), ValueRange{kb.fmul(a[2 + j], alpha)},
                                      [&](Value i, ValueRange c) -> SmallVector<Value> {
                                        Value vi = kb.add(kvBase, kb.add(kb.muli(kb.add(k0, i), s.D), d));
                                        return {kb.fma(kb.load(ps, i), kb.load(val, vi), c[0])};
                                      })[0];
              }, [&] { return kb.f32(0.0); });
              next.push_back(acc);
            }
            kb.barrier(); // ps is rewritten by the next block
            return next;
          });
      Value l = fin[1];
      Value empty = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, l, kb.f32(0.0));
      Value inv = kb.select(empty, kb.f32(0.0), kb.fdiv(kb.f32(1.0), l));
      for (int64_t j = 0; j < nd; ++j) {
        Value d = kb.addi(tid, j * W);
        kb.ifThen(kb.ulti(d, s.D), [&] { kb.store(kb.fmul(fin[2 + j], inv), out, kb.add(kb.muli(r, s.D), d)); });
      }
      kb.ifThen(kb.ulti(tid, 1), [&] {
        Value mSafe = kb.select(isNegInf(kb, fin[0]), kb.f32(0.0), fin[0]);
        Value v = kb.select(empty, kb.f32(kInf), kb.fadd(mSafe, kb.b.create<math::LogOp>(l)));
        kb.store(v, lse, r);
      });
      kb.barrier(); // qs is restaged for the next row
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  lowering.steps.push_back({k, slots});
  return lowering;
}

FailureOr<OpLowering> lowerFlashAttentionGrad(LoweringContext &ctx, FlashAttentionGradOp op) {
  FailureOr<ReductionConfigAttr> config = attentionConfig(op);
  if (failed(config))
    return failure();
  AttentionShape s = attentionShape(op.getQuery(), op.getKey(), op.getMask(), op.getKvGroups());
  const int64_t W = config->getWorkgroupSize(), nd = ceilDiv(s.D, W);
  const int64_t qRows = s.B * s.H * s.T, kRows = s.B * s.KH * s.S;
  const double scale = op.getScale().convertToDouble();
  OpLowering lowering;
  if (qRows == 0 || kRows == 0)
    return lowering;
  const unsigned nIn = op->getNumOperands(); // q k v out lse dout [mask]
  SmallVector<Type> in;
  SmallVector<unsigned> inSlots;
  for (Value v : op->getOperands())
    in.push_back(memOf(v)), inSlots.push_back(inSlots.size());
  Type f32Type = Float32Type::get(op.getContext());
  auto operands = [&](KernelBuilder &kb) {
    struct {
      Value q, k, v, o, lse, dout, mask;
    } a{kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3), kb.arg(4), kb.arg(5), s.hasMask ? kb.arg(6) : Value()};
    return a;
  };

  // dq: one workgroup per query row.
  {
    SmallVector<Type> args = in;
    args.push_back(memOf(op.getDquery()));
    SmallVector<unsigned> slots = inSlots;
    slots.push_back(nIn);
    int64_t groups = std::min(qRows, ctx.maxWorkgroupCount);
    KernelHandle k = ctx.getOrCreate("flash_attention_dq", opKey(op), args, {W, 1, 1}, [&](KernelBuilder &kb) {
      auto a = operands(kb);
      Value dq = kb.arg(nIn);
      Value qs = kb.sharedArray(s.D, f32Type), dos = kb.sharedArray(s.D, f32Type);
      Value dss = kb.sharedArray(W, f32Type), red = kb.sharedArray(W, f32Type);
      Value tid = kb.threadId();
      workgroupLoop(kb, qRows, groups, [&](Value r) {
        Value bh = kb.udiv(r, kb.idx(s.T)), t = kb.urem(r, kb.idx(s.T));
        Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
        Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
        Value mBase = a.mask ? maskRowBase(kb, s, b, h, t) : Value();
        Value rowBase = kb.muli(r, s.D);
        stage(kb, qs, a.q, rowBase, s.D, tid, W);
        stage(kb, dos, a.dout, rowBase, s.D, tid, W);
        Value part = kb.forLoopIter(tid, kb.idx(s.D), kb.idx(W), ValueRange{kb.f32(0.0)},
                                    [&](Value d, ValueRange c) -> SmallVector<Value> {
                                      Value i = kb.add(rowBase, d);
                                      return {kb.fma(kb.load(a.dout, i), kb.load(a.o, i), c[0])};
                                    })[0];
        Value Drow = kb.workgroupReduce(part, red, tid, W, [&](Value u, Value w) { return kb.fadd(u, w); });
        Value lseR = kb.load(a.lse, r);
        SmallVector<Value> init(nd, kb.f32(0.0));
        SmallVector<Value> acc = kb.forLoopIter(
            kb.idx(0), kb.idx(s.S), kb.idx(W), init, [&](Value k0, ValueRange c) -> SmallVector<Value> {
              Value key_i = kb.add(k0, tid);
              Value ds = kb.ifElse(kb.ulti(key_i, s.S), f32Type, [&] {
                Value kBase = kb.add(kvBase, kb.muli(key_i, s.D));
                Value x = score(kb, s, scale, qs, kb.idx(0), a.k, kBase, a.mask, mBase, key_i);
                Value p = kexp(kb, kb.fsub(x, lseR));
                Value dp = dot(kb, dos, kb.idx(0), a.v, kBase, s.D);
                return kb.fmul(p, kb.fsub(dp, Drow));
              }, [&] { return kb.f32(0.0); });
              kb.store(ds, dss, tid);
              kb.barrier();
              Value n = umin(kb, kb.idx(W), kb.sub(kb.idx(s.S), k0));
              SmallVector<Value> next;
              for (int64_t j = 0; j < nd; ++j) {
                Value d = kb.addi(tid, j * W);
                next.push_back(kb.ifElse(kb.ulti(d, s.D), f32Type, [&] {
                  return kb.forLoopIter(kb.idx(0), n, kb.idx(1), ValueRange{c[j]},
                                        [&](Value i, ValueRange e) -> SmallVector<Value> {
                                          Value ki = kb.add(kvBase, kb.add(kb.muli(kb.add(k0, i), s.D), d));
                                          return {kb.fma(kb.load(dss, i), kb.load(a.k, ki), e[0])};
                                        })[0];
                }, [&] { return kb.f32(0.0); }));
              }
              kb.barrier();
              return next;
            });
        for (int64_t j = 0; j < nd; ++j) {
          Value d = kb.addi(tid, j * W);
          kb.ifThen(kb.ulti(d, s.D), [&] { kb.store(kb.fmul(acc[j], kb.f32(scale)), dq, kb.add(rowBase, d)); });
        }
        kb.barrier();
      });
      return std::array<int64_t, 3>{groups, 1, 1};
    });
    lowering.steps.push_back({k, slots});
  }

  // dk, dv: one workgroup per key row, over the kv_groups query heads it serves.
  {
    SmallVector<Type> args = in;
    args.push_back(memOf(op.getDkey()));
    args.push_back(memOf(op.getDvalue()));
    SmallVector<unsigned> slots = inSlots;
    slots.push_back(nIn + 1);
    slots.push_back(nIn + 2);
    int64_t groups = std::min(kRows, ctx.maxWorkgroupCount);
    KernelHandle k = ctx.getOrCreate("flash_attention_dkv", opKey(op), args, {W, 1, 1}, [&](KernelBuilder &kb) {
      auto a = operands(kb);
      Value dk = kb.arg(nIn), dv = kb.arg(nIn + 1);
      Value ks = kb.sharedArray(s.D, f32Type), vs = kb.sharedArray(s.D, f32Type);
      Value pp = kb.sharedArray(W, f32Type), dss = kb.sharedArray(W, f32Type);
      Value tid = kb.threadId();
      workgroupLoop(kb, kRows, groups, [&](Value c) {
        Value bk = kb.udiv(c, kb.idx(s.S)), key_s = kb.urem(c, kb.idx(s.S));
        Value b = kb.udiv(bk, kb.idx(s.KH)), kh = kb.urem(bk, kb.idx(s.KH));
        Value keyBase = kb.muli(c, s.D);
        stage(kb, ks, a.k, keyBase, s.D, tid, W);
        stage(kb, vs, a.v, keyBase, s.D, tid, W);
        kb.barrier();
        SmallVector<Value> init(2 * nd, kb.f32(0.0)); // dk dims, then dv dims
        SmallVector<Value> acc = kb.forLoopIter(
            kb.idx(0), kb.idx(s.G), kb.idx(1), init, [&](Value g, ValueRange cg) -> SmallVector<Value> {
              Value h = kb.add(kb.muli(kh, s.G), g);
              Value headRow = kb.muli(kb.add(kb.muli(b, s.H), h), s.T); // first query row of head h
              return kb.forLoopIter(
                  kb.idx(0), kb.idx(s.T), kb.idx(W), cg, [&](Value t0, ValueRange ct) -> SmallVector<Value> {
                    Value t = kb.add(t0, tid);
                    Value valid = kb.ulti(t, s.T);
                    // p and dS of query t against this key (0 past the end).
                    Value p = kb.ifElse(valid, f32Type, [&] {
                      Value row = kb.add(headRow, t);
                      Value mBase = a.mask ? maskRowBase(kb, s, b, h, t) : Value();
                      Value x = score(kb, s, scale, a.q, kb.muli(row, s.D), ks, kb.idx(0), a.mask, mBase, key_s);
                      return kexp(kb, kb.fsub(x, kb.load(a.lse, row)));
                    }, [&] { return kb.f32(0.0); });
                    Value ds = kb.ifElse(valid, f32Type, [&] {
                      Value rowBase = kb.muli(kb.add(headRow, t), s.D);
                      Value dp = dot(kb, a.dout, rowBase, vs, kb.idx(0), s.D);
                      Value Drow = dot(kb, a.dout, rowBase, a.o, rowBase, s.D);
                      return kb.fmul(p, kb.fsub(dp, Drow));
                    }, [&] { return kb.f32(0.0); });
                    kb.store(p, pp, tid);
                    kb.store(ds, dss, tid);
                    kb.barrier();
                    Value n = umin(kb, kb.idx(W), kb.sub(kb.idx(s.T), t0));
                    SmallVector<Value> next(ct.begin(), ct.end());
                    for (int64_t j = 0; j < nd; ++j) {
                      Value d = kb.addi(tid, j * W);
                      auto sum = [&](Value weights, Value mem, Value init0) {
                        return kb.ifElse(kb.ulti(d, s.D), f32Type, [&] {
                          return kb.forLoopIter(kb.idx(0), n, kb.idx(1), ValueRange{init0},
                                                [&](Value i, ValueRange e) -> SmallVector<Value> {
                                                  Value qi = kb.add(kb.muli(kb.add(headRow, kb.add(t0, i)), s.D), d);
                                                  return {kb.fma(kb.load(weights, i), kb.load(mem, qi), e[0])};
                                                })[0];
                        }, [&] { return init0; });
                      };
                      next[j] = sum(dss, a.q, ct[j]);
                      next[nd + j] = sum(pp, a.dout, ct[nd + j]);
                    }
                    kb.barrier();
                    return next;
                  });
            });
        for (int64_t j = 0; j < nd; ++j) {
          Value d = kb.addi(tid, j * W);
          kb.ifThen(kb.ulti(d, s.D), [&] {
            kb.store(kb.fmul(acc[j], kb.f32(scale)), dk, kb.add(keyBase, d));
            kb.store(acc[nd + j], dv, kb.add(keyBase, d));
          });
        }
        kb.barrier();
      });
      return std::array<int64_t, 3>{groups, 1, 1};
    });
    lowering.steps.push_back({k, slots});
  }
  return lowering;
}

} // namespace tessera::lowering
