// Matmul.cpp - batched matrix product, tiled.
//
// C[b] = op(A[b']) x op(B[b'']) with numpy broadcasting of the batch dims and
// optional transposes. A batched lhs against an unbatched rhs (the linear
// layer) is folded into one [batch*M, K] x [K, N] product.
//
// Kind "tiled" (the op's #tessera.matmul_config): a workgroup computes a
// tile_m x tile_n tile of C with (tile_m/thread_m) x (tile_n/thread_n)
// threads, each accumulating a thread_m x thread_n register tile. The K
// dimension is walked tile_k at a time: the workgroup stages an A tile and a
// B tile in shared memory (k-major, rows padded by one word against bank
// conflicts; loads are laid out so neighbouring threads read neighbouring
// global addresses for either transpose), barrier, every thread does
// thread_m * thread_n FMAs per k, barrier. Edges are bounds-checked (zero
// fill on load, masked store) only in the dimensions that need it, so any
// size works. Thread (tx, ty) owns rows ty + i*(tile_m/thread_m) and columns
// tx + j*(tile_n/thread_n) of the tile (coalesced stores).
//
// Kind "direct": the same tiling of C over workgroups and threads, but no
// shared memory and no barriers: each thread streams its rows of A and
// columns of B from memory. Slower on GPUs, much faster on CPU
// implementations (lavapipe), where barriers are expensive and caches do the
// staging.
//
// split_k > 1 (unbatched products with a long K and few tiles, e.g. the LoRA
// down projection x A^T with N = rank): grid z splits the K tiles; each split
// writes its partial tile to a scratch buffer [S, M, N] and matmul_splitk_sum
// adds the S partials in order.
//
// Block-quantised weights (tessera.quant, compiler/precision/Quantized.h):
// either operand may be one; its loads dequantise (kernels/Dequant.h) as the
// tile is staged (tiled) or streamed (direct), so the forward x W^T and the
// activation gradient dY W read the same quantised buffer. The
// cooperative-matrix kernels read them too (MatmulCoopMat.cpp).
//
// Loop budget: Mesa's llvmpipe (lavapipe) stops every loop of an invocation
// once their back-edges together reach 65535 (gallivm's loop limiter,
// against hangs), leaving partial sums, silently. A product with a
// vocabulary-long K (the loss gradient against the embedding table: 151,936
// for Qwen 3) would pass that in one workgroup, so split-K is raised until
// each invocation stays under kLoopBudget iterations, on every profile
// (more splits are also what a GPU with many cores wants for such shapes).
#include "compiler/lowering/kernels/Dequant.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "llvm/Support/Format.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

// Below llvmpipe's 65535 loop iterations per invocation, with room for the
// loops around the K loop (header comment).
constexpr int64_t kLoopBudget = 60000;


} // namespace

MatmulOperands matmulOperands(MatmulOp op) {
  return {op, op.getLhs(), op.getRhs(), Value(), op.getResult(), op.getTransposeLhs(), op.getTransposeRhs(), 1.0};
}

MatmulOperands matmulOperands(FusedMatmulOp op) {
  return {op,
          op.getLhs(),
          op.getRhs(),
          op.getAddend(),
          op.getResult(),
          op.getTransposeLhs(),
          op.getTransposeRhs(),
          op.getAlpha().convertToDouble()};
}

Value matmulEpilogue(KernelBuilder &kb, Value acc, double alpha, Value addend, Value at) {
  Value v = alpha == 1.0 ? acc : kb.fmul(acc, kb.f32(alpha));
  return addend ? kb.fadd(v, kb.load(addend, at)) : v;
}

