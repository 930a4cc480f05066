// Attention.cpp - fused (FlashAttention-style) attention, forward and backward.
//
// flash_attention: a workgroup per R query rows of one (b, h). The R rows of q
// are staged in shared memory; keys are visited W (the workgroup size) at a
// time, one key per thread, whose row of k is read once for the R scores
// q.k * scale + mask; per row the block's max and sum (shared-memory trees),
// then the online-softmax update of its running max m, sum l and output
// accumulators (each thread owns the dims tid, tid + W, ...; a row of v is
// read once for the R rows). No [T, S] buffer exists; lse = m + log(l) is
// stored for the backward.
//
// flash_attention_grad (FlashAttention-2), without atomics: two kernels.
//   dq:    a workgroup per R query rows: D = rowsum(dout * out), then per key
//          block P = exp(score - lse), dP = dout.v, dS = P (dP - D),
//          dq += dS k.
//   dk/dv: a workgroup per R key rows of one (b, kv head), looping over the
//          kv_groups query heads that share them and their queries, one query
//          per thread: dv += P dout, dk += dS q (D recomputed per query).
// Both scale dq, dk by `scale` at the end. R (at most 8) is what keeps every
// kernel's shared memory within Vulkan's guaranteed 16 KiB; the R-row loops
// are unrolled, so R adds no loop iterations (llvmpipe's limit).
//
// Fully masked rows (every score -inf): the block max stays -inf, and the
// exponentials are taken against 0 instead (m_safe), so p = 0, l = 0, the
// result row is 0 and lse = +inf, which makes the backward's P = 0 too: no
// NaN anywhere. A finite large negative mask (finfo.min) behaves as softmax.
// Rows and keys past the end are read clamped (in bounds) and discarded.
//
// Loads widen f16/bf16 to f32, all sums are f32, stores round to the
// result's type (KernelBuilder). The config is the op's reduction_config
// (strategy workgroup, a power-of-two workgroup_size); a kind = coopmat
// matmul_config selects the tensor-core kernels of AttentionCoopMat.cpp,
// and these where it does not tile.
#include "compiler/lowering/kernels/Attention.h"

#include <limits>

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kSharedBytes = 16384; // Vulkan's minimum maxComputeSharedMemorySize

/// Rows per workgroup: the most (<= 8) whose `floatsPerRow` shared floats fit.
int64_t rowsPerGroup(int64_t floatsPerRow, int64_t rows) {
  int64_t r = 8;
  while (r > 1 && (r * floatsPerRow * 4 > kSharedBytes || r / 2 >= rows))
    r /= 2;
  return r;
}

Value kexp(KernelBuilder &kb, Value x) { return kb.b.create<math::ExpOp>(x); }
Value isNegInf(KernelBuilder &kb, Value x) {
  return kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, x, kb.f32(-kInf));
}
Value umin(KernelBuilder &kb, Value a, Value c) { return kb.select(kb.ult(a, c), a, c); }
Value uminI(KernelBuilder &kb, Value a, int64_t c) { return umin(kb, a, kb.idx(c)); }

/// Tree reductions of R values per thread at once through shared[R * W]:
/// every thread gets the R results. Reached by all threads.
SmallVector<Value> reduceRows(KernelBuilder &kb, ArrayRef<Value> partial, Value shared, Value tid, int64_t W,
                              const std::function<Value(Value, Value)> &combine) {
  int64_t R = partial.size();
  for (int64_t j = 0; j < R; ++j)
    kb.store(partial[j], shared, kb.addi(tid, j * W));
  kb.barrier();
  for (int64_t s = W / 2; s >= 1; s /= 2) {
    kb.ifThen(kb.ulti(tid, s), [&] {
      for (int64_t j = 0; j < R; ++j) {
        Value i = kb.addi(tid, j * W);
        kb.store(combine(kb.load(shared, i), kb.load(shared, kb.addi(i, s))), shared, i);
      }
    });
    kb.barrier();
  }
  SmallVector<Value> out;
  for (int64_t j = 0; j < R; ++j)
    out.push_back(kb.load(shared, kb.idx(j * W)));
  kb.barrier(); // `shared` may be reused right after
  return out;
}

