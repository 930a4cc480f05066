// MatmulCoopMat.cpp - matmuls on cooperative matrices (tensor cores), for
// configs of kind = coopmat (VK_KHR_cooperative_matrix through MLIR's
// gpu.subgroup_mma_* ops).
//
// A workgroup computes a tile_m x tile_n tile of C with sm x sn subgroups;
// subgroup (i, j) owns fm x fn accumulator fragments of mma_m x mma_n f32
// (fm = tile_m / (sm * mma_m), fn likewise). K is walked tile_k at a time:
// the workgroup stages the A tile and the B tile in shared memory as f16,
// each in the orientation it has in memory (rows padded by 8 halves against
// bank conflicts), and every subgroup loads its A and B fragments from there
// (column-major loads for the transposed operands) and multiplies them.
// An operand already of the operand type and read 16 bytes at a time (the
// usual case: bf16 weights and activations) is staged as raw 16-byte words,
// and its fragments load from those words (Stage::raw).
// The staging is double-buffered: the global loads of tile k+1 are issued
// into registers before the fragments of tile k are multiplied, and written
// to the other buffer after, so one barrier per K tile suffices.
//
// Global loads are vectors of up to `vector width` elements along each
// operand's contiguous dimension when that dimension (and hence every tile
// offset) is a multiple of the width, else scalars. Operands are converted
// to the config's operand type on the way into shared memory (the selection
// only picks coopmat for operands already of that type, so this is exact);
// the products accumulate in f32. With bf16 operands the kernel is written
// with f16 types that hold bf16 bits (shared memory and fragments are only
// loaded, stored and multiplied, never computed with), and
// tessera-kernels-to-spirv retypes the binary's f16 as bf16
// (lowering/SpirvBf16.cpp).
//
// Epilogue: in a workgroup whose tile lies inside the matrix each fragment is
// converted to C's type (f32, or the kernel's half type) and stored
// cooperatively; on an edge of C (or for a C of another type) each fragment
// goes through a scratch fragment in shared memory from which the subgroup's
// lanes write the elements inside the matrix. A fused_matmul's epilogue
// (alpha, addend) is applied in f32 before the one rounding: on stored
// fragments as fragment ops (a constant-matrix multiply, the addend's tile
// loaded as an accumulator fragment, widened from the half type, and added),
// on the scratch path element by element. An addend of another type (bf16 in
// an f16 kernel, f16 in a bf16 one), or rows of C or D not 16-byte aligned,
// keep every tile on the scratch path; with split-K the sum kernel applies
// the epilogue instead.
#include "compiler/lowering/SpirvBf16.h"
#include "compiler/lowering/kernels/Dequant.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {
namespace {

constexpr int64_t kPad = 8; // halves of padding per shared row

// Largest power of two <= want that divides `extent` (the operand's
// contiguous dimension) and `tileExtent`, and fits 16 bytes.
int64_t vectorWidthFor(int64_t want, int64_t extent, int64_t tileExtent, Type storage) {
  int64_t bytes = storage.getIntOrFloatBitWidth() / 8;
  int64_t v = std::min<int64_t>(want, 16 / bytes);
  while (v > 1 && (extent % v || tileExtent % v))
    v /= 2;
  return std::max<int64_t>(v, 1);
}

// The binding of an operand read `width` elements at a time. Vulkan's SPIR-V
// vectors have at most 4 components, so 8 halves are read as 4 x i32.
MemRefType vectorMemRef(ShapedType tensor, int64_t width) {
  MemRefType flat = flatMemRefType(tensor);
  if (width == 1)
    return flat;
  Type elem = flat.getElementType();
  if (width == 8)
    return MemRefType::get({flat.getNumElements() / 8}, VectorType::get({4}, IntegerType::get(elem.getContext(), 32)));
  return MemRefType::get({flat.getNumElements() / width}, VectorType::get({width}, elem));
}

// One operand's staging: a tile of `rows` x `cols` elements in its memory
// orientation (cols contiguous), loaded with vectors of `width`.
struct Stage {
  int64_t rows = 0, cols = 0, ld = 0; // ld: global row stride (elements)
  int64_t width = 1;
  int64_t rowsTotal = 0, colsTotal = 0; // the matrix, for bounds
  int64_t sharedLd = 0, sharedSize = 0; // in elements
  int64_t vectorsPerThread = 0;
  // Raw: the operand is stored in the kernel's operand type and read 8 halves
  // (16 bytes) at a time, so its vectors go to shared memory unconverted, as
  // 16-byte words, and the fragments load from those words (a stride in
  // words): one 16-byte shared store per vector instead of 8 scalar ones, and
  // fragment loads the driver can turn into ldmatrix.
  bool raw = false;
  // A block-quantised weight (compiler/precision/Quantized.h), its blocks
  // along the tile's contiguous axis: read in runs of `width` elements of one
  // block (kernels/Dequant.h), dequantised to f32 and rounded to the operand
  // type on the way into shared memory; a run of 8 goes there as one 16-byte
  // word, as a raw stage's vectors do.
  std::optional<::tessera::quant::QuantizedWeight> quant;
  // Scalars of the staged values one thread carries per tile.
  int64_t valuesPerThread() const { return vectorsPerThread * (raw ? 1 : width); }
};

// The product's dispatch (A, B, the addend, C), or with S > 1 the partials'
// kernel and the sum that applies the epilogue.
void addMatmulSteps(LoweringContext &ctx, OpLowering &lowering, const MatmulOperands &mo, KernelHandle k, int64_t S,
                    int64_t n, MemRefType partialsT) {
  if (S > 1)
    return splitKSteps(ctx, lowering, mo, k, S, n, partialsT);
  SmallVector<unsigned> slots = {0, 1};
  if (mo.addend)
    slots.push_back(2);
  slots.push_back(mo.resultSlot());
  lowering.steps.push_back({k, slots});
}

// Stores one accumulator fragment (rows x cols of f32) at `at` of C (row
// stride ldc) after the fused epilogue, in f32 on the fragment: alpha times,
// plus D's tile (D lies where C does), rounded once to C's type.
struct FragmentStore {
  int64_t rows, cols, ldc;
  double alpha;
  Value D; // the addend, or null
  bool dHalf;
  Value C;
  bool cHalf, bf16;
};

void storeFragment(KernelBuilder &kb, Value out, const FragmentStore &s, Value at) {
  ImplicitLocOpBuilder &bb = kb.b;
  Type f16 = bb.getF16Type(), f32 = bb.getF32Type();
  auto cType = gpu::MMAMatrixType::get({s.rows, s.cols}, f32, "COp");
  auto elementwise = [&](Type t, ValueRange in, gpu::MMAElementwiseOp kind) -> Value {
    return bb.create<gpu::SubgroupMmaElementwiseOp>(t, in, kind);
  };
  if (s.alpha != 1.0) {
    Value alpha = bb.create<gpu::SubgroupMmaConstantMatrixOp>(cType, kb.f32(s.alpha));
    out = elementwise(cType, {out, alpha}, gpu::MMAElementwiseOp::MULF);
  }
  if (s.D) {
    auto dType = gpu::MMAMatrixType::get({s.rows, s.cols}, s.dHalf ? f16 : f32, "COp");
    Value d = bb.create<gpu::SubgroupMmaLoadMatrixOp>(dType, s.D, ValueRange{at}, bb.getIndexAttr(s.ldc), UnitAttr());
    if (s.dHalf) // half -> f32 (spirv.FConvert on the fragment)
      d = elementwise(cType, {d}, gpu::MMAElementwiseOp::EXTF);
    out = elementwise(cType, {out, d}, gpu::MMAElementwiseOp::ADDF);
  }
  if (s.cHalf && s.bf16) {
    // SPIR-V leaves FConvert's rounding to the device, and the H200's
    // f32 -> bf16 fragment conversion truncates (kcheck
    // KernelNumericsEpilogue.CoopMatNvidiaBf16, 2026-12-02). Rounding to
    // the bf16 grid first with correctly rounded f32 arithmetic
    // (Veltkamp's split: hi = c - (c - x), c = x (2^16 + 1)) leaves the
    // conversion nothing to round, so every device gives round to
    // nearest (even a contracted c - x keeps hi on the grid; |x| < 2^111).
    // The driver must not simplify c - (c - x) to x: KernelsToSPIRV
    // marks fragment arithmetic NoContraction (without it the H200
    // still truncated where an addend came before, 2026-12-02).
    Value split = bb.create<gpu::SubgroupMmaConstantMatrixOp>(cType, kb.f32(65537.0));
    Value c = elementwise(cType, {out, split}, gpu::MMAElementwiseOp::MULF);
    Value lo = elementwise(cType, {c, out}, gpu::MMAElementwiseOp::SUBF);
    out = elementwise(cType, {c, lo}, gpu::MMAElementwiseOp::SUBF);
  }
  if (s.cHalf) // f32 -> C's half type (spirv.FConvert on the fragment)
    out = elementwise(gpu::MMAMatrixType::get({s.rows, s.cols}, f16, "COp"), {out}, gpu::MMAElementwiseOp::EXTF);
  bb.create<gpu::SubgroupMmaStoreMatrixOp>(out, s.C, ValueRange{at}, bb.getIndexAttr(s.ldc), UnitAttr());
}

} // namespace