MatmulProblem matmulProblem(const MatmulOperands &op) {
  ArrayRef<int64_t> l = cast<ShapedType>(op.lhs.getType()).getShape();
  ArrayRef<int64_t> r = cast<ShapedType>(op.rhs.getType()).getShape();
  ArrayRef<int64_t> o = cast<ShapedType>(op.result.getType()).getShape();
  bool tl = op.tl, tr = op.tr;
  MatmulProblem p;
  p.m = tl ? l[l.size() - 1] : l[l.size() - 2];
  p.k = tl ? l[l.size() - 2] : l[l.size() - 1];
  p.n = tr ? r[r.size() - 2] : r[r.size() - 1];
  p.batch = numElements(o.drop_back(2));
  if (!tl && numElements(r.drop_back(2)) == 1) {
    p.m *= p.batch; // fold the lhs batch into M
    p.batch = 1;
    p.foldedBatch = true;
  }
  return p;
}

std::pair<SmallVector<DimMap>, SmallVector<DimMap>> operandBatchMaps(const MatmulProblem &problem,
                                                                     ArrayRef<int64_t> o, ArrayRef<int64_t> l,
                                                                     ArrayRef<int64_t> r) {
  SmallVector<DimMap> aMap, bMap;
  if (problem.foldedBatch)
    return {aMap, bMap};
  aMap = broadcastIndexMap(o.drop_back(2), l.drop_back(2));
  bMap = broadcastIndexMap(o.drop_back(2), r.drop_back(2));
  for (DimMap &d : aMap)
    d.inStride *= problem.m * problem.k;
  for (DimMap &d : bMap)
    d.inStride *= problem.k * problem.n;
  return {aMap, bMap};
}

std::pair<int64_t, int64_t> splitK(int64_t requested, int64_t batch, int64_t tilesK, int64_t maxG) {
  if (requested <= 1 || batch != 1 || tilesK <= 1)
    return {1, tilesK};
  int64_t S = std::min({requested, tilesK, maxG});
  int64_t kPer = ceilDiv(tilesK, S);
  return {ceilDiv(tilesK, kPer), kPer};
}

namespace {
MatmulSlice matmulSlice(KernelBuilder &kb, Value zIdx, int64_t S, int64_t kPer, int64_t tilesK, int64_t batch,
                        int64_t mn, ArrayRef<DimMap> aMap, ArrayRef<DimMap> bMap) {
  MatmulSlice z;
  Value bIdx = S > 1 ? kb.idx(0) : zIdx;
  z.aBase = batch == 1 ? kb.idx(0) : kb.applyIndexMap(bIdx, aMap, batch);
  z.bBase = batch == 1 ? kb.idx(0) : kb.applyIndexMap(bIdx, bMap, batch);
  z.cBase = S > 1 ? kb.muli(zIdx, mn) : batch == 1 ? kb.idx(0) : kb.muli(bIdx, mn);
  z.ktBegin = kb.idx(0), z.ktEnd = kb.idx(tilesK);
  if (S > 1) {
    z.ktBegin = kb.muli(zIdx, kPer);
    z.ktEnd = kb.b.create<arith::MinUIOp>(kb.addi(z.ktBegin, kPer), kb.idx(tilesK));
  }
  return z;
}
} // namespace

void forEachMatmulTile(KernelBuilder &kb, const MatmulTiles &t,
                       const std::function<void(const MatmulSlice &, Value, Value)> &body) {
  groupLoop(kb, t.S > 1 ? t.S : t.batch, t.gz, kb.blockId(gpu::Dimension::z), [&](Value zIdx) {
    const MatmulSlice z = matmulSlice(kb, zIdx, t.S, t.kPer, t.tilesK, t.batch, t.mn, t.aMap, t.bMap);
    groupLoop(kb, t.tilesM, t.gy, kb.blockId(gpu::Dimension::y), [&](Value tm) {
      Value m0 = kb.muli(tm, t.tileM);
      groupLoop(kb, t.tilesN, t.gx, kb.blockId(gpu::Dimension::x), [&](Value tn) { body(z, m0, kb.muli(tn, t.tileN)); });
    });
  });
}

