// AttentionCoopMat.cpp - fused attention on cooperative matrices (tensor
// cores), for flash_attention / flash_attention_grad under a kind = coopmat
// #tessera.matmul_config: tile = [Br, Bc, -] (Br rows per workgroup, blocks
// of Bc; tile_k is unused), mma, subgroups = [sm, sn], operands f16 / bf16.
// The products run as gpu.subgroup_mma_* ops like MatmulCoopMat.cpp's; the
// rest (softmax statistics, masks, P, dS) with the workgroup's threads in
// f32 through shared memory, because VK_KHR_cooperative_matrix defines no
// element-to-lane layout: a fragment's elements are reached only by storing
// it to shared memory.
//
// Every product is [rows x cols] over subgroups (i, j) of the sm x sn grid,
// subgroup (i, j) owning fragments of rows i * fm * mma_m... and columns
// j * fn * mma_n...; q, k, v, dout rows are staged in shared memory as raw
// 16-byte words (rows padded by 8 halves) from buffers bound as words, and
// fragments load from there (column-major loads for the transposed operands).
// A kernel with bf16 operands is written with f16 types holding bf16 bits
// (nothing is computed in f16; tessera-kernels-to-spirv retypes them,
// lowering/SpirvBf16.cpp).
//
// flash_attention: a workgroup per Br query rows of one (b, h). The rows of
// q are loaded once as A fragments (registers). Per block of Bc keys: k and
// v rows staged; S = q kᵀ stored to shared f32; the threads (Br rows, t
// threads per row) apply scale and mask, take the block max and sum (partials
// through shared memory, combined in a fixed order), write P = exp(x - m)
// as halves and the row's rescale factor alpha; each subgroup rescales its O
// fragments by alpha through its scratch fragment and adds P v. At the end
// O / l is stored through the scratch fragment, lse = m + log(l) by threads.
//
// flash_attention_grad (FlashAttention-2, no atomics): a kernel for
// D = rowsum(dout * out) (a scratch buffer), then
//   dq:    a workgroup per Br query rows: q and dout rows as A fragments;
//          per block of Bc keys S = q kᵀ, dP = dout vᵀ, then by threads
//          dS = exp(S scale + mask - lse) (dP - D) as halves; dq += dS k.
//   dk/dv: a workgroup per Br key rows of one (b, kv head): k and v rows as
//          A fragments; over the kv_groups heads and their blocks of Bc
//          queries Sᵀ = k qᵀ, dPᵀ = v doutᵀ, P and dS by threads;
//          dv += P dout, dk += dS q.
// dq and dk are scaled by `scale` at the end.
//
// Fully masked rows behave as in Attention.cpp (m_safe = 0: p = 0, out 0,
// lse = +inf, gradients 0). Rows and keys past the ends are staged as zeros,
// their scores are -inf (keys) or discarded (rows): any T and S are exact.
// Cooperative ops are never under a branch (lavapipe loses cooperative
// stores under branches that differ between subgroups).
#include "compiler/lowering/SpirvBf16.h"
#include "compiler/lowering/kernels/Attention.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/MathExtras.h"

#include <limits>

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr int64_t kPad = 8; // halves of padding per shared row
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Geometry {
  int64_t Br, Bc, D, MM, MN, MK, SGM, SGN, SG;
  int64_t subgroups() const { return SGM * SGN; }
  int64_t threads() const { return subgroups() * SG; }
  int64_t ldD() const { return D + kPad; } // halves per staged row
  int64_t fm() const { return Br / (SGM * MM); }
  int64_t fnBlock() const { return Bc / (SGN * MN); }
  int64_t fnD() const { return D / (SGN * MN); }
  int64_t stageRows() const { return std::max(Br, 2 * Bc); }
  // Forward softmax: threads per row, rows per pass.
  int64_t tpr() const { return std::max<int64_t>(1, threads() / Br); }
  int64_t scratchFloats() const { return subgroups() * MM * MN; }
  int64_t forwardShared() const {
    return stageRows() * ldD() * 2 + Br * Bc * 4 + Br * (Bc + kPad) * 2 + 3 * Br * 4 + 2 * Br * tpr() * 4 +
           scratchFloats() * 4;
  }
  int64_t backwardShared() const {
    return stageRows() * ldD() * 2 + 2 * Br * Bc * 4 + 2 * Br * (Bc + kPad) * 2 + 2 * std::max(Br, Bc) * 4 +
           scratchFloats() * 4;
  }
};

Geometry geometryOf(MatmulConfigAttr c, int64_t D) {
  return {c.tileM(), c.tileN(), D, c.getMma()[0], c.getMma()[1], c.getMma()[2],
          c.getSubgroups()[0], c.getSubgroups()[1], c.subgroupSize()};
}