// Workgroup scope (VK_NV_cooperative_matrix2, a config whose mma is its whole
// tile): the workgroup owns one tile_m x tile_n accumulator and multiplies
// tile_k-deep matrices loaded straight from the operands' buffers; the driver
// stages them in shared memory and pipelines the K loop itself. Selection
// gives it only tiles that divide the problem and operands of the operand type
// (MatmulVariant::admits), so there are no edges and no conversions; split-K,
// batches and the epilogue are as above.
FailureOr<OpLowering> lowerMatmulCoopMatWorkgroup(LoweringContext &ctx, const MatmulOperands &mo,
                                                  MatmulConfigAttr config) {
  Operation *op = mo.op;
  auto lhsT = cast<ShapedType>(mo.lhs.getType());
  auto rhsT = cast<ShapedType>(mo.rhs.getType());
  auto outT = cast<ShapedType>(mo.result.getType());
  ArrayRef<int64_t> l = lhsT.getShape(), r = rhsT.getShape(), o = outT.getShape();
  MatmulProblem problem = matmulProblem(mo);
  const int64_t M = problem.m, K = problem.k, N = problem.n, batch = problem.batch;
  const int64_t TM = config.tileM(), TN = config.tileN(), TK = config.tileK();
  const bool bf16 = config.getOperands().isBF16();
  auto isHalf = [&](Type t) { return bf16 ? t.isBF16() : t.isF16(); };
  auto isOperand = [&](Type t) { return bf16 ? storageElementType(t).isInteger(16) : t.isF16(); };
  if (::tessera::quant::quantizedWeight(mo.lhs) || ::tessera::quant::quantizedWeight(mo.rhs) ||
      !isOperand(lhsT.getElementType()) || !isOperand(rhsT.getElementType()) || M % TM || N % TN || K % TK)
    return op->emitError("a workgroup-scope cooperative-matrix config (variant ")
           << config.getVariant() << ") needs " << TM << "x" << TN << "x" << TK
           << " tiles that divide the problem and unquantised operands of its operand type";
  OpLowering lowering;
  if (numElements(o) == 0)
    return lowering;
  // Plain variables, not structured bindings: the kernel body's lambdas capture them.
  SmallVector<DimMap> aMap, bMap;
  std::tie(aMap, bMap) = operandBatchMaps(problem, o, l, r);
  const int64_t maxG = ctx.maxWorkgroupCount;
  const int64_t tilesM = M / TM, tilesN = N / TN, tilesK = K / TK;
  int64_t S, kPer;
  std::tie(S, kPer) = splitK(config.getSplitK(), batch, tilesK, maxG);
  MemRefType partialsT = MemRefType::get({S * M * N}, Float32Type::get(op->getContext()));
  if (S > 1)
    outT = RankedTensorType::get({S * M * N}, Float32Type::get(op->getContext()));
  const bool epilogueHere = S == 1 && mo.hasEpilogue(), addendHere = S == 1 && mo.addend;
  const bool cHalf = isHalf(outT.getElementType());
  Type addendElem = addendHere ? cast<ShapedType>(mo.addend.getType()).getElementType() : Type();
  const bool dHalf = addendHere && isHalf(addendElem);
  if ((!cHalf && !outT.getElementType().isF32()) || (addendHere && !dHalf && !addendElem.isF32()))
    return op->emitError("a workgroup-scope cooperative-matrix matmul stores f32 or its operand type");
  auto halfBinding = [&](ShapedType t) {
    return MemRefType::get(flatMemRefType(t).getShape(), Float16Type::get(op->getContext()));
  };
  SmallVector<Type> args = {halfBinding(lhsT), halfBinding(rhsT)};
  if (addendHere)
    args.push_back(dHalf ? halfBinding(cast<ShapedType>(mo.addend.getType()))
                         : flatMemRefType(cast<ShapedType>(mo.addend.getType())));
  args.push_back(cHalf ? halfBinding(outT) : flatMemRefType(outT));
  const int64_t NT = config.threads();
  const int64_t gx = std::min(tilesN, maxG), gy = std::min(tilesM, maxG),
                gz = S > 1 ? S : std::max<int64_t>(1, std::min(batch, maxG));
  std::string key = opKey(op) + " coopmat workgroup";
  KernelHandle k = ctx.getOrCreate("matmul_coopmat_wg", key, args, {NT, 1, 1}, [&](KernelBuilder &kb) {
    ImplicitLocOpBuilder &bb = kb.b;
    Type f16 = bb.getF16Type(), f32 = bb.getF32Type();
    kb.gpuModule->setAttr(kWorkgroupMatricesAttr, bb.getUnitAttr());
    if (bf16)
      kb.gpuModule->setAttr(kBf16AsF16Attr, bb.getUnitAttr());
    Value A = kb.arg(0), B = kb.arg(1), C = kb.arg(addendHere ? 3 : 2);
    Value D = addendHere ? kb.arg(2) : Value();
    auto aType = gpu::MMAMatrixType::get({TM, TK}, f16, "AOp");
    auto bType = gpu::MMAMatrixType::get({TK, TN}, f16, "BOp");
    auto cType = gpu::MMAMatrixType::get({TM, TN}, f32, "COp");
    const FragmentStore store{TM, TN, N, epilogueHere ? mo.alpha : 1.0, D, dHalf, C, cHalf, bf16};
    const MatmulTiles tiles{S, kPer, tilesK, tilesM, tilesN, TM, TN, batch, M * N, gx, gy, gz, aMap, bMap};
    forEachMatmulTile(kb, tiles, [&](const MatmulSlice &z, Value m0, Value n0) {
      Value aBase = z.aBase, bBase = z.bBase, cBase = z.cBase, ktBegin = z.ktBegin, ktEnd = z.ktEnd;
      Value zero = bb.create<gpu::SubgroupMmaConstantMatrixOp>(cType, kb.f32(0.0));
      SmallVector<Value> acc = kb.forLoopIter(
          ktBegin, ktEnd, kb.idx(1), {zero}, [&](Value kt, ValueRange in) -> SmallVector<Value> {
            Value k0 = kb.muli(kt, TK);
            // A: [M, K] row-major, or [K, M] (tl) read column-major; B likewise.
            Value aAt = kb.add(aBase, mo.tl ? kb.add(kb.muli(k0, M), m0) : kb.add(kb.muli(m0, K), k0));
            Value bAt = kb.add(bBase, mo.tr ? kb.add(kb.muli(n0, K), k0) : kb.add(kb.muli(k0, N), n0));
            Value a = bb.create<gpu::SubgroupMmaLoadMatrixOp>(aType, A, ValueRange{aAt},
                                                              bb.getIndexAttr(mo.tl ? M : K),
                                                              mo.tl ? bb.getUnitAttr() : UnitAttr());
            Value b = bb.create<gpu::SubgroupMmaLoadMatrixOp>(bType, B, ValueRange{bAt},
                                                              bb.getIndexAttr(mo.tr ? K : N),
                                                              mo.tr ? bb.getUnitAttr() : UnitAttr());
            return {bb.create<gpu::SubgroupMmaComputeOp>(cType, a, b, in[0], UnitAttr(), UnitAttr())};
          });
      storeFragment(kb, acc[0], store, kb.add(cBase, kb.add(kb.muli(m0, N), n0)));
    });
    return std::array<int64_t, 3>{gx, gy, gz};
  });
  addMatmulSteps(ctx, lowering, mo, k, S, M * N, partialsT);
  return lowering;
}

