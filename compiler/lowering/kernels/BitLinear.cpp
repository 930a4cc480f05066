// BitLinear.cpp - tessera.bitlinear_matmul: BitNet b1.58's forward product in
// integers, two kernels:
//
//   bitlinear_quant    x [R, K] -> int8 codes packed four to a word
//                      [R, K / 4] (byte j of word w: code 4w + j) and a [R]
//                      (f32): act_quant's a = (1 / max(max |x|, eps)) * 127,
//                      q = clamp(roundeven(x a), -128, 127), in the same f32
//                      operations (so the codes equal act_quant's); serial
//                      or workgroup rows under the op's #tessera.reduction_config
//   bitlinear_matmul   y [R, N] = (float(sum_k q_rk c_nk) / a_r) * scale: the
//                      sum in int32 (exact: |sum| <= 128 K), four codes per
//                      step, by OpSDot on packed 4x8-bit words where the
//                      module's target allows DotProductInput4x8BitPacked
//                      (VK_KHR_shader_integer_dot_product), else by integer
//                      multiply-adds of the bytes; a 4 x 4 register tile of
//                      outputs per thread, the ternary codes read from their
//                      TQ2_0 blocks (Dequant.h: loadTernaryCodes4)
//
// Slots: 0 x, 1 codes, 2 scale, 3 result, 4 packed codes, 5 a (scratch).
#include "compiler/lowering/kernels/ActQuantRow.h"
#include "compiler/lowering/kernels/Dequant.h"
#include "compiler/lowering/kernels/Kernels.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"

using namespace mlir;
using namespace mlir::tessera;

namespace tessera::lowering {

namespace {

constexpr int64_t kTile = 4; // outputs per thread along rows and along columns

/// Whether the module's target has packed 4x8-bit integer dot products.
bool targetHasIntegerDot(const LoweringContext &ctx) {
  auto env = dyn_cast_or_null<spirv::TargetEnvAttr>(ctx.targetEnv);
  return env && spirv::TargetEnv(env).allows(spirv::Capability::DotProductInput4x8BitPacked);
}

/// Signed byte j of a word, as i32.
Value byteOf(KernelBuilder &kb, Value word, int64_t j) {
  auto &b = kb.b;
  return b.create<arith::ShRSIOp>(b.create<arith::ShLIOp>(word, kb.i32(24 - 8 * j)), kb.i32(24));
}

/// acc + the dot product of two words of four signed bytes.
Value dot4(KernelBuilder &kb, bool integerDot, Value acc, Value x, Value c) {
  auto &b = kb.b;
  if (integerDot) {
    auto format = spirv::PackedVectorFormatAttr::get(b.getContext(), spirv::PackedVectorFormat::PackedVectorFormat4x8Bit);
    return b.create<arith::AddIOp>(acc, b.create<spirv::SDotOp>(b.getI32Type(), x, c, format));
  }
  for (int64_t j = 0; j < 4; ++j)
    acc = b.create<arith::AddIOp>(acc, b.create<arith::MulIOp>(byteOf(kb, x, j), byteOf(kb, c, j)));
  return acc;
}

KernelHandle quantKernel(LoweringContext &ctx, BitLinearMatmulOp op, MemRefType packedT, MemRefType scaleT) {
  auto type = cast<ShapedType>(op.getInput().getType());
  const RowKernel rk = rowKernel(ctx, type, kernelConfig<ReductionConfigAttr>(op));
  const int64_t len = rk.len, words = len / 4, rows = rk.rows, wg = rk.wg, groups = rk.groups;
  const bool serial = rk.serial;
  const double eps = op.getEps().convertToDouble();
  std::string key = opKey(op) + " quantise" + rk.strategy();
  MemRefType mem = flatMemRefType(type);
  return ctx.getOrCreate("bitlinear_quant", key, {mem, packedT, scaleT}, {wg, 1, 1}, [&](KernelBuilder &kb) {
    auto &b = kb.b;
    Value in = kb.arg(0), packed = kb.arg(1), scales = kb.arg(2);
    Value zero = kb.idx(0), one = kb.idx(1), lenV = kb.idx(len), wordsV = kb.idx(words);
    auto scaleOf = [&](Value m) { return actQuantScale(kb, m, eps); }; // act_quant's a
    // Words from..words step `step` of the row at `base`.
    auto packRow = [&](Value row, Value a, Value from, Value step) {
      Value base = kb.muli(row, len);
      kb.forLoop(from, wordsV, step, [&](Value w) {
        Value word = kb.i32(0);
        for (int64_t j = 0; j < 4; ++j) {
          Value x = kb.load(in, kb.add(base, kb.addi(kb.muli(w, 4), j)));
          Value c = actQuantCode(kb, x, a);
          Value byte = b.create<arith::AndIOp>(b.create<arith::FPToSIOp>(b.getI32Type(), c), kb.i32(0xff));
          word = b.create<arith::OrIOp>(word, b.create<arith::ShLIOp>(byte, kb.i32(8 * j)));
        }
        kb.store(word, packed, kb.add(kb.muli(row, words), w));
      });
    };
    if (serial) {
      kb.gridStrideLoop(rows, wg, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        Value a = scaleOf(rowAbsMax(kb, in, base, zero, lenV, one));
        kb.store(a, scales, row);
        packRow(row, a, zero, one);
      });
    } else {
      Value shared = kb.sharedArray(wg, b.getF32Type());
      Value tid = kb.threadId();
      Value step = kb.idx(wg);
      workgroupLoop(kb, rows, groups, [&](Value row) {
        Value base = kb.muli(row, len);
        Value pm = rowAbsMax(kb, in, base, tid, lenV, step);
        Value a = scaleOf(kb.workgroupReduce(pm, shared, tid, wg, [&](Value x, Value y) { return kb.fmax(x, y); }));
        kb.ifThen(b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, tid, zero), [&] { kb.store(a, scales, row); });
        packRow(row, a, tid, step);
      });
    }
    return std::array<int64_t, 3>{groups, 1, 1};
  });
}