/// Copies rows row0 + j (j < R, clamped to rows - 1) of D elements from mem
/// into shared[j * D + d] (all threads; a barrier must follow before reads).
void stageRows(KernelBuilder &kb, Value shared, Value mem, Value base, Value row0, int64_t rows, int64_t R,
               int64_t D, Value tid, int64_t W) {
  kb.forLoop(tid, kb.idx(R * D), kb.idx(W), [&](Value e) {
    Value j = kb.udiv(e, kb.idx(D)), d = kb.urem(e, kb.idx(D));
    Value row = uminI(kb, kb.add(row0, j), rows - 1);
    kb.store(kb.load(mem, kb.add(base, kb.add(kb.muli(row, D), d))), shared, e);
  });
}

// The op's reduction_config; a coopmat matmul_config that does not tile
// (AttentionCoopMat.cpp) falls back to these kernels with as many threads
// (a power of two at most).
FailureOr<ReductionConfigAttr> attentionConfig(Operation *op) {
  Attribute attr = op->getAttr(TesseraDialect::getKernelConfigAttrName());
  if (auto m = dyn_cast<MatmulConfigAttr>(attr); m && m.isCoopMat()) {
    int64_t wg = 1;
    while (2 * wg <= m.threads())
      wg *= 2;
    return ReductionConfigAttr::get(op->getContext(), ReductionStrategy::workgroup, wg);
  }
  auto c = dyn_cast<ReductionConfigAttr>(attr);
  if (!c)
    return op->emitOpError("needs a reduction_config or a coopmat matmul_config, got ") << attr, failure();
  int64_t wg = c.getWorkgroupSize();
  if (c.getStrategy() != ReductionStrategy::workgroup || wg < 1 || (wg & (wg - 1)))
    return op->emitOpError("needs a workgroup reduction_config of a power-of-two size, got ") << c, failure();
  return c;
}

MemRefType memOf(Value v) { return flatMemRefType(cast<ShapedType>(v.getType())); }

} // namespace


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
    if (s.T == s.S)
      s.band = constantMaskBand(mask);
  }
  return s;
}

std::optional<int64_t> constantMaskBand(Value mask) {
  auto c = mask ? mask.getDefiningOp<ConstantOp>() : ConstantOp();
  if (!c)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
  ArrayRef<int64_t> shape = cast<ShapedType>(mask.getType()).getShape();
  if (!dense || !dense.getElementType().isF32() || shape.size() < 2 || shape.back() != shape[shape.size() - 2])
    return std::nullopt;
  const int64_t T = shape.back();
  if (dense.isSplat() || T == 0)
    return std::nullopt;
  // The raw data (not splat: a float per element), read in place.
  ArrayRef<char> raw = dense.getRawData();
  ArrayRef<float> v(reinterpret_cast<const float *>(raw.data()), raw.size() / sizeof(float));
  if (int64_t(v.size()) != cast<ShapedType>(mask.getType()).getNumElements())
    return std::nullopt;
  // The window from the first slice's last row, then every element checked.
  int64_t first = 0;
  while (first < T && !(v[(T - 1) * T + first] == 0.0f))
    ++first;
  const int64_t window = first == 0 ? -1 : T - first;
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t t = int64_t(i / T) % T, k = int64_t(i % T);
    bool live = k <= t && (window < 0 || k > t - window);
    if (live ? !(v[i] == 0.0f) : !(v[i] <= -1e30f))
      return std::nullopt;
  }
  return window;
}

Value attentionMaskAt(KernelBuilder &kb, const AttentionShape &s, Value b, Value h, Value t, Value key) {
  return kb.add(kb.add(kb.muli(b, s.maskStrides[0]), kb.muli(h, s.maskStrides[1])),
                kb.add(kb.muli(t, s.maskStrides[2]), kb.muli(key, s.maskStrides[3])));
}