FailureOr<OpLowering> lowerMatmulCoopMat(LoweringContext &ctx, const MatmulOperands &mo, MatmulConfigAttr config) {
  if (isWorkgroupScope(config)) {
    // A block-quantised weight is dequantised while staged, which the driver's
    // staging cannot do: such products run the subgroup kernel on 16 x 16 x 16
    // fragments (the granularity of every device with workgroup scope so far)
    // with K steps of 32, which fit 48 KiB.
    if (!::tessera::quant::quantizedWeight(mo.lhs) && !::tessera::quant::quantizedWeight(mo.rhs))
      return lowerMatmulCoopMatWorkgroup(ctx, mo, config);
    int64_t tk = std::min<int64_t>(config.tileK(), 32);
    config = MatmulConfigAttr::get(config.getContext(), config.getVariant(), config.getKind(),
                                   {config.tileM(), config.tileN(), tk}, config.getThread(), config.getSplitK(),
                                   {16, 16, 16}, config.getSubgroups(), config.getOperands());
  }
  Operation *op = mo.op;
  auto lhsT = cast<ShapedType>(mo.lhs.getType());
  auto rhsT = cast<ShapedType>(mo.rhs.getType());
  auto outT = cast<ShapedType>(mo.result.getType());
  ArrayRef<int64_t> l = lhsT.getShape(), r = rhsT.getShape(), o = outT.getShape();
  // A quantised weight stored transposed (blocks along its axis 0) is staged
  // from its buffer's orientation: the operand's transpose flag flips, so the
  // tile's contiguous axis runs along the blocks.
  std::optional<::tessera::quant::QuantizedWeight> qa = ::tessera::quant::quantizedWeight(mo.lhs),
                                                   qb = ::tessera::quant::quantizedWeight(mo.rhs);
  std::string quantKeys;
  if (qa)
    quantKeys += " lhs " + quantKey(*qa);
  if (qb)
    quantKeys += " rhs " + quantKey(*qb);
  bool tl = mo.tl, tr = mo.tr;
  for (auto [q, t] : {std::pair{&qa, &tl}, std::pair{&qb, &tr}}) {
    if (*q && (*q)->transposed) {
      **q = {(*q)->dtype, /*transposed=*/false, (*q)->cols, (*q)->rows};
      *t = !*t;
    }
  }
  MatmulProblem problem = matmulProblem(mo);
  const int64_t M = problem.m, K = problem.k, N = problem.n, batch = problem.batch;
  OpLowering lowering;
  if (numElements(o) == 0)
    return lowering;

  // Plain variables, not structured bindings: the kernel body's lambdas capture them.
  SmallVector<DimMap> aMap, bMap;
  std::tie(aMap, bMap) = operandBatchMaps(problem, o, l, r);

  const int64_t TM = config.tileM(), TN = config.tileN(), TK = config.tileK();
  const int64_t MM = config.getMma()[0], MN = config.getMma()[1], MK = config.getMma()[2];
  const int64_t SGM = config.getSubgroups()[0], SGN = config.getSubgroups()[1];
  const int64_t FM = config.fragmentsM(), FN = config.fragmentsN();
  const int64_t SG = config.subgroupSize(), NT = SGM * SGN * SG;
  const int64_t maxG = ctx.maxWorkgroupCount;
  const int64_t tilesM = ceilDiv(M, TM), tilesN = ceilDiv(N, TN), tilesK = ceilDiv(K, TK);
  int64_t S, kPer;
  std::tie(S, kPer) = splitK(config.getSplitK(), batch, tilesK, maxG);

  Type storageA = storageElementType(lhsT.getElementType());
  Type storageB = storageElementType(rhsT.getElementType());

  // A: [M, K] (tl: [K, M]); B: [K, N] (tr: [N, K]); tiles in memory orientation.
  Stage a, b;
  a.rows = tl ? TK : TM, a.cols = tl ? TM : TK, a.ld = tl ? M : K;
  a.rowsTotal = tl ? K : M, a.colsTotal = tl ? M : K;
  b.rows = tr ? TN : TK, b.cols = tr ? TK : TN, b.ld = tr ? K : N;
  b.rowsTotal = tr ? N : K, b.colsTotal = tr ? K : N;
  a.quant = qa;
  b.quant = qb;
  auto quantRun = [](const Stage &s) -> int64_t {
    for (int64_t n : {8, 4})
      if (::tessera::lowering::dequantRunFits(*s.quant, n) && s.cols % n == 0)
        return n;
    return 1;
  };
  for (Stage *s : {&a, &b}) {
    Type st = s == &a ? storageA : storageB;
    s->width = s->quant ? quantRun(*s) : vectorWidthFor(config.vectorWidth(), s->ld, s->cols, st);
    s->sharedLd = s->cols + kPad;
    s->sharedSize = s->rows * s->sharedLd;
    int64_t vectors = s->rows * s->cols / s->width;
    s->vectorsPerThread = ceilDiv(vectors, NT);
    bool sameType = !s->quant && (config.getOperands().isBF16() ? st.isInteger(16) : st.isF16());
    s->raw = (sameType || s->quant) && s->width == 8 && s->sharedLd % 8 == 0 && MM % 8 == 0 && MN % 8 == 0 && MK % 8 == 0;
  }
  const bool wholeTiles = M % TM == 0 && N % TN == 0;
  const ShapedType resultT = outT;
  MemRefType partialsT = MemRefType::get({S * M * N}, Float32Type::get(op->getContext()));
  if (S > 1)
    outT = RankedTensorType::get({S * M * N}, Float32Type::get(op->getContext()));
  // The epilogue (alpha, addend) is applied here unless the split-K sum applies it.
  const bool epilogueHere = S == 1 && mo.hasEpilogue(), addendHere = S == 1 && mo.addend;
  Type storageC = storageElementType(outT.getElementType());
  // C (and an addend) in the kernel's half type is bound as f16 (bf16 bits in
  // a bf16 kernel, retyped with the rest), so fragments convert and store
  // (load) cooperatively.
  auto isHalf = [&](Type t) { return config.getOperands().isBF16() ? t.isBF16() : t.isF16(); };
  const bool cHalf = isHalf(outT.getElementType());
  Type addendElem = addendHere ? cast<ShapedType>(mo.addend.getType()).getElementType() : Type();
  const bool dHalf = addendHere && isHalf(addendElem);
  // Cooperative loads and stores of global rows want 16-byte aligned rows
  // (Vulkan: the lesser of 16 bytes and a fragment row's); fragment columns
  // start at multiples of mma_n.
  auto rowsAligned = [&](int64_t bytes) { return N * bytes % 16 == 0 && MN * bytes % 16 == 0; };
  const bool fragmentEpilogue =
      epilogueHere && rowsAligned(cHalf ? 2 : 4) &&
      (!addendHere || ((dHalf || addendElem.isF32()) && rowsAligned(dHalf ? 2 : 4)));
  // Tiles inside C are stored from fragments, the others through scratch.
  const bool coopStoreC = (cHalf || storageC.isF32()) && (!epilogueHere || fragmentEpilogue);

  std::string key = opKey(op) + " coopmat" + quantKeys;
  MemRefType cMem = flatMemRefType(outT);
  if (cHalf)
    cMem = MemRefType::get(cMem.getShape(), Float16Type::get(op->getContext()));
  auto operandMemRef = [&](const Stage &s, ShapedType t) {
    return s.quant ? quantMemRefType(op->getContext(), *s.quant) : vectorMemRef(t, s.width);
  };
  SmallVector<Type> args = {operandMemRef(a, lhsT), operandMemRef(b, rhsT)};
  if (addendHere) {
    MemRefType dMem = flatMemRefType(cast<ShapedType>(mo.addend.getType()));
    if (dHalf)
      dMem = MemRefType::get(dMem.getShape(), Float16Type::get(op->getContext()));
    args.push_back(dMem);
  }
  args.push_back(cMem);
  const int64_t gx = std::min(tilesN, maxG), gy = std::min(tilesM, maxG),
                gz = S > 1 ? S : std::max<int64_t>(1, std::min(batch, maxG));

  KernelHandle k = ctx.getOrCreate("matmul_coopmat", key, args, {NT, 1, 1}, [&](KernelBuilder &kb) {
    ImplicitLocOpBuilder &bb = kb.b;
    Type f16 = bb.getF16Type(), f32 = bb.getF32Type();
    Value A = kb.arg(0), B = kb.arg(1), C = kb.arg(addendHere ? 3 : 2);
    Value D = addendHere ? kb.arg(2) : Value();
    Type word4 = VectorType::get({4}, bb.getI32Type()); // 8 halves
    auto stageArray = [&](const Stage &s) {
      return s.raw ? kb.sharedArray(2 * s.sharedSize / 8, word4) : kb.sharedArray(2 * s.sharedSize, f16);
    };
    Value As = stageArray(a), Bs = stageArray(b);
    Value scratch = wholeTiles && coopStoreC ? Value() : kb.sharedArray(SGM * SGN * MM * MN, f32);
    // One f32 into C at `at`: a bf16 kernel's C holds bf16 bits in f16.
    auto storeC = [&](Value v, Value at) {
      if (cHalf && config.getOperands().isBF16())
        bb.create<memref::StoreOp>(bb.create<arith::BitcastOp>(f16, kb.f32ToBf16(v)), C, ValueRange{at});
      else
        kb.store(v, C, at);
    };
    // alpha * v + D[at] in f32, the scalar epilogue; a bf16 kernel's half
    // addend holds bf16 bits in f16.
    auto epilogue = [&](Value v, Value at) {
      if (!dHalf || !config.getOperands().isBF16())
        return matmulEpilogue(kb, v, mo.alpha, D, at);
      Value bits = bb.create<arith::BitcastOp>(bb.getIntegerType(16), bb.create<memref::LoadOp>(D, ValueRange{at}));
      return kb.fadd(matmulEpilogue(kb, v, mo.alpha, Value(), at), kb.bf16ToF32(bits));
    };
    // Only the subgroup's lanes share its scratch fragment.
    auto subgroupBarrier = [&] {
      bb.create<spirv::ControlBarrierOp>(spirv::Scope::Subgroup, spirv::Scope::Subgroup,
                                         spirv::MemorySemantics::AcquireRelease |
                                             spirv::MemorySemantics::WorkgroupMemory);
    };
    Value tid = kb.threadId();
    Value sg = bb.create<gpu::SubgroupIdOp>(/*upperBound=*/nullptr);
    Value lane = bb.create<gpu::LaneIdOp>(/*upperBound=*/nullptr);
    Value sgm = kb.udiv(sg, kb.idx(SGN)), sgn = kb.urem(sg, kb.idx(SGN));
    auto aType = gpu::MMAMatrixType::get({MM, MK}, f16, "AOp");
    auto bType = gpu::MMAMatrixType::get({MK, MN}, f16, "BOp");
    auto cType = gpu::MMAMatrixType::get({MM, MN}, f32, "COp");

    const bool bf16 = config.getOperands().isBF16();
    if (bf16)
      kb.gpuModule->setAttr(kBf16AsF16Attr, bb.getUnitAttr());
    // One stored element (f32, f16, or bf16 as i16) as the shared-memory
    // element: f16, or bf16 bits in an f16.
    auto toShared = [&](Value x) -> Value {
      Type t = x.getType();
      if (bf16) {
        Value bits = t.isInteger(16) ? x : kb.f32ToBf16(t.isF16() ? bb.create<arith::ExtFOp>(f32, x).getResult() : x);
        return bb.create<arith::BitcastOp>(f16, bits);
      }
      if (t.isF16())
        return x;
      Value v = t.isInteger(16) ? kb.bf16ToF32(x) : x;
      Value lim = kb.f32(65504.0);
      v = bb.create<arith::MinimumFOp>(bb.create<arith::MaximumFOp>(v, bb.create<arith::NegFOp>(lim)), lim);
      return bb.create<arith::TruncFOp>(f16, v);
    };
    Value zeroShared = bb.create<arith::ConstantOp>(bb.getF16FloatAttr(0.0)); // +0 in f16 and bf16
    Value zeroWords = bb.create<arith::ConstantOp>(word4, DenseElementsAttr::get(cast<VectorType>(word4), 0));
    // What one thread carries of a stage's tile between its load and its store.
    auto stageTypes = [&](const Stage &s) { return SmallVector<Type>(s.valuesPerThread(), s.raw ? word4 : f16); };
    auto stageZeros = [&](const Stage &s) {
      return SmallVector<Value>(s.valuesPerThread(), s.raw ? zeroWords : zeroShared);
    };

    // The vectors of one stage a thread loads, as shared elements (zero
    // outside the matrix).
    auto loadStage = [&](const Stage &s, Value mem, Value base, Value row0, Value col0) {
      SmallVector<Value> values;
      Type storage = cast<MemRefType>(mem.getType()).getElementType();
      int64_t vecCols = s.cols / s.width;
      for (int64_t j = 0; j < s.vectorsPerThread; ++j) {
        Value v = kb.addi(tid, j * NT);
        Value row = kb.udiv(v, kb.idx(vecCols)), vc = kb.urem(v, kb.idx(vecCols));
        Value grow = kb.add(row0, row), gcol = kb.add(col0, kb.muli(vc, s.width));
        // Tiles that divide the matrix, covered exactly by the threads, need
        // no bounds check: the loads are straight-line code.
        const bool partialThreads = s.rows * s.cols / s.width % NT;
        const bool checked = s.rowsTotal % s.rows || s.colsTotal % s.cols || partialThreads;
        Value inside = kb.andi(kb.ulti(grow, s.rowsTotal), kb.ulti(gcol, s.colsTotal));
        if (partialThreads)
          inside = kb.andi(inside, kb.ulti(v, s.rows * vecCols));
        Value at = kb.add(base, kb.add(kb.muli(grow, s.ld), gcol)); // in elements
        SmallVector<Type> types(s.raw ? 1 : s.width, s.raw ? word4 : f16);
        scf::IfOp ifOp = checked ? bb.create<scf::IfOp>(types, inside, true, true) : scf::IfOp();
        {
          OpBuilder::InsertionGuard g(bb);
          if (ifOp)
            bb.setInsertionPointToStart(&ifOp.getThenRegion().front());
          SmallVector<Value> lanes;
          if (s.quant) {
            // The weight is 2-D (batch 1 or broadcast): `at` is its flat index
            // in the buffer's orientation.
            SmallVector<Value> run;
            if (s.width == 1)
              run.push_back(loadDequantized(kb, mem, *s.quant, at));
            else
              run = loadDequantizedRun(kb, mem, *s.quant, at, s.width);
            for (Value &v : run)
              v = toShared(v);
            if (s.raw) {
              // Pairs of halves into i32 words, the lower address in the low bits.
              Value packed = zeroWords;
              for (int64_t w = 0; w < 4; ++w) {
                auto bits = [&](Value h) {
                  return bb.create<arith::ExtUIOp>(bb.getI32Type(),
                                                   bb.create<arith::BitcastOp>(bb.getIntegerType(16), h));
                };
                Value word = bb.create<arith::OrIOp>(bits(run[2 * w]),
                                                     bb.create<arith::ShLIOp>(bits(run[2 * w + 1]), kb.i32(16)));
                packed = bb.create<vector::InsertOp>(word, packed, ArrayRef<int64_t>{w});
              }
              lanes.push_back(packed);
            } else {
              lanes.append(run.begin(), run.end());
            }
          } else if (s.raw) {
            lanes.push_back(bb.create<memref::LoadOp>(mem, ValueRange{kb.udiv(at, kb.idx(8))}));
          } else if (s.width == 1) {
            lanes.push_back(toShared(bb.create<memref::LoadOp>(mem, ValueRange{at})));
          } else {
            Value vec = bb.create<memref::LoadOp>(mem, ValueRange{kb.udiv(at, kb.idx(s.width))});
            if (s.width == 8) {
              // Pairs of halves in i32 words, the lower address in the low bits.
              bool isF16 = (&s == &a ? storageA : storageB).isF16();
              for (int64_t e = 0; e < 4; ++e) {
                Value word = bb.create<vector::ExtractOp>(vec, ArrayRef<int64_t>{e});
                for (int half = 0; half < 2; ++half) {
                  Value bits = half ? bb.create<arith::ShRUIOp>(word, kb.i32(16)).getResult() : word;
                  Value h = bb.create<arith::TruncIOp>(bb.getIntegerType(16), bits);
                  lanes.push_back(toShared(isF16 ? bb.create<arith::BitcastOp>(f16, h).getResult() : h));
                }
              }
            } else {
              for (int64_t e = 0; e < s.width; ++e)
                lanes.push_back(toShared(bb.create<vector::ExtractOp>(vec, ArrayRef<int64_t>{e})));
            }
          }
          if (!ifOp) {
            values.append(lanes.begin(), lanes.end());
            continue;
          }
          bb.create<scf::YieldOp>(lanes);
          bb.setInsertionPointToStart(&ifOp.getElseRegion().front());
          bb.create<scf::YieldOp>(SmallVector<Value>(types.size(), s.raw ? zeroWords : zeroShared));
        }
        values.append(ifOp.getResults().begin(), ifOp.getResults().end());
      }
      return values;
    };
    auto storeStage = [&](const Stage &s, Value shared, Value buffer, ArrayRef<Value> values) {
      int64_t vecCols = s.cols / s.width;
      Value base = kb.muli(buffer, s.sharedSize);
      for (int64_t j = 0; j < s.vectorsPerThread; ++j) {
        Value v = kb.addi(tid, j * NT);
        auto body = [&] {
          Value row = kb.udiv(v, kb.idx(vecCols)), vc = kb.urem(v, kb.idx(vecCols));
          Value at = kb.add(base, kb.add(kb.muli(row, s.sharedLd), kb.muli(vc, s.width)));
          if (s.raw) {
            bb.create<memref::StoreOp>(values[j], shared, ValueRange{kb.udiv(at, kb.idx(8))});
            return;
          }
          for (int64_t e = 0; e < s.width; ++e)
            bb.create<memref::StoreOp>(values[j * s.width + e], shared, ValueRange{kb.addi(at, e)});
        };
        if (s.rows * s.cols / s.width % NT)
          kb.ifThen(kb.ulti(v, s.rows * vecCols), body);
        else
          body();
      }
    };

    const FragmentStore fragmentStore{MM, MN, N, epilogueHere ? mo.alpha : 1.0, addendHere ? D : Value(), dHalf,
                                      C, cHalf, bf16};
    const MatmulTiles tiles{S, kPer, tilesK, tilesM, tilesN, TM, TN, batch, M * N, gx, gy, gz, aMap, bMap};
    forEachMatmulTile(kb, tiles, [&](const MatmulSlice &z, Value m0, Value n0) {
      Value aBase = z.aBase, bBase = z.bBase, cBase = z.cBase, ktBegin = z.ktBegin, ktEnd = z.ktEnd;
      // Tile kt of A / B: (row0, col0) in memory orientation.
      auto aOrigin = [&](Value k0) { return tl ? std::pair{k0, m0} : std::pair{m0, k0}; };
      auto bOrigin = [&](Value k0) { return tr ? std::pair{n0, k0} : std::pair{k0, n0}; };
      auto loadTiles = [&](Value kt) {
        Value k0 = kb.muli(kt, TK);
        auto [ar, ac] = aOrigin(k0);
        auto [br, bc] = bOrigin(k0);
        SmallVector<Value> av = loadStage(a, A, aBase, ar, ac);
        SmallVector<Value> bv = loadStage(b, B, bBase, br, bc);
        return std::pair{av, bv};
      };
      {
        auto [av, bv] = loadTiles(ktBegin);
        storeStage(a, As, kb.idx(0), av);
        storeStage(b, Bs, kb.idx(0), bv);
      }
      kb.barrier();

      Value zeroC = bb.create<gpu::SubgroupMmaConstantMatrixOp>(cType, kb.f32(0.0));
      SmallVector<Value> init(FM * FN, zeroC);
      SmallVector<Value> acc = kb.forLoopIter(
          ktBegin, ktEnd, kb.idx(1), init, [&](Value kt, ValueRange accIn) -> SmallVector<Value> {
            // Buffers alternate by position in this workgroup's K range.
            Value buffer = kb.urem(kb.sub(kt, ktBegin), kb.idx(2));
            Value next = kb.addi(kt, 1);
            Value more = kb.ult(next, ktEnd);
            // Prefetch tile kt + 1 into registers.
            SmallVector<Value> prefetched;
            if (tilesK > 1) {
              SmallVector<Type> types = stageTypes(a);
              types.append(stageTypes(b));
              auto ifOp = bb.create<scf::IfOp>(types, more, true, true);
              OpBuilder::InsertionGuard g(bb);
              bb.setInsertionPointToStart(&ifOp.getThenRegion().front());
              auto [av, bv] = loadTiles(next);
              av.append(bv.begin(), bv.end());
              bb.create<scf::YieldOp>(av);
              bb.setInsertionPointToStart(&ifOp.getElseRegion().front());
              SmallVector<Value> zeros = stageZeros(a);
              zeros.append(stageZeros(b));
              bb.create<scf::YieldOp>(zeros);
              prefetched.assign(ifOp.getResults().begin(), ifOp.getResults().end());
            }
            // Multiply the fragments of tile kt.
            SmallVector<Value> out(accIn.begin(), accIn.end());
            Value aBuf = kb.muli(buffer, a.sharedSize), bBuf = kb.muli(buffer, b.sharedSize);
            for (int64_t ks = 0; ks < TK / MK; ++ks) {
              SmallVector<Value> af, bf;
              for (int64_t i = 0; i < FM; ++i) {
                Value row = kb.muli(kb.addi(kb.muli(sgm, FM), i), MM); // m within the tile
                Value at = tl ? kb.add(aBuf, kb.add(kb.idx(ks * MK * a.sharedLd), row))
                              : kb.add(aBuf, kb.addi(kb.muli(row, a.sharedLd), ks * MK));
                auto load = bb.create<gpu::SubgroupMmaLoadMatrixOp>(
                    aType, As, ValueRange{a.raw ? kb.udiv(at, kb.idx(8)) : at},
                    bb.getIndexAttr(a.raw ? a.sharedLd / 8 : a.sharedLd), tl ? bb.getUnitAttr() : UnitAttr());
                af.push_back(load);
              }
              for (int64_t j = 0; j < FN; ++j) {
                Value col = kb.muli(kb.addi(kb.muli(sgn, FN), j), MN); // n within the tile
                Value at = tr ? kb.add(bBuf, kb.addi(kb.muli(col, b.sharedLd), ks * MK))
                              : kb.add(bBuf, kb.add(kb.idx(ks * MK * b.sharedLd), col));
                auto load = bb.create<gpu::SubgroupMmaLoadMatrixOp>(
                    bType, Bs, ValueRange{b.raw ? kb.udiv(at, kb.idx(8)) : at},
                    bb.getIndexAttr(b.raw ? b.sharedLd / 8 : b.sharedLd), tr ? bb.getUnitAttr() : UnitAttr());
                bf.push_back(load);
              }
              for (int64_t i = 0; i < FM; ++i)
                for (int64_t j = 0; j < FN; ++j)
                  out[i * FN + j] = bb.create<gpu::SubgroupMmaComputeOp>(cType, af[i], bf[j], out[i * FN + j],
                                                                          UnitAttr(), UnitAttr());
            }
            // Write tile kt + 1 into the other buffer.
            if (tilesK > 1)
              kb.ifThen(more, [&] {
                Value other = kb.urem(kb.sub(next, ktBegin), kb.idx(2));
                ArrayRef<Value> all(prefetched);
                storeStage(a, As, other, all.take_front(a.valuesPerThread()));
                storeStage(b, Bs, other, all.drop_front(a.valuesPerThread()));
              });
            kb.barrier();
            return out;
          });

      // Epilogue: each fragment in C's type. A workgroup whose tile lies
      // inside C stores its fragments cooperatively; one on an edge of C
      // (or a C of another type) passes each fragment through the
      // subgroup's scratch fragment, its lanes writing the elements inside.
      // The branch is uniform across the workgroup (lavapipe loses
      // cooperative stores under branches that differ between subgroups).
      auto whole = [&](int64_t i, int64_t j) {
        Value row0 = kb.add(m0, kb.muli(kb.addi(kb.muli(sgm, FM), i), MM));
        Value col0 = kb.add(n0, kb.muli(kb.addi(kb.muli(sgn, FN), j), MN));
        Value at = kb.add(cBase, kb.add(kb.muli(row0, N), col0));
        storeFragment(kb, acc[i * FN + j], fragmentStore, at);
      };
      auto edge = [&](int64_t i, int64_t j) {
        Value frag = acc[i * FN + j];
        Value row0 = kb.add(m0, kb.muli(kb.addi(kb.muli(sgm, FM), i), MM));
        Value col0 = kb.add(n0, kb.muli(kb.addi(kb.muli(sgn, FN), j), MN));
        Value mine = kb.muli(sg, MM * MN);
        bb.create<gpu::SubgroupMmaStoreMatrixOp>(frag, scratch, ValueRange{mine}, bb.getIndexAttr(MN),
                                                 UnitAttr());
        subgroupBarrier();
        kb.forLoop(lane, kb.idx(MM * MN), kb.idx(SG), [&](Value e) {
          Value rr = kb.udiv(e, kb.idx(MN)), cc = kb.urem(e, kb.idx(MN));
          Value gr = kb.add(row0, rr), gc = kb.add(col0, cc);
          kb.ifThen(kb.andi(kb.ulti(gr, M), kb.ulti(gc, N)), [&] {
            Value at = kb.add(cBase, kb.add(kb.muli(gr, N), gc));
            Value v = kb.load(scratch, kb.add(mine, e));
            storeC(epilogueHere ? epilogue(v, at) : v, at);
          });
        });
        subgroupBarrier();
      };
      auto storeAll = [&](bool direct) {
        for (int64_t i = 0; i < FM; ++i)
          for (int64_t j = 0; j < FN; ++j)
            direct ? whole(i, j) : edge(i, j);
      };
      if (wholeTiles && coopStoreC) {
        storeAll(true);
      } else if (!coopStoreC) {
        storeAll(false);
      } else {
        Value inside = kb.andi(kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::ule, kb.addi(m0, TM), kb.idx(M)),
                               kb.b.create<arith::CmpIOp>(arith::CmpIPredicate::ule, kb.addi(n0, TN), kb.idx(N)));
        auto ifOp = bb.create<scf::IfOp>(TypeRange{}, inside, true, true);
        OpBuilder::InsertionGuard g(bb);
        bb.setInsertionPointToStart(&ifOp.getThenRegion().front());
        storeAll(true);
        bb.create<scf::YieldOp>();
        bb.setInsertionPointToStart(&ifOp.getElseRegion().front());
        storeAll(false);
        bb.create<scf::YieldOp>();
      }
    });
    return std::array<int64_t, 3>{gx, gy, gz};
  });
  (void)resultT;
  addMatmulSteps(ctx, lowering, mo, k, S, M * N, partialsT);
  return lowering;
}

} // namespace tessera::lowering