KernelHandle productKernel(LoweringContext &ctx, BitLinearMatmulOp op, const quant::QuantizedWeight &q,
                           MemRefType packedT, MemRefType scaleT) {
  auto inT = cast<ShapedType>(op.getInput().getType()), outT = cast<ShapedType>(op.getType());
  const int64_t k = inT.getShape().back(), words = k / 4, rows = numElements(inT.getShape()) / k, n = q.rows;
  const int64_t tilesM = (rows + kTile - 1) / kTile, tilesN = (n + kTile - 1) / kTile, tiles = tilesM * tilesN;
  const int64_t wg = ctx.elementwiseWorkgroup, groups = gridGroups(tiles, wg, ctx.maxWorkgroupCount);
  const bool integerDot = targetHasIntegerDot(ctx);
  MemRefType codesT = quantMemRefType(op->getContext(), q), wscaleT = flatMemRefType(cast<ShapedType>(op.getScale().getType())),
             outMem = flatMemRefType(outT);
  std::string key = opKey(op) + " " + quantKey(q) + (integerDot ? " sdot" : " muladd");
  return ctx.getOrCreate(
      "bitlinear_matmul", key, {packedT, scaleT, codesT, wscaleT, outMem}, {wg, 1, 1}, [&](KernelBuilder &kb) {
        auto &b = kb.b;
        Value packed = kb.arg(0), scales = kb.arg(1), codes = kb.arg(2), wscale = kb.arg(3), out = kb.arg(4);
        kb.gridStrideLoop(tiles, wg, groups, [&](Value t) {
          Value row0 = kb.muli(kb.udiv(t, kb.idx(tilesN)), kTile), col0 = kb.muli(kb.urem(t, kb.idx(tilesN)), kTile);
          // Edge tiles read the last row / column again and do not store it.
          SmallVector<Value> rowAt, colAt;
          for (int64_t i = 0; i < kTile; ++i) {
            rowAt.push_back(b.create<arith::MinUIOp>(kb.addi(row0, i), kb.idx(rows - 1)));
            colAt.push_back(b.create<arith::MinUIOp>(kb.addi(col0, i), kb.idx(n - 1)));
          }
          SmallVector<Value> init(kTile * kTile, kb.i32(0));
          SmallVector<Value> acc = kb.forLoopIter(
              kb.idx(0), kb.idx(words), kb.idx(1), init, [&](Value w, ValueRange a) -> SmallVector<Value> {
                SmallVector<Value> x, c, next;
                for (int64_t i = 0; i < kTile; ++i) {
                  x.push_back(kb.load(packed, kb.add(kb.muli(rowAt[i], words), w)));
                  c.push_back(loadTernaryCodes4(kb, codes, q, kb.add(kb.muli(colAt[i], k), kb.muli(w, 4))));
                }
                for (int64_t i = 0; i < kTile; ++i)
                  for (int64_t j = 0; j < kTile; ++j)
                    next.push_back(dot4(kb, integerDot, a[i * kTile + j], x[i], c[j]));
                return next;
              });
          Value ws = kb.load(wscale, kb.idx(0));
          for (int64_t i = 0; i < kTile; ++i) {
            Value a = kb.load(scales, rowAt[i]);
            for (int64_t j = 0; j < kTile; ++j) {
              Value inside = kb.andi(kb.ulti(kb.addi(row0, i), rows), kb.ulti(kb.addi(col0, j), n));
              kb.ifThen(inside, [&] {
                Value sum = b.create<arith::SIToFPOp>(b.getF32Type(), acc[i * kTile + j]);
                kb.store(kb.fmul(kb.fdivRounded(sum, a), ws), out, kb.add(kb.muli(rowAt[i], n), colAt[j]));
              });
            }
          }
        });
        return std::array<int64_t, 3>{groups, 1, 1};
      });
}

} // namespace

FailureOr<OpLowering> lowerBitLinearMatmul(LoweringContext &ctx, BitLinearMatmulOp op) {
  std::optional<quant::QuantizedWeight> q = quant::quantizedWeight(op.getCodes());
  if (!q || q->dtype != plan::DType::TQ2_0 || q->transposed)
    return op.emitOpError("codes must be a TQ2_0 weight with blocks along K (tessera-assign-quant)"), failure();
  auto inT = cast<ShapedType>(op.getInput().getType());
  const int64_t k = inT.getShape().back(), rows = numElements(inT.getShape()) / k;
  OpLowering lowering;
  if (rows == 0)
    return lowering;
  MLIRContext *mctx = op->getContext();
  auto packedT = MemRefType::get({std::max<int64_t>(rows * (k / 4), 1)}, IntegerType::get(mctx, 32));
  auto scaleT = MemRefType::get({rows}, Float32Type::get(mctx));
  lowering.scratch.push_back({packedT, "codes"});
  lowering.scratch.push_back({scaleT, "row_scale"});
  KernelHandle quantise = quantKernel(ctx, op, packedT, scaleT);
  KernelHandle product = productKernel(ctx, op, *q, packedT, scaleT);
  lowering.steps.push_back({quantise, {0, 4, 5}});
  lowering.steps.push_back({product, {4, 5, 1, 2, 3}});
  return lowering;
}

} // namespace tessera::lowering