// A tensor of 16-bit elements read 8 at a time (4 x i32 words).
MemRefType wordsMemRef(Value v) {
  auto t = cast<ShapedType>(v.getType());
  return MemRefType::get({numElements(t.getShape()) / 8}, VectorType::get({4}, IntegerType::get(v.getContext(), 32)));
}
MemRefType flatOf(Value v) { return flatMemRefType(cast<ShapedType>(v.getType())); }

/// An operand of a product in shared memory: element (row, col) of its
/// logical matrix at offset + row * ld + col (col-major: col * ld + row),
/// in halves; `words`: the array holds 16-byte words.
struct Operand {
  Value mem;
  int64_t offset, ld;
  bool words, colMajor;
};

/// The kernels' common pieces: fragments, staging, scratch round trips.
struct CoopBuilder {
  KernelBuilder &kb;
  ImplicitLocOpBuilder &b;
  const Geometry &g;
  bool bf16;
  Type f16, f32, word4;
  gpu::MMAMatrixType aT, bT, cT;
  Value tid, sg, lane, sgm, sgn, zeroWords;

  CoopBuilder(KernelBuilder &kb, const Geometry &g, bool bf16) : kb(kb), b(kb.b), g(g), bf16(bf16) {
    f16 = b.getF16Type(), f32 = b.getF32Type();
    word4 = VectorType::get({4}, b.getI32Type());
    aT = gpu::MMAMatrixType::get({g.MM, g.MK}, f16, "AOp");
    bT = gpu::MMAMatrixType::get({g.MK, g.MN}, f16, "BOp");
    cT = gpu::MMAMatrixType::get({g.MM, g.MN}, f32, "COp");
    if (bf16)
      kb.gpuModule->setAttr(kBf16AsF16Attr, b.getUnitAttr());
    tid = kb.threadId();
    sg = b.create<gpu::SubgroupIdOp>(/*upperBound=*/nullptr);
    lane = b.create<gpu::LaneIdOp>(/*upperBound=*/nullptr);
    sgm = kb.udiv(sg, kb.idx(g.SGN)), sgn = kb.urem(sg, kb.idx(g.SGN));
    zeroWords = b.create<arith::ConstantOp>(word4, DenseElementsAttr::get(cast<VectorType>(word4), 0));
  }

  // The first row / column (within the workgroup's tile) of fragment i / j.
  Value rowOf(int64_t i) { return kb.muli(kb.addi(kb.muli(sgm, g.fm()), i), g.MM); }
  Value colOf(int64_t j, int64_t fn) { return kb.muli(kb.addi(kb.muli(sgn, fn), j), g.MN); }

  Value zeroC() { return b.create<gpu::SubgroupMmaConstantMatrixOp>(cT, kb.f32(0.0)); }

  // An f32 as the kernel's half (bf16 bits in an f16 in a bf16 kernel).
  Value toHalf(Value x) {
    if (bf16)
      return b.create<arith::BitcastOp>(f16, kb.f32ToBf16(x));
    Value lim = kb.f32(65504.0);
    x = b.create<arith::MinimumFOp>(b.create<arith::MaximumFOp>(x, b.create<arith::NegFOp>(lim)), lim);
    return b.create<arith::TruncFOp>(f16, x);
  }

  void subgroupBarrier() {
    b.create<spirv::ControlBarrierOp>(spirv::Scope::Subgroup, spirv::Scope::Subgroup,
                                      spirv::MemorySemantics::AcquireRelease |
                                          spirv::MemorySemantics::WorkgroupMemory);
  }

  Value load(gpu::MMAMatrixType t, const Operand &o, Value row, Value col) {
    Value at = o.colMajor ? kb.add(kb.muli(col, o.ld), row) : kb.add(kb.muli(row, o.ld), col);
    at = kb.addi(at, o.offset);
    if (o.words)
      at = kb.udiv(at, kb.idx(8));
    return b.create<gpu::SubgroupMmaLoadMatrixOp>(t, o.mem, ValueRange{at}, b.getIndexAttr(o.words ? o.ld / 8 : o.ld),
                                                  o.colMajor ? b.getUnitAttr() : UnitAttr());
  }

  /// Rows row0 + r (r < rows; zeros at and past `total`) of D elements of
  /// `mem` (words; row i at element base + i * D) into the staging words at
  /// row offset `at` (rows of ldD halves). All threads; a barrier must follow.
  void stage(Value shared, int64_t atRow, Value mem, Value base, Value row0, int64_t rows, int64_t total) {
    const int64_t perRow = g.D / 8, n = rows * perRow, NT = g.threads();
    for (int64_t j = 0; j < ceilDiv(n, NT); ++j) {
      Value v = kb.addi(tid, j * NT);
      auto body = [&] {
        Value r = kb.udiv(v, kb.idx(perRow)), w = kb.urem(v, kb.idx(perRow));
        Value row = kb.add(row0, r);
        auto ifOp = b.create<scf::IfOp>(TypeRange{word4}, kb.ulti(row, total), true, true);
        {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
          Value at = kb.add(kb.udiv(base, kb.idx(8)), kb.add(kb.muli(row, perRow), w));
          b.create<scf::YieldOp>(ValueRange{b.create<memref::LoadOp>(mem, ValueRange{at})});
          b.setInsertionPointToStart(&ifOp.getElseRegion().front());
          b.create<scf::YieldOp>(ValueRange{zeroWords});
        }
        Value to = kb.add(kb.idx(atRow * g.ldD() / 8), kb.add(kb.muli(r, g.ldD() / 8), w));
        b.create<memref::StoreOp>(ifOp.getResult(0), shared, ValueRange{to});
      };
      if (n % NT)
        kb.ifThen(kb.ulti(v, n), body);
      else
        body();
    }
  }

