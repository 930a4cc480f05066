// MatmulSkinny.cpp - products with a side of at most 64 (kind = skinny):
// the LoRA down product x A^T and dY B (N = rank) and the adapter gradients
// (M = rank, K = tokens).
//
// Such a product does a few FMAs per element of its big operand, so it is
// bound by reading that operand once; the tiled kernels waste most of a
// 64 x 64 register tile on it and need split-K partials to fill a GPU. Here
// a workgroup of T threads (config thread = [T, 1]) owns a tile_m x tile_n
// tile of C (the whole rank, typically) and every thread accumulates all of
// it, tile_m * tile_n f32 in registers, over k = tid, tid + T, ... of the
// workgroup's K range: neighbouring threads read neighbouring elements of a
// row of the big operand (x, dY: contiguous in K), and each element is read
// once per column tile. The small operand (rank x K, f32, read by every
// workgroup) stays in the caches. The T partial tiles are summed by
// gpu.subgroup_reduce, one partial per subgroup to shared memory; then the
// threads, one tile element each (strided when the tile has more elements
// than threads), add the subgroups' partials in subgroup order
// (deterministic), apply the epilogue of a fused_matmul (alpha, addend) and
// store, rounding once.
//
// K is cut into tiles of tile_k; split_k > 1 (unbatched products) spreads
// them over workgroups that write f32 partial tiles for matmul_splitk_sum
// (with the epilogue there), as the tiled kernels do, and so does llvmpipe's
// loop budget (Matmul.cpp).
#include "compiler/lowering/kernels/Dequant.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr int64_t kLoopBudget = 60000; // as Matmul.cpp

} // namespace