FailureOr<OpLowering> lowerFlashAttention(LoweringContext &ctx, FlashAttentionOp op) {
  FailureOr<ReductionConfigAttr> config = attentionConfig(op);
  if (failed(config))
    return failure();
  AttentionShape s = attentionShape(op.getQuery(), op.getKey(), op.getMask(), op.getKvGroups());
  const int64_t W = config->getWorkgroupSize(), nd = ceilDiv(s.D, W);
  const int64_t R = rowsPerGroup(s.D + W, s.T), perHead = ceilDiv(s.T, R), items = s.B * s.H * perHead;
  const double scale = op.getScale().convertToDouble();
  OpLowering lowering;
  if (items == 0 || s.S == 0)
    return lowering;
  int64_t groups = std::min(items, ctx.maxWorkgroupCount);
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
    Value qs = kb.sharedArray(R * s.D, f32), ps = kb.sharedArray(R * W, f32);
    Value tid = kb.threadId();
    workgroupLoop(kb, items, groups, [&](Value item) {
      Value bh = kb.udiv(item, kb.idx(perHead)), t0 = kb.muli(kb.urem(item, kb.idx(perHead)), R);
      Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
      Value qBase = kb.muli(bh, s.T * s.D); // row t of q at qBase + t * D
      Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
      stageRows(kb, qs, q, qBase, t0, s.T, R, s.D, tid, W);
      kb.barrier();
      SmallVector<Value> tc; // the R rows, clamped
      for (int64_t j = 0; j < R; ++j)
        tc.push_back(uminI(kb, kb.addi(t0, j), s.T - 1));
      // iter args: m[R], l[R], acc[R][nd]
      SmallVector<Value> init;
      for (int64_t j = 0; j < R; ++j)
        init.push_back(kb.f32(-kInf));
      for (int64_t j = 0; j < R * (1 + nd); ++j)
        init.push_back(kb.f32(0.0));
      SmallVector<Value> fin = kb.forLoopIter(
          kb.idx(0), kb.idx(s.S), kb.idx(W), init, [&](Value k0, ValueRange a) -> SmallVector<Value> {
            Value keyI = kb.add(k0, tid), keyValid = kb.ulti(keyI, s.S);
            Value keyC = uminI(kb, keyI, s.S - 1);
            Value kRow = kb.add(kvBase, kb.muli(keyC, s.D));
            SmallVector<Value> zeros(R, kb.f32(0.0));
            SmallVector<Value> dots = kb.forLoopIter(kb.idx(0), kb.idx(s.D), kb.idx(1), zeros,
                                                     [&](Value d, ValueRange c) -> SmallVector<Value> {
                                                       Value kd = kb.load(key, kb.add(kRow, d));
                                                       SmallVector<Value> n;
                                                       for (int64_t j = 0; j < R; ++j)
                                                         n.push_back(kb.fma(kb.load(qs, kb.addi(d, j * s.D)), kd, c[j]));
                                                       return n;
                                                     });
            SmallVector<Value> x;
            for (int64_t j = 0; j < R; ++j) {
              Value v = kb.fmul(dots[j], kb.f32(scale));
              if (mask)
                v = kb.fadd(v, kb.load(mask, attentionMaskAt(kb, s, b, h, tc[j], keyC)));
              x.push_back(kb.select(keyValid, v, kb.f32(-kInf)));
            }
            SmallVector<Value> bm = reduceRows(kb, x, ps, tid, W, [&](Value u, Value w) { return kb.fmax(u, w); });
            SmallVector<Value> m, mSafe, p, alpha;
            for (int64_t j = 0; j < R; ++j) {
              m.push_back(kb.fmax(a[j], bm[j]));
              mSafe.push_back(kb.select(isNegInf(kb, m[j]), kb.f32(0.0), m[j]));
              p.push_back(kexp(kb, kb.fsub(x[j], mSafe[j])));
              alpha.push_back(kexp(kb, kb.fsub(a[j], mSafe[j])));
            }
            SmallVector<Value> bl = reduceRows(kb, p, ps, tid, W, [&](Value u, Value w) { return kb.fadd(u, w); });
            for (int64_t j = 0; j < R; ++j)
              kb.store(p[j], ps, kb.addi(tid, j * W));
            kb.barrier();
            Value n = uminI(kb, kb.sub(kb.idx(s.S), k0), W);
            SmallVector<Value> next(2 * R + R * nd); // m, l, acc as the iter args
            for (int64_t j = 0; j < R; ++j)
              next[j] = m[j], next[R + j] = kb.fma(a[R + j], alpha[j], bl[j]);
            for (int64_t jd = 0; jd < nd; ++jd) {
              Value d = kb.addi(tid, jd * W), dC = uminI(kb, d, s.D - 1);
              SmallVector<Value> scaled;
              for (int64_t j = 0; j < R; ++j)
                scaled.push_back(kb.fmul(a[2 * R + j * nd + jd], alpha[j]));
              SmallVector<Value> acc = kb.forLoopIter(
                  kb.idx(0), n, kb.idx(1), scaled, [&](Value i, ValueRange c) -> SmallVector<Value> {
                    Value vi = kb.load(val, kb.add(kvBase, kb.add(kb.muli(kb.add(k0, i), s.D), dC)));
                    SmallVector<Value> r;
                    for (int64_t j = 0; j < R; ++j)
                      r.push_back(kb.fma(kb.load(ps, kb.addi(i, j * W)), vi, c[j]));
                    return r;
                  });
              for (int64_t j = 0; j < R; ++j)
                next[2 * R + j * nd + jd] = acc[j];
            }
            kb.barrier(); // ps is rewritten by the next block
            return next;
          });
      for (int64_t j = 0; j < R; ++j) {
        Value t = kb.addi(t0, j);
        kb.ifThen(kb.ulti(t, s.T), [&] {
          Value l = fin[R + j];
          Value empty = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, l, kb.f32(0.0));
          Value inv = kb.select(empty, kb.f32(0.0), kb.fdiv(kb.f32(1.0), l));
          for (int64_t jd = 0; jd < nd; ++jd) {
            Value d = kb.addi(tid, jd * W);
            kb.ifThen(kb.ulti(d, s.D), [&] {
              kb.store(kb.fmul(fin[2 * R + j * nd + jd], inv), out, kb.add(qBase, kb.add(kb.muli(t, s.D), d)));
            });
          }
          kb.ifThen(kb.ulti(tid, 1), [&] {
            Value mSafe = kb.select(isNegInf(kb, fin[j]), kb.f32(0.0), fin[j]);
            Value v = kb.select(empty, kb.f32(kInf), kb.fadd(mSafe, kb.b.create<math::LogOp>(l)));
            kb.store(v, lse, kb.add(kb.muli(bh, s.T), t));
          });
        });
      }
      kb.barrier(); // qs is restaged for the next item
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
  const double scale = op.getScale().convertToDouble();
  OpLowering lowering;
  if (s.B * s.H * s.T == 0 || s.S == 0)
    return lowering;
  const unsigned nIn = op->getNumOperands(); // q k v out lse dout [mask]
  SmallVector<Type> in;
  SmallVector<unsigned> inSlots;
  for (Value v : op->getOperands())
    in.push_back(memOf(v)), inSlots.push_back(inSlots.size());
  Type f32Type = Float32Type::get(op.getContext());
  struct Operands {
    Value q, k, v, o, lse, dout, mask;
  };
  auto operands = [&](KernelBuilder &kb) {
    return Operands{kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3), kb.arg(4), kb.arg(5),
                    s.hasMask ? kb.arg(6) : Value()};
  };

  // dq: a workgroup per R query rows of one (b, h).
  {
    const int64_t R = rowsPerGroup(2 * s.D + W, s.T), perHead = ceilDiv(s.T, R), items = s.B * s.H * perHead;
    SmallVector<Type> args = in;
    args.push_back(memOf(op.getDquery()));
    SmallVector<unsigned> slots = inSlots;
    slots.push_back(nIn);
    int64_t groups = std::min(items, ctx.maxWorkgroupCount);
    KernelHandle k = ctx.getOrCreate("flash_attention_dq", opKey(op), args, {W, 1, 1}, [&](KernelBuilder &kb) {
      Operands a = operands(kb);
      Value dq = kb.arg(nIn);
      Value qs = kb.sharedArray(R * s.D, f32Type), dos = kb.sharedArray(R * s.D, f32Type);
      Value dss = kb.sharedArray(R * W, f32Type);
      Value tid = kb.threadId();
      workgroupLoop(kb, items, groups, [&](Value item) {
        Value bh = kb.udiv(item, kb.idx(perHead)), t0 = kb.muli(kb.urem(item, kb.idx(perHead)), R);
        Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
        Value qBase = kb.muli(bh, s.T * s.D);
        Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
        stageRows(kb, qs, a.q, qBase, t0, s.T, R, s.D, tid, W);
        stageRows(kb, dos, a.dout, qBase, t0, s.T, R, s.D, tid, W);
        SmallVector<Value> tc, partial, lseJ;
        for (int64_t j = 0; j < R; ++j) {
          tc.push_back(uminI(kb, kb.addi(t0, j), s.T - 1));
          Value rowBase = kb.add(qBase, kb.muli(tc[j], s.D));
          partial.push_back(kb.forLoopIter(tid, kb.idx(s.D), kb.idx(W), ValueRange{kb.f32(0.0)},
                                           [&](Value d, ValueRange c) -> SmallVector<Value> {
                                             Value i = kb.add(rowBase, d);
                                             return {kb.fma(kb.load(a.dout, i), kb.load(a.o, i), c[0])};
                                           })[0]);
          lseJ.push_back(kb.load(a.lse, kb.add(kb.muli(bh, s.T), tc[j])));
        }
        // The reduction's barriers also publish the staged rows.
        SmallVector<Value> Drow = reduceRows(kb, partial, dss, tid, W, [&](Value u, Value w) { return kb.fadd(u, w); });
        SmallVector<Value> init(R * nd, kb.f32(0.0));
        SmallVector<Value> acc = kb.forLoopIter(
            kb.idx(0), kb.idx(s.S), kb.idx(W), init, [&](Value k0, ValueRange c) -> SmallVector<Value> {
              Value keyI = kb.add(k0, tid), keyValid = kb.ulti(keyI, s.S);
              Value keyC = uminI(kb, keyI, s.S - 1);
              Value kRow = kb.add(kvBase, kb.muli(keyC, s.D));
              SmallVector<Value> zeros(2 * R, kb.f32(0.0)); // q.k, then dout.v per row
              SmallVector<Value> dots = kb.forLoopIter(
                  kb.idx(0), kb.idx(s.D), kb.idx(1), zeros, [&](Value d, ValueRange e) -> SmallVector<Value> {
                    Value kd = kb.load(a.k, kb.add(kRow, d)), vd = kb.load(a.v, kb.add(kRow, d));
                    SmallVector<Value> n;
                    for (int64_t j = 0; j < R; ++j)
                      n.push_back(kb.fma(kb.load(qs, kb.addi(d, j * s.D)), kd, e[j]));
                    for (int64_t j = 0; j < R; ++j)
                      n.push_back(kb.fma(kb.load(dos, kb.addi(d, j * s.D)), vd, e[R + j]));
                    return n;
                  });
              for (int64_t j = 0; j < R; ++j) {
                Value x = kb.fmul(dots[j], kb.f32(scale));
                if (a.mask)
                  x = kb.fadd(x, kb.load(a.mask, attentionMaskAt(kb, s, b, h, tc[j], keyC)));
                Value p = kexp(kb, kb.fsub(x, lseJ[j]));
                Value ds = kb.fmul(p, kb.fsub(dots[R + j], Drow[j]));
                kb.store(kb.select(keyValid, ds, kb.f32(0.0)), dss, kb.addi(tid, j * W));
              }
              kb.barrier();
              Value n = uminI(kb, kb.sub(kb.idx(s.S), k0), W);
              SmallVector<Value> next(c.begin(), c.end());
              for (int64_t jd = 0; jd < nd; ++jd) {
                Value dC = uminI(kb, kb.addi(tid, jd * W), s.D - 1);
                SmallVector<Value> start;
                for (int64_t j = 0; j < R; ++j)
                  start.push_back(c[j * nd + jd]);
                SmallVector<Value> r = kb.forLoopIter(
                    kb.idx(0), n, kb.idx(1), start, [&](Value i, ValueRange e) -> SmallVector<Value> {
                      Value ki = kb.load(a.k, kb.add(kvBase, kb.add(kb.muli(kb.add(k0, i), s.D), dC)));
                      SmallVector<Value> u;
                      for (int64_t j = 0; j < R; ++j)
                        u.push_back(kb.fma(kb.load(dss, kb.addi(i, j * W)), ki, e[j]));
                      return u;
                    });
                for (int64_t j = 0; j < R; ++j)
                  next[j * nd + jd] = r[j];
              }
              kb.barrier();
              return next;
            });
        for (int64_t j = 0; j < R; ++j) {
          Value t = kb.addi(t0, j);
          for (int64_t jd = 0; jd < nd; ++jd) {
            Value d = kb.addi(tid, jd * W);
            kb.ifThen(kb.andi(kb.ulti(t, s.T), kb.ulti(d, s.D)), [&] {
              kb.store(kb.fmul(acc[j * nd + jd], kb.f32(scale)), dq, kb.add(qBase, kb.add(kb.muli(t, s.D), d)));
            });
          }
        }
        kb.barrier();
      });
      return std::array<int64_t, 3>{groups, 1, 1};
    });
    lowering.steps.push_back({k, slots});
  }

  // dk, dv: a workgroup per R key rows of one (b, kv head), over the
  // kv_groups query heads they serve.
  {
    const int64_t R = rowsPerGroup(2 * s.D + 2 * W, s.S), perHead = ceilDiv(s.S, R), items = s.B * s.KH * perHead;
    SmallVector<Type> args = in;
    args.push_back(memOf(op.getDkey()));
    args.push_back(memOf(op.getDvalue()));
    SmallVector<unsigned> slots = inSlots;
    slots.push_back(nIn + 1);
    slots.push_back(nIn + 2);
    int64_t groups = std::min(items, ctx.maxWorkgroupCount);
    KernelHandle k = ctx.getOrCreate("flash_attention_dkv", opKey(op), args, {W, 1, 1}, [&](KernelBuilder &kb) {
      Operands a = operands(kb);
      Value dk = kb.arg(nIn), dv = kb.arg(nIn + 1);
      Value ks = kb.sharedArray(R * s.D, f32Type), vs = kb.sharedArray(R * s.D, f32Type);
      Value pp = kb.sharedArray(R * W, f32Type), dss = kb.sharedArray(R * W, f32Type);
      Value tid = kb.threadId();
      workgroupLoop(kb, items, groups, [&](Value item) {
        Value bk = kb.udiv(item, kb.idx(perHead)), s0 = kb.muli(kb.urem(item, kb.idx(perHead)), R);
        Value b = kb.udiv(bk, kb.idx(s.KH)), kh = kb.urem(bk, kb.idx(s.KH));
        Value kBase = kb.muli(bk, s.S * s.D);
        stageRows(kb, ks, a.k, kBase, s0, s.S, R, s.D, tid, W);
        stageRows(kb, vs, a.v, kBase, s0, s.S, R, s.D, tid, W);
        kb.barrier();
        SmallVector<Value> keyC, keyValid;
        for (int64_t r = 0; r < R; ++r) {
          keyC.push_back(uminI(kb, kb.addi(s0, r), s.S - 1));
          keyValid.push_back(kb.ulti(kb.addi(s0, r), s.S));
        }
        SmallVector<Value> init(2 * R * nd, kb.f32(0.0)); // dk [r][jd], then dv [r][jd]
        SmallVector<Value> acc = kb.forLoopIter(
            kb.idx(0), kb.idx(s.G), kb.idx(1), init, [&](Value g, ValueRange cg) -> SmallVector<Value> {
              Value h = kb.add(kb.muli(kh, s.G), g);
              Value headRow = kb.muli(kb.add(kb.muli(b, s.H), h), s.T); // first query row of head h
              return kb.forLoopIter(
                  kb.idx(0), kb.idx(s.T), kb.idx(W), cg, [&](Value t0, ValueRange ct) -> SmallVector<Value> {
                    Value t = kb.add(t0, tid), valid = kb.ulti(t, s.T);
                    Value tC = uminI(kb, t, s.T - 1);
                    Value rowBase = kb.muli(kb.add(headRow, tC), s.D);
                    // q.k[r], dout.v[r], then dout.out, one pass over the row.
                    SmallVector<Value> zeros(2 * R + 1, kb.f32(0.0));
                    SmallVector<Value> dots = kb.forLoopIter(
                        kb.idx(0), kb.idx(s.D), kb.idx(1), zeros, [&](Value d, ValueRange e) -> SmallVector<Value> {
                          Value i = kb.add(rowBase, d);
                          Value qd = kb.load(a.q, i), dod = kb.load(a.dout, i);
                          SmallVector<Value> n;
                          for (int64_t r = 0; r < R; ++r)
                            n.push_back(kb.fma(qd, kb.load(ks, kb.addi(d, r * s.D)), e[r]));
                          for (int64_t r = 0; r < R; ++r)
                            n.push_back(kb.fma(dod, kb.load(vs, kb.addi(d, r * s.D)), e[R + r]));
                          n.push_back(kb.fma(dod, kb.load(a.o, i), e[2 * R]));
                          return n;
                        });
                    Value lseT = kb.load(a.lse, kb.add(headRow, tC));
                    for (int64_t r = 0; r < R; ++r) {
                      Value x = kb.fmul(dots[r], kb.f32(scale));
                      if (a.mask)
                        x = kb.fadd(x, kb.load(a.mask, attentionMaskAt(kb, s, b, h, tC, keyC[r])));
                      Value p = kb.select(kb.andi(valid, keyValid[r]), kexp(kb, kb.fsub(x, lseT)), kb.f32(0.0));
                      kb.store(p, pp, kb.addi(tid, r * W));
                      kb.store(kb.fmul(p, kb.fsub(dots[R + r], dots[2 * R])), dss, kb.addi(tid, r * W));
                    }
                    kb.barrier();
                    Value n = uminI(kb, kb.sub(kb.idx(s.T), t0), W);
                    SmallVector<Value> next(ct.begin(), ct.end());
                    for (int64_t jd = 0; jd < nd; ++jd) {
                      Value dC = uminI(kb, kb.addi(tid, jd * W), s.D - 1);
                      SmallVector<Value> start;
                      for (int64_t r = 0; r < R; ++r)
                        start.push_back(ct[r * nd + jd]);
                      for (int64_t r = 0; r < R; ++r)
                        start.push_back(ct[R * nd + r * nd + jd]);
                      SmallVector<Value> u = kb.forLoopIter(
                          kb.idx(0), n, kb.idx(1), start, [&](Value i, ValueRange e) -> SmallVector<Value> {
                            Value qi = kb.add(kb.muli(kb.add(headRow, kb.add(t0, i)), s.D), dC);
                            Value qv = kb.load(a.q, qi), dov = kb.load(a.dout, qi);
                            SmallVector<Value> w;
                            for (int64_t r = 0; r < R; ++r)
                              w.push_back(kb.fma(kb.load(dss, kb.addi(i, r * W)), qv, e[r]));
                            for (int64_t r = 0; r < R; ++r)
                              w.push_back(kb.fma(kb.load(pp, kb.addi(i, r * W)), dov, e[R + r]));
                            return w;
                          });
                      for (int64_t r = 0; r < R; ++r) {
                        next[r * nd + jd] = u[r];
                        next[R * nd + r * nd + jd] = u[R + r];
                      }
                    }
                    kb.barrier();
                    return next;
                  });
            });
        for (int64_t r = 0; r < R; ++r) {
          Value keyRow = kb.addi(s0, r);
          for (int64_t jd = 0; jd < nd; ++jd) {
            Value d = kb.addi(tid, jd * W);
            kb.ifThen(kb.andi(keyValid[r], kb.ulti(d, s.D)), [&] {
              Value i = kb.add(kBase, kb.add(kb.muli(keyRow, s.D), d));
              kb.store(kb.fmul(acc[r * nd + jd], kb.f32(scale)), dk, i);
              kb.store(acc[R * nd + r * nd + jd], dv, i);
            });
          }
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