  /// The subgroup's A fragments [fm][D / MK] of staged rows (row offset atRow).
  SmallVector<Value> rowFragments(Value shared, int64_t atRow) {
    Operand o{shared, atRow * g.ldD(), g.ldD(), true, false};
    SmallVector<Value> out;
    for (int64_t i = 0; i < g.fm(); ++i)
      for (int64_t ks = 0; ks < g.D / g.MK; ++ks)
        out.push_back(load(aT, o, rowOf(i), kb.idx(ks * g.MK)));
    return out;
  }

  /// acc [fm][fn] += A [rows x K] * B [K x cols], A's fragment (i, ks) from `a`.
  SmallVector<Value> mma(ArrayRef<Value> acc, const std::function<Value(int64_t, int64_t)> &a, const Operand &bOp,
                         int64_t K, int64_t fn) {
    SmallVector<Value> out(acc.begin(), acc.end());
    for (int64_t ks = 0; ks < K / g.MK; ++ks) {
      SmallVector<Value> bf;
      for (int64_t j = 0; j < fn; ++j)
        bf.push_back(load(bT, bOp, kb.idx(ks * g.MK), colOf(j, fn)));
      for (int64_t i = 0; i < g.fm(); ++i) {
        Value af = a(i, ks);
        for (int64_t j = 0; j < fn; ++j)
          out[i * fn + j] = b.create<gpu::SubgroupMmaComputeOp>(cT, af, bf[j], out[i * fn + j], UnitAttr(), UnitAttr());
      }
    }
    return out;
  }
  SmallVector<Value> zeros(int64_t n) { return SmallVector<Value>(n, zeroC()); }
  /// The A fragments of a half array [rows][ld] in shared memory.
  std::function<Value(int64_t, int64_t)> halfRows(Value mem, int64_t ld) {
    return [this, mem, ld](int64_t i, int64_t ks) { return load(aT, Operand{mem, 0, ld, false, false}, rowOf(i), kb.idx(ks * g.MK)); };
  }

  void storeTile(ArrayRef<Value> acc, int64_t fn, Value mem, int64_t ld) {
    for (int64_t i = 0; i < g.fm(); ++i)
      for (int64_t j = 0; j < fn; ++j) {
        Value at = kb.add(kb.muli(rowOf(i), ld), colOf(j, fn));
        b.create<gpu::SubgroupMmaStoreMatrixOp>(acc[i * fn + j], mem, ValueRange{at}, b.getIndexAttr(ld), UnitAttr());
      }
  }

  /// Each element x of fragment `frag` (its first row / column row0, col0)
  /// through the subgroup's scratch fragment: f(row, col, x) per lane; with
  /// `update`, the values f returns are loaded back as the result.
  Value elements(Value frag, Value scratch, Value row0, Value col0, bool update,
                 const std::function<Value(Value, Value, Value)> &f) {
    Value mine = kb.muli(sg, g.MM * g.MN);
    b.create<gpu::SubgroupMmaStoreMatrixOp>(frag, scratch, ValueRange{mine}, b.getIndexAttr(g.MN), UnitAttr());
    subgroupBarrier();
    kb.forLoop(lane, kb.idx(g.MM * g.MN), kb.idx(g.SG), [&](Value e) {
      Value r = kb.add(row0, kb.udiv(e, kb.idx(g.MN))), c = kb.add(col0, kb.urem(e, kb.idx(g.MN)));
      Value at = kb.add(mine, e);
      Value y = f(r, c, kb.load(scratch, at));
      if (update)
        kb.store(y, scratch, at);
    });
    subgroupBarrier();
    if (!update)
      return frag;
    Value out = b.create<gpu::SubgroupMmaLoadMatrixOp>(cT, scratch, ValueRange{mine}, b.getIndexAttr(g.MN), UnitAttr());
    subgroupBarrier(); // every lane has loaded before the next store
    return out;
  }
};

Value isNegInf(KernelBuilder &kb, Value x) {
  return kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, x, kb.f32(-kInf));
}
Value uminI(KernelBuilder &kb, Value a, int64_t c) { return kb.select(kb.ulti(a, c), a, kb.idx(c)); }

std::string coopKey(Operation *op) { return opKey(op) + " coopmat"; }

} // namespace