FailureOr<OpLowering> lowerMatmulSkinny(LoweringContext &ctx, const MatmulOperands &mo, MatmulConfigAttr config) {
  Operation *op = mo.op;
  auto lhsT = cast<ShapedType>(mo.lhs.getType());
  auto rhsT = cast<ShapedType>(mo.rhs.getType());
  auto outT = cast<ShapedType>(mo.result.getType());
  ArrayRef<int64_t> l = lhsT.getShape(), r = rhsT.getShape(), o = outT.getShape();
  const bool tl = mo.tl, tr = mo.tr;
  MatmulProblem problem = matmulProblem(mo);
  const int64_t M = problem.m, K = problem.k, N = problem.n, batch = problem.batch;
  OpLowering lowering;
  if (numElements(o) == 0)
    return lowering;
  SmallVector<DimMap> aMap, bMap;
  if (!problem.foldedBatch) {
    aMap = broadcastIndexMap(o.drop_back(2), l.drop_back(2));
    bMap = broadcastIndexMap(o.drop_back(2), r.drop_back(2));
    for (DimMap &d : aMap)
      d.inStride *= M * K;
    for (DimMap &d : bMap)
      d.inStride *= K * N;
  }
  const std::optional<quant::QuantizedWeight> qa = quant::quantizedWeight(mo.lhs),
                                              qb = quant::quantizedWeight(mo.rhs);

  const int64_t TM = config.tileM(), TN = config.tileN(), TK = config.tileK(), T = config.threads();
  const int64_t TILE = TM * TN;
  if (TILE > 128 || T < 1)
    return op->emitOpError("a skinny config needs tile_m * tile_n <= 128 and threads >= 1"), failure();
  const int64_t maxG = ctx.maxWorkgroupCount;
  const int64_t tilesM = ceilDiv(M, TM), tilesN = ceilDiv(N, TN), tilesK = ceilDiv(K, TK);
  int64_t S = 1, kPer = tilesK;
  if (config.getSplitK() > 1 && batch == 1 && tilesK > 1) {
    S = std::min({config.getSplitK(), tilesK, maxG});
    kPer = ceilDiv(tilesK, S);
    S = ceilDiv(tilesK, kPer);
  }
  const int64_t perTile = ceilDiv(TK, T) + 1;
  const int64_t tilesPerGroup = ceilDiv(tilesM, std::min(tilesM, maxG)) * ceilDiv(tilesN, std::min(tilesN, maxG));
  if (kPer * perTile * tilesPerGroup > kLoopBudget) {
    if (batch != 1)
      return op->emitOpError("a batched matmul with K = ")
                 << K << " needs more than " << kLoopBudget << " loop iterations per invocation", failure();
    kPer = std::max<int64_t>(1, kLoopBudget / (perTile * tilesPerGroup));
    S = ceilDiv(tilesK, kPer);
    if (S > maxG)
      return op->emitOpError("K = ") << K << " is too long to split into at most " << maxG << " workgroups",
             failure();
  }
  ctx.currentConfig = MatmulConfigAttr::get(op->getContext(), config.getVariant(), config.getKind(),
                                            config.getTile(), config.getThread(), S, config.getMma(),
                                            config.getSubgroups(), config.getOperands());
  // Subgroups have at least 4 lanes on every Vulkan device this runs on
  // (and the profile's size when smaller): the partials' slots.
  int64_t minSubgroup = 4;
  if (auto env = dyn_cast_or_null<spirv::TargetEnvAttr>(ctx.targetEnv))
    minSubgroup = std::max<int64_t>(1, std::min<int64_t>(4, env.getResourceLimits().getSubgroupSize()));
  const int64_t slots = ceilDiv(T, minSubgroup);
  const int64_t gx = std::min(tilesN, maxG), gy = std::min(tilesM, maxG),
                gz = S > 1 ? S : std::max<int64_t>(1, std::min(batch, maxG));
  const bool epilogueHere = S == 1 && mo.hasEpilogue(), addendHere = S == 1 && mo.addend;

  std::string key = opKey(op) + " skinny " + std::to_string(TM) + "x" + std::to_string(TN) + "x" +
                    std::to_string(TK) + " threads " + std::to_string(T) + " split " + std::to_string(S);
  if (qa)
    key += " lhs " + quantKey(*qa);
  if (qb)
    key += " rhs " + quantKey(*qb);
  MemRefType partialsT = MemRefType::get({S * M * N}, Float32Type::get(op->getContext()));
  SmallVector<Type> args = {qa ? quantMemRefType(op->getContext(), *qa) : flatMemRefType(lhsT),
                            qb ? quantMemRefType(op->getContext(), *qb) : flatMemRefType(rhsT)};
  if (addendHere)
    args.push_back(flatMemRefType(cast<ShapedType>(mo.addend.getType())));
  args.push_back(S > 1 ? partialsT : flatMemRefType(outT));

  KernelHandle k = ctx.getOrCreate("matmul_skinny", key, args, {T, 1, 1}, [&](KernelBuilder &kb) {
    ImplicitLocOpBuilder &bb = kb.b;
    Value A = kb.arg(0), B = kb.arg(1), C = kb.arg(addendHere ? 3 : 2);
    Value D = addendHere ? kb.arg(2) : Value();
    Type f32 = bb.getF32Type();
    Value partial = kb.sharedArray(slots * TILE, f32);
    Value tid = kb.threadId();
    Value sg = bb.create<gpu::SubgroupIdOp>(/*upperBound=*/nullptr);
    Value numSg = bb.create<gpu::NumSubgroupsOp>(/*upperBound=*/nullptr);
    Value lane = bb.create<gpu::LaneIdOp>(/*upperBound=*/nullptr);
    Value zero = kb.f32(0.0);
    auto loadElement = [&](Value mem, Value at) -> Value {
      const std::optional<quant::QuantizedWeight> &q = mem == A ? qa : qb;
      return q ? loadDequantized(kb, mem, *q, at) : kb.load(mem, at);
    };

    groupLoop(kb, S > 1 ? S : batch, gz, kb.blockId(gpu::Dimension::z), [&](Value zIdx) {
      Value bIdx = S > 1 ? kb.idx(0) : zIdx;
      Value aBase = batch == 1 ? kb.idx(0) : kb.applyIndexMap(bIdx, aMap, batch);
      Value bBase = batch == 1 ? kb.idx(0) : kb.applyIndexMap(bIdx, bMap, batch);
      Value cBase = S > 1 ? kb.muli(zIdx, M * N) : batch == 1 ? kb.idx(0) : kb.muli(bIdx, M * N);
      Value kBegin = kb.idx(0), kEnd = kb.idx(K);
      if (S > 1) {
        kBegin = kb.muli(zIdx, kPer * TK);
        kEnd = bb.create<arith::MinUIOp>(kb.addi(kBegin, kPer * TK), kb.idx(K));
      }
      groupLoop(kb, tilesM, gy, kb.blockId(gpu::Dimension::y), [&](Value tm) {
        Value m0 = kb.muli(tm, TM);
        groupLoop(kb, tilesN, gx, kb.blockId(gpu::Dimension::x), [&](Value tn) {
          Value n0 = kb.muli(tn, TN);
          // Rows and columns clamped into C (the extra ones are not stored).
          SmallVector<Value> rows, cols;
          for (int64_t i = 0; i < TM; ++i)
            rows.push_back(M % TM ? bb.create<arith::MinUIOp>(kb.addi(m0, i), kb.idx(M - 1)).getResult()
                                  : kb.addi(m0, i));
          for (int64_t j = 0; j < TN; ++j)
            cols.push_back(N % TN ? bb.create<arith::MinUIOp>(kb.addi(n0, j), kb.idx(N - 1)).getResult()
                                  : kb.addi(n0, j));
          SmallVector<Value> init(TILE, zero);
          SmallVector<Value> acc = kb.forLoopIter(
              kb.add(kBegin, tid), kEnd, kb.idx(T), init, [&](Value kk, ValueRange a) -> SmallVector<Value> {
                SmallVector<Value> av, bv;
                for (Value rr : rows)
                  av.push_back(loadElement(A, kb.add(aBase, tl ? kb.add(kb.muli(kk, M), rr)
                                                              : kb.add(kb.muli(rr, K), kk))));
                for (Value c : cols)
                  bv.push_back(loadElement(B, kb.add(bBase, tr ? kb.add(kb.muli(c, K), kk)
                                                              : kb.add(kb.muli(kk, N), c))));
                SmallVector<Value> out;
                for (int64_t i = 0; i < TM; ++i)
                  for (int64_t j = 0; j < TN; ++j)
                    out.push_back(kb.fma(av[i], bv[j], a[i * TN + j]));
                return out;
              });
          // Sum over each subgroup, then one partial tile per subgroup.
          SmallVector<Value> sums;
          for (Value v : acc)
            // Not `uniform`: MLIR lowers that to OpGroupFAdd (the Kernel
            // capability's Groups); this is OpGroupNonUniformFAdd.
            sums.push_back(bb.create<gpu::SubgroupReduceOp>(v, gpu::AllReduceOperation::ADD, /*uniform=*/false));
          kb.ifThen(kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, lane, kb.idx(0)), [&] {
            for (int64_t e = 0; e < TILE; ++e)
              kb.store(sums[e], partial, kb.addi(kb.muli(sg, TILE), e));
          });
          kb.barrier();
          // Tile element e (more elements than threads: strided).
          kb.forLoop(tid, kb.idx(TILE), kb.idx(T), [&](Value e) {
            Value sum = kb.forLoopIter(kb.idx(0), numSg, kb.idx(1), ValueRange{zero},
                                       [&](Value s, ValueRange a) -> SmallVector<Value> {
                                         return {kb.fadd(a[0], kb.load(partial, kb.add(kb.muli(s, TILE), e)))};
                                       })[0];
            Value row = kb.add(m0, kb.udiv(e, kb.idx(TN))), col = kb.add(n0, kb.urem(e, kb.idx(TN)));
            kb.ifThen(kb.andi(kb.ulti(row, M), kb.ulti(col, N)), [&] {
              Value at = kb.add(cBase, kb.add(kb.muli(row, N), col));
              kb.store(epilogueHere ? matmulEpilogue(kb, sum, mo.alpha, D, at) : sum, C, at);
            });
          });
          kb.barrier(); // the partials are rewritten by the next tile
        });
      });
    });
    return std::array<int64_t, 3>{gx, gy, gz};
  });
  if (S == 1) {
    SmallVector<unsigned> slotsOf = {0, 1};
    if (mo.addend)
      slotsOf.push_back(2);
    slotsOf.push_back(mo.resultSlot());
    lowering.steps.push_back({k, slotsOf});
    return lowering;
  }
  splitKSteps(ctx, lowering, mo, k, S, M * N, partialsT);
  return lowering;
}

} // namespace tessera::lowering