FailureOr<OpLowering> lowerMatmul(LoweringContext &ctx, const MatmulOperands &mo) {
  Operation *op = mo.op;
  auto lhsT = cast<ShapedType>(mo.lhs.getType());
  auto rhsT = cast<ShapedType>(mo.rhs.getType());
  auto outT = cast<ShapedType>(mo.result.getType());
  ArrayRef<int64_t> l = lhsT.getShape(), r = rhsT.getShape(), o = outT.getShape();
  bool tl = mo.tl, tr = mo.tr;
  MatmulProblem problem = matmulProblem(mo);
  int64_t M = problem.m, K = problem.k, N = problem.n, batch = problem.batch;

  OpLowering lowering;
  if (numElements(o) == 0)
    return lowering;

  // Batch offsets of A and B (in elements) as index maps over the output batch.
  SmallVector<DimMap> aMap, bMap;
  std::tie(aMap, bMap) = operandBatchMaps(problem, o, l, r);

  auto config = kernelConfig<MatmulConfigAttr>(op);
  const std::optional<quant::QuantizedWeight> qa = quant::quantizedWeight(mo.lhs),
                                              qb = quant::quantizedWeight(mo.rhs);
  if (config.isCoopMat()) // the cooperative-matrix pattern lowers every one
    return op->emitOpError("a cooperative-matrix config reached the tiled generator"), failure();
  if (config.getKind() == MatmulKind::skinny)
    return lowerMatmulSkinny(ctx, mo, config);
  const bool direct = config.getKind() == MatmulKind::direct;
  const std::string kindName = stringifyMatmulKind(config.getKind()).str();
  const int64_t TM = config.tileM(), TN = config.tileN(), TK = config.tileK();
  const int64_t RM = config.threadM(), RN = config.threadN();
  const int64_t TX = TN / RN, TY = TM / RM, NT = TX * TY;
  const int64_t TMp = TM + 1, TNp = TN + 1; // padded shared rows
  const int64_t tilesM = ceilDiv(M, TM), tilesN = ceilDiv(N, TN), tilesK = ceilDiv(K, TK);
  const int64_t maxG = ctx.maxWorkgroupCount;
  // Split-K (unbatched only): S workgroups per tile, each over kPer K tiles.
  int64_t S, kPer;
  std::tie(S, kPer) = splitK(config.getSplitK(), batch, tilesK, maxG);
  // Loop iterations of one invocation per K tile, each loop counting its
  // trips + 1 (the exit test), as llvmpipe's limiter does.
  const int64_t perTile = direct
                              ? TK
                              : ceilDiv(TM * TK, NT) + 1 + ceilDiv(TK * TN, NT) + 1 + TK + 1 + 1;
  const int64_t tilesPerGroup = ceilDiv(tilesM, std::min(tilesM, maxG)) * ceilDiv(tilesN, std::min(tilesN, maxG));
  if (kPer * perTile * tilesPerGroup > kLoopBudget) {
    if (batch != 1)
      return op->emitOpError("a batched matmul with K = ")
                 << K << " needs more than " << kLoopBudget
                 << " loop iterations per invocation (llvmpipe's loop limit); only unbatched products are split over K",
             failure();
    kPer = std::max<int64_t>(1, kLoopBudget / (perTile * tilesPerGroup));
    S = ceilDiv(tilesK, kPer);
    if (S > maxG)
      return op->emitOpError("K = ") << K << " is too long to split into at most " << maxG << " workgroups",
             failure();
  }
  // The plan records the split actually used.
  ctx.currentConfig = MatmulConfigAttr::get(op->getContext(), config.getVariant(), config.getKind(),
                                            config.getTile(), config.getThread(), S, config.getMma(),
                                            config.getSubgroups(), config.getOperands());
  const int64_t gx = std::min(tilesN, maxG), gy = std::min(tilesM, maxG),
                gz = S > 1 ? S : std::max<int64_t>(1, std::min(batch, maxG));
  const bool needM = M % TM != 0, needN = N % TN != 0, needK = K % TK != 0;

  std::string key = opKey(op) + " " + kindName + " " + std::to_string(TM) + "x" + std::to_string(TN) + "x" +
                    std::to_string(TK) + " reg " + std::to_string(RM) + "x" + std::to_string(RN) +
                    " split " + std::to_string(S);
  if (qa)
    key += " lhs " + quantKey(*qa);
  if (qb)
    key += " rhs " + quantKey(*qb);
  MemRefType partialsT = MemRefType::get({S * M * N}, Float32Type::get(op->getContext()));
  // The epilogue is the split-K sum's when there are partials.
  const bool epilogueHere = S == 1 && mo.hasEpilogue(), addendHere = S == 1 && mo.addend;
  SmallVector<Type> args = {qa ? quantMemRefType(op->getContext(), *qa) : flatMemRefType(lhsT),
                            qb ? quantMemRefType(op->getContext(), *qb) : flatMemRefType(rhsT)};
  if (addendHere)
    args.push_back(flatMemRefType(cast<ShapedType>(mo.addend.getType())));
  args.push_back(S > 1 ? partialsT : flatMemRefType(outT));
  KernelHandle k = ctx.getOrCreate("matmul", key, args, {NT, 1, 1}, [&](KernelBuilder &kb) {
    Value A = kb.arg(0), B = kb.arg(1), C = kb.arg(addendHere ? 3 : 2);
    Value D = addendHere ? kb.arg(2) : Value();
    Type f32 = kb.b.getF32Type();
    Value As = direct ? Value() : kb.sharedArray(TK * TMp, f32);
    Value Bs = direct ? Value() : kb.sharedArray(TK * TNp, f32);
    Value tid = kb.threadId();
    Value tx = kb.urem(tid, kb.idx(TX)), ty = kb.udiv(tid, kb.idx(TX));
    Value zero = kb.f32(0.0);
    Value one = kb.idx(1);

    // One element of A or B as f32 (dequantised from a block-quantised weight).
    auto loadElement = [&](Value mem, Value at) -> Value {
      const std::optional<quant::QuantizedWeight> &q = mem == A ? qa : qb;
      return q ? loadDequantized(kb, mem, *q, at) : kb.load(mem, at);
    };
    // Loads one element of a tile from global memory, zero outside the matrix.
    auto guardedLoad = [&](Value mem, Value base, Value addr, Value cond) -> Value {
      Value at = kb.add(base, addr);
      if (!cond)
        return loadElement(mem, at);
      return kb.ifElse(cond, f32, [&] { return loadElement(mem, at); }, [&] { return zero; });
    };
    auto both = [&](Value a, Value c) -> Value { return !a ? c : !c ? a : kb.andi(a, c); };

    // z: the batch, or with split-K the K range.
    const MatmulTiles tiles{S, kPer, tilesK, tilesM, tilesN, TM, TN, batch, M * N, gx, gy, gz, aMap, bMap};
    forEachMatmulTile(kb, tiles, [&](const MatmulSlice &z, Value m0, Value n0) {
      Value aBase = z.aBase, bBase = z.bBase, cBase = z.cBase, ktBegin = z.ktBegin, ktEnd = z.ktEnd;
      SmallVector<Value> init(RM * RN, zero);
      SmallVector<Value> acc;
      if (direct) {
        // Each thread reads its rows of A and columns of B straight from
        // memory (clamped into the matrix; the store masks the extra rows).
        SmallVector<Value> rows, cols;
        for (int64_t i = 0; i < RM; ++i) {
          Value r = kb.add(m0, kb.addi(ty, i * TY));
          rows.push_back(needM ? kb.b.create<arith::MinUIOp>(r, kb.idx(M - 1)) : r);
        }
        for (int64_t j = 0; j < RN; ++j) {
          Value c = kb.add(n0, kb.addi(tx, j * TX));
          cols.push_back(needN ? kb.b.create<arith::MinUIOp>(c, kb.idx(N - 1)) : c);
        }
        Value kBegin = kb.muli(ktBegin, TK);
        Value kEnd = S > 1 ? kb.b.create<arith::MinUIOp>(kb.muli(ktEnd, TK), kb.idx(K))
                           : kb.idx(K);
        acc = kb.forLoopIter(kBegin, kEnd, one, init,
                             [&](Value kk, ValueRange a) -> SmallVector<Value> {
                               SmallVector<Value> av, bv;
                               for (Value r : rows)
                                 av.push_back(loadElement(
                                     A, kb.add(aBase, tl ? kb.add(kb.muli(kk, M), r)
                                                         : kb.add(kb.muli(r, K), kk))));
                               for (Value c : cols)
                                 bv.push_back(loadElement(
                                     B, kb.add(bBase, tr ? kb.add(kb.muli(c, K), kk)
                                                         : kb.add(kb.muli(kk, N), c))));
                               SmallVector<Value> out;
                               for (int64_t i = 0; i < RM; ++i)
                                 for (int64_t j = 0; j < RN; ++j)
                                   out.push_back(kb.fma(av[i], bv[j], a[i * RN + j]));
                               return out;
                             });
      } else
      acc = kb.forLoopIter(
          ktBegin, ktEnd, one, init,
          [&](Value kt, ValueRange accIn) -> SmallVector<Value> {
            Value k0 = kb.muli(kt, TK);
            // Stage the A tile: As[kk * TMp + mm].
            kb.forLoop(tid, kb.idx(TM * TK), kb.idx(NT), [&](Value e) {
              Value mm = tl ? kb.urem(e, kb.idx(TM)) : kb.udiv(e, kb.idx(TK));
              Value kk = tl ? kb.udiv(e, kb.idx(TM)) : kb.urem(e, kb.idx(TK));
              Value gm = kb.add(m0, mm), gk = kb.add(k0, kk);
              Value addr = tl ? kb.add(kb.muli(gk, M), gm) : kb.add(kb.muli(gm, K), gk);
              Value cond = both(needM ? kb.ulti(gm, M) : Value(),
                                needK ? kb.ulti(gk, K) : Value());
              kb.store(guardedLoad(A, aBase, addr, cond), As, kb.add(kb.muli(kk, TMp), mm));
            });
            // Stage the B tile: Bs[kk * TNp + nn].
            kb.forLoop(tid, kb.idx(TK * TN), kb.idx(NT), [&](Value e) {
              Value nn = tr ? kb.udiv(e, kb.idx(TK)) : kb.urem(e, kb.idx(TN));
              Value kk = tr ? kb.urem(e, kb.idx(TK)) : kb.udiv(e, kb.idx(TN));
              Value gn = kb.add(n0, nn), gk = kb.add(k0, kk);
              Value addr = tr ? kb.add(kb.muli(gn, K), gk) : kb.add(kb.muli(gk, N), gn);
              Value cond = both(needN ? kb.ulti(gn, N) : Value(),
                                needK ? kb.ulti(gk, K) : Value());
              kb.store(guardedLoad(B, bBase, addr, cond), Bs, kb.add(kb.muli(kk, TNp), nn));
            });
            kb.barrier();
            SmallVector<Value> next = kb.forLoopIter(
                kb.idx(0), kb.idx(TK), one, accIn,
                [&](Value kk, ValueRange a) -> SmallVector<Value> {
                  Value aRow = kb.add(kb.muli(kk, TMp), ty);
                  Value bRow = kb.add(kb.muli(kk, TNp), tx);
                  SmallVector<Value> av, bv;
                  for (int64_t i = 0; i < RM; ++i)
                    av.push_back(kb.load(As, kb.addi(aRow, i * TY)));
                  for (int64_t j = 0; j < RN; ++j)
                    bv.push_back(kb.load(Bs, kb.addi(bRow, j * TX)));
                  SmallVector<Value> out;
                  for (int64_t i = 0; i < RM; ++i)
                    for (int64_t j = 0; j < RN; ++j)
                      out.push_back(kb.fma(av[i], bv[j], a[i * RN + j]));
                  return out;
                });
            kb.barrier();
            return next;
          });
      // Store the register tile.
      for (int64_t i = 0; i < RM; ++i) {
        Value row = kb.add(m0, kb.addi(ty, i * TY));
        for (int64_t j = 0; j < RN; ++j) {
          Value col = kb.add(n0, kb.addi(tx, j * TX));
          Value at = kb.add(cBase, kb.add(kb.muli(row, N), col));
          Value cond = both(needM ? kb.ulti(row, M) : Value(), needN ? kb.ulti(col, N) : Value());
          auto store = [&] {
            Value v = acc[i * RN + j];
            kb.store(epilogueHere ? matmulEpilogue(kb, v, mo.alpha, D, at) : v, C, at);
          };
          if (cond)
            kb.ifThen(cond, store);
          else
            store();
        }
      }
    });
    return std::array<int64_t, 3>{gx, gy, gz};
  });
  if (S == 1) {
    SmallVector<unsigned> slots = {0, 1};
    if (mo.addend)
      slots.push_back(2);
    slots.push_back(mo.resultSlot());
    lowering.steps.push_back({k, slots});
    return lowering;
  }
  splitKSteps(ctx, lowering, mo, k, S, M * N, partialsT);
  return lowering;
}