bool attentionCoopMatApplies(const LoweringContext &ctx, Operation *op, MatmulConfigAttr c, std::string *why) {
  auto no = [&](const std::string &w) {
    if (why)
      *why = w;
    return false;
  };
  if (!c || !c.isCoopMat())
    return no("no coopmat config");
  const bool grad = isa<FlashAttentionGradOp>(op);
  Type want = c.getOperands();
  // q, k, v (and out, dout) in the operand type; no f16 anywhere in a bf16
  // kernel (its f16 types mean bf16).
  SmallVector<unsigned> operands = {0, 1, 2};
  if (grad)
    operands.append({3, 5});
  for (unsigned i : operands)
    if (getElementTypeOrSelf(op->getOperand(i).getType()) != want)
      return no("operands are not " + std::string(want.isBF16() ? "bf16" : "f16"));
  if (want.isBF16()) {
    SmallVector<Type> all(op->getOperandTypes());
    all.append(op->getResultTypes().begin(), op->getResultTypes().end());
    for (Type t : all)
      if (getElementTypeOrSelf(t).isF16())
        return no("an f16 tensor in a bf16 kernel");
  }
  Value mask = grad ? cast<FlashAttentionGradOp>(op).getMask() : cast<FlashAttentionOp>(op).getMask();
  int64_t groups = grad ? cast<FlashAttentionGradOp>(op).getKvGroups() : cast<FlashAttentionOp>(op).getKvGroups();
  AttentionShape s = attentionShape(op->getOperand(0), op->getOperand(1), mask, groups);
  if (s.B * s.H * s.T == 0 || s.S == 0)
    return no("empty");
  Geometry g = geometryOf(c, s.D);
  if (g.MM % 8 || g.MN % 8 || g.MK % 8)
    return no("fragments of multiples of 8 (16-byte rows)");
  if (!llvm::isPowerOf2_64(g.Br) || !llvm::isPowerOf2_64(g.threads()) || g.Bc % g.tpr())
    return no("power-of-two rows and threads");
  if (g.Br % (g.SGM * g.MM) || g.Bc % (g.SGN * g.MN) || g.Bc % g.MK || s.D % g.MK || s.D % (g.SGN * g.MN))
    return no("head dim " + std::to_string(s.D) + " or blocks do not tile");
  int64_t shared = grad ? g.backwardShared() : g.forwardShared();
  auto env = dyn_cast_or_null<spirv::TargetEnvAttr>(ctx.targetEnv);
  int64_t limit = env ? env.getResourceLimits().getMaxComputeSharedMemorySize() : 16384;
  if (shared > limit)
    return no(std::to_string(shared) + " bytes of shared memory");
  return true;
}

