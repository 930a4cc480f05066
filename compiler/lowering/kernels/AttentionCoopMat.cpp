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

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr int64_t kPad = 8; // halves of padding per shared row
constexpr double kInf = std::numeric_limits<double>::infinity();
// Mask values at or below this are dead: -inf, or finfo.min as Hugging Face
// masks. Distinct floats this large differ by more than 1e22, so a dead
// term next to a live one is exp(-1e22) = 0 exactly.
constexpr double kDead = -1e30;
// The forward moves a row's reference max only when a block's max exceeds it
// by more than this (P <= 256 in the half operand).
const double kLnRescale = std::log(256.0);

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
    return stageRows() * ldD() * 2 + Br * (Bc + 4) * 4 + Br * (Bc + kPad) * 2 + 3 * Br * 4 + 2 * Br * tpr() * 4 +
           scratchFloats() * 4 + 3 * subgroups() * 4; // votes
  }
  int64_t backwardShared() const {
    return stageRows() * ldD() * 2 + 2 * Br * Bc * 4 + 2 * Br * (Bc + kPad) * 2 + 2 * std::max(Br, Bc) * 4 +
           scratchFloats() * 4 + 2 * subgroups() * 4; // votes
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
  /// The loads are unconditional (rows clamped into the tensor, zeros
  /// selected after): a load under a branch waits for the one before it.
  void stage(Value shared, int64_t atRow, Value mem, Value base, Value row0, int64_t rows, int64_t total) {
    const int64_t perRow = g.D / 8, n = rows * perRow, NT = g.threads();
    SmallVector<std::pair<Value, Value>> loaded; // (value, shared index)
    auto load = [&](Value v) {
      Value r = kb.udiv(v, kb.idx(perRow)), w = kb.urem(v, kb.idx(perRow));
      Value row = kb.add(row0, r);
      Value rowC = b.create<arith::MinUIOp>(row, kb.idx(total - 1));
      Value at = kb.add(kb.udiv(base, kb.idx(8)), kb.add(kb.muli(rowC, perRow), w));
      Value word = b.create<arith::SelectOp>(kb.ulti(row, total), b.create<memref::LoadOp>(mem, ValueRange{at}),
                                             zeroWords);
      return std::make_pair(word, kb.add(kb.idx(atRow * g.ldD() / 8), kb.add(kb.muli(r, g.ldD() / 8), w)));
    };
    // Every load first, then the stores: the loads are in flight together.
    for (int64_t j = 0; j < n / NT; ++j)
      loaded.push_back(load(kb.addi(tid, j * NT)));
    for (auto &[word, to] : loaded)
      b.create<memref::StoreOp>(word, shared, ValueRange{to});
    if (n % NT) {
      Value v = kb.addi(tid, (n / NT) * NT);
      kb.ifThen(kb.ulti(v, n), [&] {
        auto [word, to] = load(v);
        b.create<memref::StoreOp>(word, shared, ValueRange{to});
      });
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

  /// `then` when `cond` (workgroup-uniform), else `acc` as it is: a block
  /// that is skipped, a rescale that is not needed.
  SmallVector<Value> onlyIf(Value cond, ValueRange acc, const std::function<SmallVector<Value>()> &then) {
    return kb.ifElseValues(cond, acc.getTypes(), then, [&] { return SmallVector<Value>(acc.begin(), acc.end()); });
  }

  /// This thread's j-th element (e, row r, column col) of a [Br x Bc] block,
  /// columns fastest; `inShare` runs f for it when the block has one (the
  /// last share may be partial).
  int64_t shares() const { return ceilDiv(g.Br * g.Bc, g.threads()); }
  void element(int64_t j, Value &e, Value &r, Value &col) {
    e = kb.addi(tid, j * g.threads()), r = kb.udiv(e, kb.idx(g.Bc)), col = kb.urem(e, kb.idx(g.Bc));
  }
  void inShare(int64_t j, const std::function<void()> &f) {
    const int64_t nE = g.Br * g.Bc;
    if (nE % g.threads() && j == shares() - 1)
      kb.ifThen(kb.ulti(kb.addi(tid, j * g.threads()), nE), f);
    else
      f();
  }

  /// Whether `mine` holds for any thread of the workgroup: a subgroup sum
  /// into votes[at + subgroup], a barrier, then every thread reads them all
  /// (the same answer everywhere: a workgroup-uniform branch may follow).
  Value anyInWorkgroup(Value mine, Value votes, Value at) {
    Value one = kb.select(mine, kb.f32(1.0), kb.f32(0.0));
    Value sum = b.create<gpu::SubgroupReduceOp>(one, gpu::AllReduceOperation::ADD, /*uniform=*/false);
    kb.ifThen(b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, lane, kb.idx(0)),
              [&] { kb.store(sum, votes, kb.add(at, sg)); });
    kb.barrier();
    Value all = kb.f32(0.0);
    for (int64_t i = 0; i < g.subgroups(); ++i)
      all = kb.fadd(all, kb.load(votes, kb.addi(at, i)));
    return b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, all, kb.f32(0.5));
  }
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
// A mask value (or max) above the dead level; NaN counts as live.
Value isLive(KernelBuilder &kb, Value x) {
  return kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::UGT, x, kb.f32(kDead));
}
Value uminI(KernelBuilder &kb, Value a, int64_t c) { return kb.select(kb.ulti(a, c), a, kb.idx(c)); }