void splitKSteps(LoweringContext &ctx, OpLowering &lowering, const MatmulOperands &m, KernelHandle k, int64_t S,
                 int64_t n, MemRefType partialsT) {
  // Slots: 0 lhs, 1 rhs, [2 addend,] result, then the partials.
  unsigned result = m.resultSlot(), partials = result + 1;
  lowering.scratch.push_back({partialsT, "partials"});
  lowering.steps.push_back({k, {0, 1, partials}});
  auto outT = cast<ShapedType>(m.result.getType());
  if (m.addend)
    lowering.steps.push_back(
        {splitKSum(ctx, S, n, outT, m.alpha, cast<ShapedType>(m.addend.getType())), {partials, 2, result}});
  else
    lowering.steps.push_back({splitKSum(ctx, S, n, outT, m.alpha), {partials, result}});
}

KernelHandle splitKSum(LoweringContext &ctx, int64_t S, int64_t n, ShapedType out, double alpha,
                       ShapedType addend) {
  // The S partial products, added in a fixed order (deterministic), then
  // the epilogue, rounded once by the store.
  int64_t wg = ctx.elementwiseWorkgroup;
  int64_t groups = gridGroups(n, wg, ctx.maxWorkgroupCount);
  MemRefType partialsT = MemRefType::get({S * n}, Float32Type::get(out.getContext()));
  std::string key;
  llvm::raw_string_ostream os(key);
  os << "splitk_sum " << S << " " << n;
  SmallVector<Type> args = {partialsT};
  if (alpha != 1.0)
    os << " alpha " << llvm::format("%a", alpha);
  if (addend) {
    args.push_back(flatMemRefType(addend));
    os << " plus " << addend.getElementType();
  }
  args.push_back(flatMemRefType(out));
  os << " -> " << out.getElementType();
  return ctx.getOrCreate("matmul_splitk_sum", os.str(), args, {wg, 1, 1}, [&](KernelBuilder &kb) {
    Value D = addend ? kb.arg(1) : Value(), C = kb.arg(addend ? 2 : 1);
    kb.gridStrideLoop(n, wg, groups, [&](Value i) {
      Value acc = kb.load(kb.arg(0), i);
      for (int64_t s = 1; s < S; ++s)
        acc = kb.fadd(acc, kb.load(kb.arg(0), kb.addi(i, s * n)));
      kb.store(matmulEpilogue(kb, acc, alpha, D, i), C, i);
    });
    return std::array<int64_t, 3>{groups, 1, 1};
  });
}

} // namespace tessera::lowering