FailureOr<OpLowering> lowerFlashAttentionCoopMat(LoweringContext &ctx, FlashAttentionOp op, MatmulConfigAttr config) {
  AttentionShape s = attentionShape(op.getQuery(), op.getKey(), op.getMask(), op.getKvGroups());
  const Geometry g = geometryOf(config, s.D);
  const double scale = op.getScale().convertToDouble();
  const bool bf16 = config.getOperands().isBF16();
  const int64_t perHead = ceilDiv(s.T, g.Br), items = s.B * s.H * perHead;
  const int64_t groups = std::min(items, ctx.maxWorkgroupCount);
  const unsigned nIn = op->getNumOperands();
  SmallVector<Type> args = {wordsMemRef(op.getQuery()), wordsMemRef(op.getKey()), wordsMemRef(op.getValue())};
  if (s.hasMask)
    args.push_back(flatOf(op.getMask()));
  for (Value v : op->getResults())
    args.push_back(flatOf(v));
  SmallVector<unsigned> slots;
  for (unsigned i = 0; i < args.size(); ++i)
    slots.push_back(i);

  KernelHandle k = ctx.getOrCreate("flash_attention_coopmat", coopKey(op), args, {g.threads(), 1, 1},
                                   [&](KernelBuilder &kb) {
    CoopBuilder c(kb, g, bf16);
    Value q = kb.arg(0), key = kb.arg(1), val = kb.arg(2), mask = s.hasMask ? kb.arg(3) : Value();
    Value out = kb.arg(nIn), lse = kb.arg(nIn + 1);
    Type f32 = c.f32;
    const int64_t Br = g.Br, Bc = g.Bc, NT = g.threads(), tpr = g.tpr(), perPass = NT / tpr;
    const int64_t fm = g.fm(), fnB = g.fnBlock(), fnD = g.fnD(), ldP = Bc + kPad;
    Value stage = kb.sharedArray(g.stageRows() * g.ldD() / 8, c.word4);
    Value ss = kb.sharedArray(Br * Bc, f32), ps = kb.sharedArray(Br * ldP, c.f16);
    Value mS = kb.sharedArray(Br, f32), lS = kb.sharedArray(Br, f32), aS = kb.sharedArray(Br, f32);
    Value red = kb.sharedArray(2 * Br * tpr, f32);
    Value scratch = kb.sharedArray(g.scratchFloats(), f32);
    Value tid = c.tid, part = kb.urem(tid, kb.idx(tpr));
    // The rows this thread works on in the softmax (one per pass).
    SmallVector<Value> myRows;
    for (int64_t p = 0; p < Br / perPass; ++p)
      myRows.push_back(kb.addi(kb.udiv(tid, kb.idx(tpr)), p * perPass));
    workgroupLoop(kb, items, groups, [&](Value item) {
      Value bh = kb.udiv(item, kb.idx(perHead)), t0 = kb.muli(kb.urem(item, kb.idx(perHead)), Br);
      Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
      Value qBase = kb.muli(bh, s.T * s.D);
      Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
      c.stage(stage, 0, q, qBase, t0, Br, s.T);
      kb.forLoop(tid, kb.idx(Br), kb.idx(NT), [&](Value r) {
        kb.store(kb.f32(-kInf), mS, r);
        kb.store(kb.f32(0.0), lS, r);
      });
      kb.barrier();
      SmallVector<Value> qf = c.rowFragments(stage, 0);
      kb.barrier(); // the staging area takes k and v next
      const int64_t kSteps = g.D / g.MK;
      SmallVector<Value> o = kb.forLoopIter(
          kb.idx(0), kb.idx(s.S), kb.idx(Bc), c.zeros(fm * fnD), [&](Value k0, ValueRange acc) -> SmallVector<Value> {
            c.stage(stage, 0, key, kvBase, k0, Bc, s.S);
            c.stage(stage, Bc, val, kvBase, k0, Bc, s.S);
            kb.barrier();
            // S = q kᵀ (k rows as a column-major B).
            SmallVector<Value> sf = c.mma(c.zeros(fm * fnB), [&](int64_t i, int64_t ks) { return qf[i * kSteps + ks]; },
                                          Operand{stage, 0, g.ldD(), true, true}, g.D, fnB);
            c.storeTile(sf, fnB, ss, Bc);
            kb.barrier();
            // Scores (scale, mask, keys past the end) and the block max.
            for (Value r : myRows) {
              Value tC = uminI(kb, kb.add(t0, r), s.T - 1);
              Value mx = kb.forLoopIter(part, kb.idx(Bc), kb.idx(tpr), ValueRange{kb.f32(-kInf)},
                                        [&](Value col, ValueRange it) -> SmallVector<Value> {
                                          Value kIdx = kb.add(k0, col), at = kb.add(kb.muli(r, Bc), col);
                                          Value x = kb.fmul(kb.load(ss, at), kb.f32(scale));
                                          if (mask)
                                            x = kb.fadd(x, kb.load(mask, attentionMaskAt(kb, s, b, h, tC,
                                                                                         uminI(kb, kIdx, s.S - 1))));
                                          x = kb.select(kb.ulti(kIdx, s.S), x, kb.f32(-kInf));
                                          kb.store(x, ss, at);
                                          return {kb.fmax(it[0], x)};
                                        })[0];
              kb.store(mx, red, kb.add(kb.muli(r, tpr), part));
            }
            kb.barrier();
            // The row's new max (partials in a fixed order: every thread of the row agrees).
            auto rowMax = [&](Value r) {
              Value m = kb.load(mS, r);
              for (int64_t i = 0; i < tpr; ++i)
                m = kb.fmax(m, kb.load(red, kb.addi(kb.muli(r, tpr), i)));
              return m;
            };
            auto safe = [&](Value m) { return kb.select(isNegInf(kb, m), kb.f32(0.0), m); };
            for (Value r : myRows) {
              Value mSafe = safe(rowMax(r));
              Value sum = kb.forLoopIter(part, kb.idx(Bc), kb.idx(tpr), ValueRange{kb.f32(0.0)},
                                         [&](Value col, ValueRange it) -> SmallVector<Value> {
                                           Value p = kb.b.create<math::ExpOp>(
                                               kb.fsub(kb.load(ss, kb.add(kb.muli(r, Bc), col)), mSafe));
                                           kb.b.create<memref::StoreOp>(c.toHalf(p), ps,
                                                                        ValueRange{kb.add(kb.muli(r, ldP), col)});
                                           return {kb.fadd(it[0], p)};
                                         })[0];
              kb.store(sum, red, kb.add(kb.idx(Br * tpr), kb.add(kb.muli(r, tpr), part)));
            }
            kb.barrier();
            auto update = [&](Value r) {
              Value mOld = kb.load(mS, r), mNew = rowMax(r), mSafe = safe(mNew);
              Value bl = kb.f32(0.0);
              for (int64_t i = 0; i < tpr; ++i)
                bl = kb.fadd(bl, kb.load(red, kb.addi(kb.add(kb.idx(Br * tpr), kb.muli(r, tpr)), i)));
              Value alpha = kb.b.create<math::ExpOp>(kb.fsub(mOld, mSafe));
              kb.store(kb.fma(kb.load(lS, r), alpha, bl), lS, r);
              kb.store(mNew, mS, r);
              kb.store(alpha, aS, r);
            };
            for (Value r : myRows) {
              if (tpr > 1)
                kb.ifThen(kb.ulti(part, 1), [&] { update(r); });
              else
                update(r);
            }
            kb.barrier();
            // O = alpha O + P v.
            SmallVector<Value> next;
            for (int64_t i = 0; i < fm; ++i)
              for (int64_t j = 0; j < fnD; ++j)
                next.push_back(c.elements(acc[i * fnD + j], scratch, c.rowOf(i), c.colOf(j, fnD), true,
                                          [&](Value r, Value, Value x) { return kb.fmul(x, kb.load(aS, r)); }));
            next = c.mma(next, c.halfRows(ps, ldP), Operand{stage, Bc * g.ldD(), g.ldD(), true, false}, Bc, fnD);
            kb.barrier(); // staging, scores and P are rewritten by the next block
            return next;
          });
      for (int64_t i = 0; i < fm; ++i)
        for (int64_t j = 0; j < fnD; ++j)
          c.elements(o[i * fnD + j], scratch, c.rowOf(i), c.colOf(j, fnD), false, [&](Value r, Value col, Value x) {
            Value t = kb.add(t0, r);
            kb.ifThen(kb.ulti(t, s.T), [&] {
              Value l = kb.load(lS, r);
              Value empty = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, l, kb.f32(0.0));
              Value inv = kb.select(empty, kb.f32(0.0), kb.fdiv(kb.f32(1.0), l));
              kb.store(kb.fmul(x, inv), out, kb.add(qBase, kb.add(kb.muli(t, s.D), col)));
            });
            return x;
          });
      kb.forLoop(tid, kb.idx(Br), kb.idx(NT), [&](Value r) {
        Value t = kb.add(t0, r);
        kb.ifThen(kb.ulti(t, s.T), [&] {
          Value m = kb.load(mS, r), l = kb.load(lS, r);
          Value empty = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OEQ, l, kb.f32(0.0));
          Value mSafe = kb.select(isNegInf(kb, m), kb.f32(0.0), m);
          Value v = kb.select(empty, kb.f32(kInf), kb.fadd(mSafe, kb.b.create<math::LogOp>(l)));
          kb.store(v, lse, kb.add(kb.muli(bh, s.T), t));
        });
      });
      kb.barrier(); // staging and statistics are rewritten by the next item
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
  OpLowering lowering;
  lowering.steps.push_back({k, slots});
  return lowering;
}

FailureOr<OpLowering> lowerFlashAttentionGradCoopMat(LoweringContext &ctx, FlashAttentionGradOp op,
                                                     MatmulConfigAttr config) {
  AttentionShape s = attentionShape(op.getQuery(), op.getKey(), op.getMask(), op.getKvGroups());
  const Geometry g = geometryOf(config, s.D);
  const double scale = op.getScale().convertToDouble();
  const bool bf16 = config.getOperands().isBF16();
  const unsigned nIn = op->getNumOperands(); // q k v out lse dout [mask]
  const unsigned deltaSlot = nIn + 3;        // after dq, dk, dv
  OpLowering lowering;
  const int64_t rows = s.B * s.H * s.T;
  MemRefType deltaT = MemRefType::get({rows}, Float32Type::get(op.getContext()));
  lowering.scratch.push_back({deltaT, "delta"});

  // D = rowsum(dout * out), one thread per row.
  {
    const int64_t wg = std::max<int64_t>(ctx.elementwiseWorkgroup, 1);
    const int64_t groups = gridGroups(rows, wg, ctx.maxWorkgroupCount);
    SmallVector<Type> args = {flatOf(op.getOut()), flatOf(op.getDout()), deltaT};
    KernelHandle k = ctx.getOrCreate("flash_attention_delta", opKey(op), args, {wg, 1, 1}, [&](KernelBuilder &kb) {
      Value o = kb.arg(0), dout = kb.arg(1), delta = kb.arg(2);
      kb.gridStrideLoop(rows, wg, groups, [&](Value row) {
        Value base = kb.muli(row, s.D);
        Value sum = kb.forLoopIter(kb.idx(0), kb.idx(s.D), kb.idx(1), ValueRange{kb.f32(0.0)},
                                   [&](Value d, ValueRange it) -> SmallVector<Value> {
                                     Value i = kb.add(base, d);
                                     return {kb.fma(kb.load(dout, i), kb.load(o, i), it[0])};
                                   })[0];
        kb.store(sum, delta, row);
      });
      return std::array<int64_t, 3>{groups, 1, 1};
    });
    lowering.steps.push_back({k, {3, 5, deltaSlot}});
  }

  // dq (dkv = false) and dk/dv (dkv = true): the workgroup's Br rows (queries
  // / keys) give the A fragments x1, x2 (q, dout / k, v); the blocks of Bc
  // (keys / queries) are staged as y1, y2 (k, v / q, dout).
  auto gradKernel = [&](bool dkv) {
    const int64_t rowsTotal = dkv ? s.S : s.T, perHead = ceilDiv(rowsTotal, g.Br);
    const int64_t items = s.B * (dkv ? s.KH : s.H) * perHead;
    const int64_t groups = std::min(items, ctx.maxWorkgroupCount);
    // q k v dout (words), lse, delta, [mask], results.
    SmallVector<Type> args = {wordsMemRef(op.getQuery()), wordsMemRef(op.getKey()), wordsMemRef(op.getValue()),
                              wordsMemRef(op.getDout()), flatOf(op.getLse()), deltaT};
    SmallVector<unsigned> slots = {0, 1, 2, 5, 4, deltaSlot};
    if (s.hasMask)
      args.push_back(flatOf(op.getMask())), slots.push_back(6);
    const unsigned firstResult = args.size();
    if (dkv) {
      args.push_back(flatOf(op.getDkey())), slots.push_back(nIn + 1);
      args.push_back(flatOf(op.getDvalue())), slots.push_back(nIn + 2);
    } else {
      args.push_back(flatOf(op.getDquery())), slots.push_back(nIn);
    }
    KernelHandle k = ctx.getOrCreate(dkv ? "flash_attention_dkv_coopmat" : "flash_attention_dq_coopmat", coopKey(op),
                                     args, {g.threads(), 1, 1}, [&](KernelBuilder &kb) {
      CoopBuilder c(kb, g, bf16);
      Value q = kb.arg(0), key = kb.arg(1), val = kb.arg(2), dout = kb.arg(3), lse = kb.arg(4), delta = kb.arg(5);
      Value mask = s.hasMask ? kb.arg(6) : Value();
      Type f32 = c.f32;
      const int64_t Br = g.Br, Bc = g.Bc, NT = g.threads(), fm = g.fm(), fnB = g.fnBlock(), fnD = g.fnD();
      const int64_t ldH = Bc + kPad, kSteps = g.D / g.MK, nStat = std::max(Br, Bc);
      Value stage = kb.sharedArray(g.stageRows() * g.ldD() / 8, c.word4);
      Value ss = kb.sharedArray(Br * Bc, f32), dps = kb.sharedArray(Br * Bc, f32);
      Value ph = dkv ? kb.sharedArray(Br * ldH, c.f16) : Value(), dsh = kb.sharedArray(Br * ldH, c.f16);
      Value lseS = kb.sharedArray(nStat, f32), dS = kb.sharedArray(nStat, f32);
      Value scratch = kb.sharedArray(g.scratchFloats(), f32);
      Value tid = c.tid;
      workgroupLoop(kb, items, groups, [&](Value item) {
        Value bx = kb.udiv(item, kb.idx(perHead)), r0 = kb.muli(kb.urem(item, kb.idx(perHead)), Br);
        Value b = kb.udiv(bx, kb.idx(dkv ? s.KH : s.H)), hx = kb.urem(bx, kb.idx(dkv ? s.KH : s.H));
        Value xBase = kb.muli(bx, rowsTotal * s.D);
        // The rows' A fragments, one tensor at a time through the staging area.
        auto fragmentsOf = [&](Value mem) {
          c.stage(stage, 0, mem, xBase, r0, Br, rowsTotal);
          kb.barrier();
          SmallVector<Value> f = c.rowFragments(stage, 0);
          kb.barrier();
          return f;
        };
        SmallVector<Value> x1 = fragmentsOf(dkv ? key : q), x2 = fragmentsOf(dkv ? val : dout);
        // Per query row t (clamped) of head h: lse and D into shared [n].
        auto stageStats = [&](Value headRow, Value first, int64_t n) {
          kb.forLoop(tid, kb.idx(n), kb.idx(NT), [&](Value i) {
            Value t = kb.add(first, i), tC = uminI(kb, t, s.T - 1), valid = kb.ulti(t, s.T);
            Value at = kb.add(headRow, tC);
            kb.store(kb.select(valid, kb.load(lse, at), kb.f32(kInf)), lseS, i);
            kb.store(kb.select(valid, kb.load(delta, at), kb.f32(0.0)), dS, i);
          });
        };
        // One block: products into ss / dps, then the elementwise part, then the accumulation.
        auto block = [&](Value h, Value y0, Value yBase, int64_t yTotal, ValueRange acc) -> SmallVector<Value> {
          c.stage(stage, 0, dkv ? q : key, yBase, y0, Bc, yTotal);
          c.stage(stage, Bc, dkv ? dout : val, yBase, y0, Bc, yTotal);
          kb.barrier();
          auto fragOf = [&](ArrayRef<Value> x) {
            return [x, kSteps](int64_t i, int64_t ks) { return x[i * kSteps + ks]; };
          };
          SmallVector<Value> sf = c.mma(c.zeros(fm * fnB), fragOf(x1), Operand{stage, 0, g.ldD(), true, true}, g.D, fnB);
          SmallVector<Value> pf =
              c.mma(c.zeros(fm * fnB), fragOf(x2), Operand{stage, Bc * g.ldD(), g.ldD(), true, true}, g.D, fnB);
          c.storeTile(sf, fnB, ss, Bc);
          c.storeTile(pf, fnB, dps, Bc);
          kb.barrier();
          kb.forLoop(tid, kb.idx(Br * Bc), kb.idx(NT), [&](Value e) {
            Value r = kb.udiv(e, kb.idx(Bc)), col = kb.urem(e, kb.idx(Bc));
            Value qi = dkv ? col : r; // the query's index in its block / rows
            Value t = dkv ? kb.add(y0, col) : kb.add(r0, r), kIdx = dkv ? kb.add(r0, r) : kb.add(y0, col);
            Value x = kb.fmul(kb.load(ss, e), kb.f32(scale));
            if (mask)
              x = kb.fadd(x, kb.load(mask, attentionMaskAt(kb, s, b, h, uminI(kb, t, s.T - 1),
                                                           uminI(kb, kIdx, s.S - 1))));
            Value valid = kb.andi(kb.ulti(kIdx, s.S), kb.ulti(t, s.T));
            Value p = kb.select(valid, kb.b.create<math::ExpOp>(kb.fsub(x, kb.load(lseS, qi))), kb.f32(0.0));
            Value ds = kb.select(valid, kb.fmul(p, kb.fsub(kb.load(dps, e), kb.load(dS, qi))), kb.f32(0.0));
            Value at = kb.add(kb.muli(r, ldH), col);
            if (dkv)
              kb.b.create<memref::StoreOp>(c.toHalf(p), ph, ValueRange{at});
            kb.b.create<memref::StoreOp>(c.toHalf(ds), dsh, ValueRange{at});
          });
          kb.barrier();
          SmallVector<Value> next(acc.begin(), acc.end());
          if (dkv) { // acc: dk [fm][fnD], then dv
            ArrayRef<Value> all(next);
            SmallVector<Value> dk = c.mma(all.take_front(fm * fnD), c.halfRows(dsh, ldH),
                                          Operand{stage, 0, g.ldD(), true, false}, Bc, fnD);
            SmallVector<Value> dv = c.mma(all.drop_front(fm * fnD), c.halfRows(ph, ldH),
                                          Operand{stage, Bc * g.ldD(), g.ldD(), true, false}, Bc, fnD);
            next = dk;
            next.append(dv);
          } else {
            next = c.mma(next, c.halfRows(dsh, ldH), Operand{stage, 0, g.ldD(), true, false}, Bc, fnD);
          }
          kb.barrier(); // staging and tiles are rewritten by the next block
          return next;
        };
        SmallVector<Value> acc;
        if (!dkv) {
          Value headRow = kb.muli(bx, s.T);
          stageStats(headRow, r0, Br); // published by the first block's barrier
          Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(hx, kb.idx(s.G))), s.S * s.D);
          acc = kb.forLoopIter(kb.idx(0), kb.idx(s.S), kb.idx(Bc), c.zeros(fm * fnD),
                               [&](Value k0, ValueRange a) { return block(hx, k0, kvBase, s.S, a); });
        } else {
          acc = kb.forLoopIter(
              kb.idx(0), kb.idx(s.G), kb.idx(1), c.zeros(2 * fm * fnD), [&](Value gi, ValueRange ag) {
                Value h = kb.add(kb.muli(hx, s.G), gi);
                Value headRow = kb.muli(kb.add(kb.muli(b, s.H), h), s.T);
                return kb.forLoopIter(kb.idx(0), kb.idx(s.T), kb.idx(Bc), ag, [&](Value t0, ValueRange at) {
                  stageStats(headRow, t0, Bc); // published by the block's first barrier
                  return block(h, t0, kb.muli(headRow, s.D), s.T, at);
                });
              });
        }
        // Results: the rows inside the tensor, dq and dk scaled.
        for (unsigned res = 0; res < (dkv ? 2u : 1u); ++res) {
          Value dst = kb.arg(firstResult + res);
          double mul = res == 0 ? scale : 1.0;
          for (int64_t i = 0; i < fm; ++i)
            for (int64_t j = 0; j < fnD; ++j)
              c.elements(acc[res * fm * fnD + i * fnD + j], scratch, c.rowOf(i), c.colOf(j, fnD), false,
                         [&](Value r, Value col, Value x) {
                           Value row = kb.add(r0, r);
                           kb.ifThen(kb.ulti(row, rowsTotal), [&] {
                             kb.store(kb.fmul(x, kb.f32(mul)), dst, kb.add(xBase, kb.add(kb.muli(row, s.D), col)));
                           });
                           return x;
                         });
        }
        kb.barrier(); // staging is rewritten by the next item
      });
      return std::array<int64_t, 3>{groups, 1, 1};
    });
    lowering.steps.push_back({k, slots});
  };
  gradKernel(false);
  gradKernel(true);
  return lowering;
}

} // namespace tessera::lowering