std::string coopKey(Operation *op, const AttentionShape &s) {
  return opKey(op) + " coopmat" + (s.band ? " band " + std::to_string(*s.band) : "");
}

// Whether key kIdx is in query t's band (window w, -1 causal).
Value inBand(KernelBuilder &kb, const AttentionShape &s, Value t, Value kIdx) {
  Value causal = kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::ule, kIdx, t);
  return *s.band < 0 ? causal : kb.andi(causal, kb.ult(t, kb.addi(kIdx, *s.band)));
}

// Whether the queries [t0, t0 + tn) and keys [k0, k0 + kn) hold a pair in
// the band (0 <= t - k < window): t - k takes every value between its ends.
Value blockInBand(KernelBuilder &kb, const AttentionShape &s, Value t0, int64_t tn, Value k0, int64_t kn) {
  // The largest t - k >= 0,
  Value reach = kb.ult(k0, kb.addi(t0, tn));
  if (*s.band < 0)
    return reach;
  // and the first query < the last key + window.
  return kb.andi(reach, kb.ult(t0, kb.addi(k0, kn - 1 + *s.band)));
}

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

  KernelHandle k = ctx.getOrCreate("flash_attention_coopmat", coopKey(op, s), args, {g.threads(), 1, 1},
                                   [&](KernelBuilder &kb) {
    CoopBuilder c(kb, g, bf16);
    // A band mask is never read: the blocks outside it are not visited, the
    // keys inside masked by index.
    Value q = kb.arg(0), key = kb.arg(1), val = kb.arg(2), mask = s.hasMask && !s.band ? kb.arg(3) : Value();
    Value out = kb.arg(nIn), lse = kb.arg(nIn + 1);
    Type f32 = c.f32;
    const int64_t Br = g.Br, Bc = g.Bc, NT = g.threads(), tpr = g.tpr(), perPass = NT / tpr;
    const int64_t fm = g.fm(), fnB = g.fnBlock(), fnD = g.fnD(), ldP = Bc + kPad;
    Value stage = kb.sharedArray(g.stageRows() * g.ldD() / 8, c.word4);
    // Scores' rows padded by 4 floats: the row-wise passes' lanes (one row
    // each) hit different banks.
    const int64_t ldS = Bc + 4;
    Value ss = kb.sharedArray(Br * ldS, f32), ps = kb.sharedArray(Br * ldP, c.f16);
    Value mS = kb.sharedArray(Br, f32), lS = kb.sharedArray(Br, f32), aS = kb.sharedArray(Br, f32);
    Value red = kb.sharedArray(2 * Br * tpr, f32);
    Value scratch = kb.sharedArray(g.scratchFloats(), f32);
    // Per-subgroup votes: whether a block has a live mask value (two sets,
    // alternating by block), whether a row's O needs rescaling.
    Value votes = kb.sharedArray(3 * g.subgroups(), f32);
    Value tid = c.tid, part = kb.urem(tid, kb.idx(tpr));
    // The rows this thread works on in the softmax (one per pass).
    SmallVector<Value> myRows;
    for (int64_t p = 0; p < Br / perPass; ++p)
      myRows.push_back(kb.addi(kb.udiv(tid, kb.idx(tpr)), p * perPass));
    const int64_t nE = Br * Bc, perT = c.shares();
    workgroupLoop(kb, items, groups, [&](Value item) {
      Value bh = kb.udiv(item, kb.idx(perHead)), t0 = kb.muli(kb.urem(item, kb.idx(perHead)), Br);
      Value b = kb.udiv(bh, kb.idx(s.H)), h = kb.urem(bh, kb.idx(s.H));
      Value qBase = kb.muli(bh, s.T * s.D);
      Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(h, kb.idx(s.G))), s.S * s.D);
      c.stage(stage, 0, q, qBase, t0, Br, s.T);
      auto resetStats = [&] {
        kb.forLoop(tid, kb.idx(Br), kb.idx(NT), [&](Value r) {
          kb.store(kb.f32(-kInf), mS, r);
          kb.store(kb.f32(0.0), lS, r);
        });
      };
      resetStats();
      kb.barrier();
      SmallVector<Value> qf = c.rowFragments(stage, 0);
      kb.barrier(); // the staging area takes k and v next
      const int64_t kSteps = g.D / g.MK;
      // Blocks are shared out key-fast (c.element): the mask's rows are read coalesced.
      // One block of Bc keys: k, v staged, S = q kᵀ, softmax statistics, O += P v.
      auto block = [&](Value k0, ValueRange acc, ArrayRef<Value> maskValues) -> SmallVector<Value> {
        c.stage(stage, 0, key, kvBase, k0, Bc, s.S);
        c.stage(stage, Bc, val, kvBase, k0, Bc, s.S);
        kb.barrier();
        // S = q kᵀ (k rows as a column-major B).
        SmallVector<Value> sf = c.mma(c.zeros(fm * fnB), [&](int64_t i, int64_t ks) { return qf[i * kSteps + ks]; },
                                      Operand{stage, 0, g.ldD(), true, true}, g.D, fnB);
        c.storeTile(sf, fnB, ss, ldS);
        kb.barrier();
        // Scores: scale, mask, keys past the end.
        for (int64_t j = 0; j < perT; ++j)
          c.inShare(j, [&] {
            Value e, r, col;
            c.element(j, e, r, col);
            Value at = kb.add(kb.muli(r, ldS), col);
            Value x = kb.fmul(kb.load(ss, at), kb.f32(scale));
            if (mask)
              x = kb.fadd(x, maskValues[j]);
            Value keep = kb.ult(kb.add(k0, col), kb.idx(s.S));
            if (s.band)
              keep = kb.andi(keep, inBand(kb, s, kb.add(t0, r), kb.add(k0, col)));
            kb.store(kb.select(keep, x, kb.f32(-kInf)), ss, at);
          });
        kb.barrier();
        // The block's max per row (partials).
        for (Value r : myRows) {
          Value mx = kb.forLoopIter(part, kb.idx(Bc), kb.idx(tpr), ValueRange{kb.f32(-kInf)},
                                    [&](Value col, ValueRange it) -> SmallVector<Value> {
                                      return {kb.fmax(it[0], kb.load(ss, kb.add(kb.muli(r, ldS), col)))};
                                    })[0];
          kb.store(mx, red, kb.add(kb.muli(r, tpr), part));
        }
        kb.barrier();
        // The row's reference max: the running max, moved only where the
        // block's max exceeds it by more than ln 256 (P <= 256, exact in the
        // end: O and l share the reference), so that O is rescaled only in
        // the few blocks where some row's max grew that much. Partials are
        // combined in a fixed order: every thread of the row agrees.
        auto reference = [&](Value r, Value mOld, Value *grew) {
          Value mB = kb.f32(-kInf);
          for (int64_t i = 0; i < tpr; ++i)
            mB = kb.fmax(mB, kb.load(red, kb.addi(kb.muli(r, tpr), i)));
          Value moved = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OGT, mB, kb.fadd(mOld, kb.f32(kLnRescale)));
          if (grew)
            *grew = moved;
          return kb.select(moved, mB, mOld);
        };
        auto safe = [&](Value m) { return kb.select(isNegInf(kb, m), kb.f32(0.0), m); };
        for (Value r : myRows) {
          Value mSafe = safe(reference(r, kb.load(mS, r), nullptr));
          Value sum = kb.forLoopIter(part, kb.idx(Bc), kb.idx(tpr), ValueRange{kb.f32(0.0)},
                                     [&](Value col, ValueRange it) -> SmallVector<Value> {
                                       Value p = kb.b.create<math::ExpOp>(
                                           kb.fsub(kb.load(ss, kb.add(kb.muli(r, ldS), col)), mSafe));
                                       kb.b.create<memref::StoreOp>(c.toHalf(p), ps,
                                                                    ValueRange{kb.add(kb.muli(r, ldP), col)});
                                       return {kb.fadd(it[0], p)};
                                     })[0];
          kb.store(sum, red, kb.add(kb.idx(Br * tpr), kb.add(kb.muli(r, tpr), part)));
        }
        kb.barrier();
        // Statistics (one thread per row); whether any row of the workgroup
        // with a running O moved its reference.
        Value rescaleMine = kb.i1(false);
        auto update = [&](Value r) {
          Value mOld = kb.load(mS, r), grew;
          Value mRef = reference(r, mOld, &grew);
          Value bl = kb.f32(0.0);
          for (int64_t i = 0; i < tpr; ++i)
            bl = kb.fadd(bl, kb.load(red, kb.addi(kb.add(kb.idx(Br * tpr), kb.muli(r, tpr)), i)));
          Value alpha = kb.b.create<math::ExpOp>(kb.fsub(mOld, safe(mRef)));
          kb.store(kb.fma(kb.load(lS, r), alpha, bl), lS, r);
          kb.store(mRef, mS, r);
          kb.store(alpha, aS, r);
          return kb.andi(grew, kb.b.create<arith::XOrIOp>(isNegInf(kb, mOld), kb.i1(true)));
        };
        for (Value r : myRows) {
          Value mine = tpr > 1 ? kb.ifElse(kb.ulti(part, 1), kb.b.getI1Type(), [&] { return update(r); },
                                           [&] { return kb.i1(false); })
                               : update(r);
          rescaleMine = kb.b.create<arith::OrIOp>(rescaleMine, mine);
        }
        Value rescale = c.anyInWorkgroup(rescaleMine, votes, kb.idx(2 * g.subgroups())); // includes a barrier
        // O = alpha O (where some row moved) + P v.
        SmallVector<Value> next = c.onlyIf(rescale, acc, [&] {
          SmallVector<Value> scaled;
          for (int64_t i = 0; i < fm; ++i)
            for (int64_t j = 0; j < fnD; ++j)
              scaled.push_back(c.elements(acc[i * fnD + j], scratch, c.rowOf(i), c.colOf(j, fnD), true,
                                          [&](Value r, Value, Value x) { return kb.fmul(x, kb.load(aS, r)); }));
          return scaled;
        });
        next = c.mma(next, c.halfRows(ps, ldP), Operand{stage, Bc * g.ldD(), g.ldD(), true, false}, Bc, fnD);
        kb.barrier(); // staging, scores and P are rewritten by the next block
        return next;
      };
      // The blocks: with a mask, a block whose every value (of rows and keys
      // inside the tensors) is dead (<= -1e30: -inf, or finfo.min as
      // Hugging Face masks) is skipped, exactly: its terms are exp(dead -
      // live) = 0 for a row that has a live key anywhere, and it cannot raise
      // such a row's max. A causal mask skips about half the blocks.
      auto pass = [&](bool skipDead, ValueRange init) {
        return kb.forLoopIter(kb.idx(0), kb.idx(s.S), kb.idx(Bc), init, [&](Value k0, ValueRange acc) {
          if (s.band)
            return c.onlyIf(blockInBand(kb, s, t0, Br, k0, Bc), acc, [&] { return block(k0, acc, {}); });
          if (!mask)
            return block(k0, acc, {});
          SmallVector<Value> mv;
          Value live = kb.i1(false);
          for (int64_t j = 0; j < perT; ++j) {
            Value e, r, col;
            c.element(j, e, r, col);
            Value t = kb.add(t0, r), kIdx = kb.add(k0, col);
            Value v = kb.load(mask, attentionMaskAt(kb, s, b, h, uminI(kb, t, s.T - 1), uminI(kb, kIdx, s.S - 1)));
            mv.push_back(v);
            if (skipDead) {
              Value in = kb.andi(kb.andi(kb.ulti(e, nE), kb.ulti(t, s.T)), kb.ulti(kIdx, s.S));
              live = kb.b.create<arith::OrIOp>(live, kb.andi(in, isLive(kb, v)));
            }
          }
          if (!skipDead)
            return block(k0, acc, mv);
          Value set = kb.muli(kb.urem(kb.udiv(k0, kb.idx(Bc)), kb.idx(2)), g.subgroups());
          Value go = c.anyInWorkgroup(live, votes, set); // includes a barrier
          return c.onlyIf(go, acc, [&] { return block(k0, acc, mv); });
        });
      };
      SmallVector<Value> o = pass(/*skipDead=*/bool(mask), c.zeros(fm * fnD));
      if (mask) {
        // A row that saw no live value (every key dead, e.g. a padded query
        // row under finfo.min) has terms in every block: the item runs again
        // without skipping, as the unskipped kernel would.
        Value redo = kb.forLoopIter(kb.idx(0), kb.idx(std::min(Br, s.T)), kb.idx(1), ValueRange{kb.i1(false)},
                                    [&](Value r, ValueRange it) -> SmallVector<Value> {
                                      Value in = kb.ult(kb.add(t0, r), kb.idx(s.T));
                                      Value dead = kb.b.create<arith::XOrIOp>(isLive(kb, kb.load(mS, r)), kb.i1(true));
                                      return {kb.b.create<arith::OrIOp>(it[0], kb.andi(in, dead))};
                                    })[0];
        kb.barrier(); // every thread has read the statistics
        o = c.onlyIf(redo, o, [&] {
          resetStats();
          return pass(/*skipDead=*/false, c.zeros(fm * fnD));
        });
      }
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

  // D = rowsum(dout * out): a subgroup per row (subgroupRows), its lanes
  // along the row (the loads coalesced), summed by a subgroup reduction.
  {
    const int64_t wg = g.threads(), rowsPerGroup = std::max<int64_t>(1, wg / g.SG);
    const int64_t groups = std::min(ceilDiv(rows, rowsPerGroup), ctx.maxWorkgroupCount);
    SmallVector<Type> args = {flatOf(op.getOut()), flatOf(op.getDout()), deltaT};
    // (the mask plays no part: one kernel for every band)
    KernelHandle k = ctx.getOrCreate("flash_attention_delta", opKey(op) + " coopmat", args, {wg, 1, 1}, [&](KernelBuilder &kb) {
      Value o = kb.arg(0), dout = kb.arg(1), delta = kb.arg(2);
      subgroupRows(
          kb, rows, s.D, rowsPerGroup, groups, [&] { return kb.f32(0.0); }, gpu::AllReduceOperation::ADD,
          [&](Value row) { return kb.muli(row, s.D); },
          [&](Value base, Value d, Value acc) {
            Value i = kb.add(base, d);
            return kb.fma(kb.load(dout, i), kb.load(o, i), acc);
          },
          [&](Value row, Value sum) { kb.store(sum, delta, row); });
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
    KernelHandle k = ctx.getOrCreate(dkv ? "flash_attention_dkv_coopmat" : "flash_attention_dq_coopmat", coopKey(op, s),
                                     args, {g.threads(), 1, 1}, [&](KernelBuilder &kb) {
      CoopBuilder c(kb, g, bf16);
      Value q = kb.arg(0), key = kb.arg(1), val = kb.arg(2), dout = kb.arg(3), lse = kb.arg(4), delta = kb.arg(5);
      Value mask = s.hasMask && !s.band ? kb.arg(6) : Value(); // a band mask is never read
      Type f32 = c.f32;
      const int64_t Br = g.Br, Bc = g.Bc, NT = g.threads(), fm = g.fm(), fnB = g.fnBlock(), fnD = g.fnD();
      const int64_t ldH = Bc + kPad, kSteps = g.D / g.MK, nStat = std::max(Br, Bc);
      Value stage = kb.sharedArray(g.stageRows() * g.ldD() / 8, c.word4);
      Value ss = kb.sharedArray(Br * Bc, f32), dps = kb.sharedArray(Br * Bc, f32);
      Value ph = dkv ? kb.sharedArray(Br * ldH, c.f16) : Value(), dsh = kb.sharedArray(Br * ldH, c.f16);
      Value lseS = kb.sharedArray(nStat, f32), dS = kb.sharedArray(nStat, f32);
      Value scratch = kb.sharedArray(g.scratchFloats(), f32);
      Value votes = kb.sharedArray(2 * g.subgroups(), f32);
      Value tid = c.tid;
      const int64_t nE = Br * Bc, perT = c.shares();
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
        // Element j of this thread's share of the [Br x Bc] block at y0: its
        // query (index in lseS / dS, and t) and key.
        auto element = [&](int64_t j, Value y0, Value &e, Value &r, Value &col, Value &qi, Value &t, Value &kIdx) {
          c.element(j, e, r, col);
          qi = dkv ? col : r;
          t = dkv ? kb.add(y0, col) : kb.add(r0, r), kIdx = dkv ? kb.add(r0, r) : kb.add(y0, col);
        };
        auto blockBody = [&](Value h, Value y0, Value yBase, int64_t yTotal, ValueRange acc,
                             ArrayRef<Value> maskValues) -> SmallVector<Value> {
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
          for (int64_t j = 0; j < perT; ++j)
            c.inShare(j, [&] {
              Value e, r, col, qi, t, kIdx;
              element(j, y0, e, r, col, qi, t, kIdx);
              Value x = kb.fmul(kb.load(ss, e), kb.f32(scale));
              if (mask)
                x = kb.fadd(x, maskValues[j]);
              Value valid = kb.andi(kb.ulti(kIdx, s.S), kb.ulti(t, s.T));
              if (s.band)
                valid = kb.andi(valid, inBand(kb, s, t, kIdx));
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
        // A block with a mask: skipped when every value (of queries and keys
        // inside the tensors) is dead and no query of it is a dead row (lse
        // at the dead level: finite, every key dead, its P uniform): its P
        // and dS are exp(dead - lse) = 0 exactly (the forward's skipping).
        // `stats` stages the block's lse and D before its first barrier.
        auto block = [&](Value h, Value headRow, Value y0, Value yBase, int64_t yTotal, ValueRange acc,
                         Value blockIndex, const std::function<void()> &stats) -> SmallVector<Value> {
          if (s.band) {
            Value go = dkv ? blockInBand(kb, s, y0, Bc, r0, Br) : blockInBand(kb, s, r0, Br, y0, Bc);
            return c.onlyIf(go, acc, [&] {
              stats();
              return blockBody(h, y0, yBase, yTotal, acc, {});
            });
          }
          if (!mask) {
            stats();
            return blockBody(h, y0, yBase, yTotal, acc, {});
          }
          SmallVector<Value> mv;
          Value live = kb.i1(false);
          for (int64_t j = 0; j < perT; ++j) {
            Value e, r, col, qi, t, kIdx;
            element(j, y0, e, r, col, qi, t, kIdx);
            Value tC = uminI(kb, t, s.T - 1);
            Value v = kb.load(mask, attentionMaskAt(kb, s, b, h, tC, uminI(kb, kIdx, s.S - 1)));
            mv.push_back(v);
            Value deadRow = kb.b.create<arith::CmpFOp>(arith::CmpFPredicate::OLE, kb.load(lse, kb.add(headRow, tC)),
                                                       kb.f32(kDead));
            Value in = kb.andi(kb.andi(kb.ulti(e, nE), kb.ulti(t, s.T)), kb.ulti(kIdx, s.S));
            live = kb.b.create<arith::OrIOp>(live, kb.andi(in, kb.b.create<arith::OrIOp>(isLive(kb, v), deadRow)));
          }
          Value set = kb.muli(kb.urem(blockIndex, kb.idx(2)), g.subgroups());
          Value go = c.anyInWorkgroup(live, votes, set); // includes a barrier
          return c.onlyIf(go, acc, [&] {
            stats();
            return blockBody(h, y0, yBase, yTotal, acc, mv);
          });
        };
        SmallVector<Value> acc;
        if (!dkv) {
          Value headRow = kb.muli(bx, s.T);
          stageStats(headRow, r0, Br); // published by the first block's barrier
          Value kvBase = kb.muli(kb.add(kb.muli(b, s.KH), kb.udiv(hx, kb.idx(s.G))), s.S * s.D);
          acc = kb.forLoopIter(kb.idx(0), kb.idx(s.S), kb.idx(Bc), c.zeros(fm * fnD), [&](Value k0, ValueRange a) {
            return block(hx, headRow, k0, kvBase, s.S, a, kb.udiv(k0, kb.idx(Bc)), [] {});
          });
        } else {
          const int64_t blocksPerHead = ceilDiv(s.T, Bc);
          acc = kb.forLoopIter(
              kb.idx(0), kb.idx(s.G), kb.idx(1), c.zeros(2 * fm * fnD), [&](Value gi, ValueRange ag) {
                Value h = kb.add(kb.muli(hx, s.G), gi);
                Value headRow = kb.muli(kb.add(kb.muli(b, s.H), h), s.T);
                return kb.forLoopIter(kb.idx(0), kb.idx(s.T), kb.idx(Bc), ag, [&](Value t0, ValueRange at) {
                  Value index = kb.add(kb.muli(gi, blocksPerHead), kb.udiv(t0, kb.idx(Bc)));
                  return block(h, headRow, t0, kb.muli(headRow, s.D), s.T, at, index,
                               [&] { stageStats(headRow, t0, Bc); }); // published by the block's first barrier
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
