//===- ChunkLoss.cpp - tessera-chunk-loss ---------------------------------===//
//
// Splits the lm_head matmul and cross_entropy of @loss into chunks of token
// rows so that the [tokens x vocab] logits never exist whole:
//
//   %logits = matmul %h, %W  ->  row-wise ops (reshape, unary, binary with a
//   scalar)  ->  cross_entropy %logits, %labels {shift}
//
// becomes, with N token rows in chunks of C,
//
//   %h2      = reshape %h -> [N, H]
//   %targets = labels shifted by one position (the last of each sequence
//              gets ignore_index), flattened to [N]           (shift only)
//   %valid   = 1 where a target counts (0 <= t < V), else 0, as f32 [N]
//   %denom   = max(sum(%valid), 1)
//   per chunk c: %lc = matmul(slice(%h2, rows c)), row-wise ops,
//                %mc = cross_entropy %lc, slice(%targets) {shift = false}
//                %part_c = %mc * sum(slice(%valid))
//   %loss    = (sum of %part_c) / %denom
//
// which is the same mean over counted tokens (cross_entropy returns the mean
// over its chunk's counted rows, 0 when none count). Autodiff then derives
// one cross_entropy_grad per chunk; tessera-schedule-loss-chunks moves each
// right after its chunk so that the chunk's logits die before the next.
//
// The chunk size is `chunk-tokens`, or else the most rows whose logits fit
// `budget-bytes` (then only when the whole logits do not fit). Chunks are
// balanced: ceil(N / ceil(N / C)) rows. A cross_entropy whose ignore_index
// is a valid class, or whose logits come from anything but the pattern
// above, is left alone.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERACHUNKLOSS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

// One value that broadcasts against [rows, vocab] without adding dimensions.
bool isScalar(Value v) {
  auto t = cast<ShapedType>(v.getType());
  return t.getRank() <= 2 && t.getNumElements() == 1;
}

// The ops from the lm_head matmul to the cross_entropy's logits operand, in
// forward order (the matmul first), or empty when the pattern does not hold.
SmallVector<Operation *> logitsChain(CrossEntropyOp ce) {
  SmallVector<Operation *> chain;
  Value v = ce.getLogits();
  int64_t vocab = cast<ShapedType>(v.getType()).getShape().back();
  while (true) {
    Operation *def = v.getDefiningOp();
    if (!def || !v.hasOneUse())
      return {};
    chain.push_back(def);
    if (auto m = dyn_cast<MatmulOp>(def)) {
      auto lhs = cast<ShapedType>(m.getLhs().getType());
      auto rhs = cast<ShapedType>(m.getRhs().getType());
      if (m.getTransposeLhs() || rhs.getRank() != 2 || lhs.getRank() < 2 ||
          cast<ShapedType>(m.getType()).getShape().back() != vocab)
        return {};
      std::reverse(chain.begin(), chain.end());
      return chain;
    }
    if (auto r = dyn_cast<ReshapeOp>(def)) {
      auto in = cast<ShapedType>(r.getInput().getType());
      if (in.getRank() == 0 || in.getShape().back() != vocab)
        return {};
      v = r.getInput();
    } else if (auto u = dyn_cast<UnaryOp>(def)) {
      v = u.getInput();
    } else if (auto b = dyn_cast<BinaryOp>(def)) {
      if (isScalar(b.getRhs()) && !isScalar(b.getLhs()))
        v = b.getLhs();
      else if (isScalar(b.getLhs()) && !isScalar(b.getRhs()))
        v = b.getRhs();
      else
        return {};
    } else {
      return {};
    }
  }
}

/// Ops at one location; result types are the ops' own inference.
struct Builder {
  OpBuilder &b;
  Location loc;
  RankedTensorType i32(ArrayRef<int64_t> s) { return RankedTensorType::get(s, b.getI32Type()); }
  /// A rank-0 constant of `like`'s element type.
  Value scalar(double v, Value like) {
    Type e = cast<ShapedType>(like.getType()).getElementType();
    auto t = RankedTensorType::get({}, e);
    return b.create<ConstantOp>(loc, DenseElementsAttr::get(t, b.getFloatAttr(e, v)));
  }
  Value binary(BinaryFn fn, Value x, Value y) { return b.create<BinaryOp>(loc, fn, x, y); }
  Value reshape(Value x, ArrayRef<int64_t> shape) {
    auto t = cast<ShapedType>(x.getType());
    if (t.getShape() == shape)
      return x;
    return b.create<ReshapeOp>(loc, RankedTensorType::get(shape, t.getElementType()), x);
  }
  Value slice(Value x, ArrayRef<int64_t> starts, ArrayRef<int64_t> limits) {
    SmallVector<int64_t> strides(starts.size(), 1);
    return b.create<SliceOp>(loc, x, starts, limits, strides);
  }
  Value sumAll(Value x) {
    int64_t rank = cast<ShapedType>(x.getType()).getRank();
    SmallVector<int64_t> axes;
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
    return b.create<ReduceOp>(loc, ReduceFn::sum, x, axes, false);
  }
};

struct TesseraChunkLossPass : impl::TesseraChunkLossBase<TesseraChunkLossPass> {
  using TesseraChunkLossBase::TesseraChunkLossBase;

  LogicalResult chunk(CrossEntropyOp ce) {
    SmallVector<Operation *> chain = logitsChain(ce);
    if (chain.empty())
      return success(); // not an lm_head + cross_entropy pattern: left alone
    auto matmul = cast<MatmulOp>(chain.front());
    auto hidden = cast<ShapedType>(matmul.getLhs().getType());
    auto labelsT = cast<ShapedType>(ce.getLabels().getType());
    int64_t vocab = cast<ShapedType>(ce.getLogits().getType()).getShape().back();
    int64_t rows = ShapedType::getNumElements(hidden.getShape().drop_back()), width = hidden.getShape().back();
    int64_t ignore = ce.getIgnoreIndex();
    if (labelsT.getNumElements() != rows || (ignore >= 0 && ignore < vocab) || rows == 0)
      return success();

    auto logitsType = cast<ShapedType>(ce.getLogits().getType());
    int64_t rowBytes = vocab * ((logitsType.getElementTypeBitWidth() + 7) / 8), chunkRows = chunkTokens;
    if (chunkRows <= 0) {
      if (rows * rowBytes <= budgetBytes)
        return success();
      chunkRows = std::max<int64_t>(1, budgetBytes / rowBytes);
      // A floor of token rows (a large vocabulary's few rows per budget
      // would read the whole table once per handful of tokens), within the
      // buffer limit.
      int64_t cap = maxChunkBytes > 0 ? maxChunkBytes : budgetBytes;
      if (chunkRows < minChunkTokens)
        chunkRows = std::max<int64_t>(chunkRows, std::min<int64_t>(minChunkTokens, cap / rowBytes));
      if (rows <= chunkRows)
        return success();
    }
    int64_t chunks = (rows + chunkRows - 1) / chunkRows;
    if (chunks <= 1)
      return success();
    chunkRows = (rows + chunks - 1) / chunks;

    OpBuilder ob(ce);
    Builder b{ob, ce.getLoc()};
    Value h2 = b.reshape(matmul.getLhs(), {rows, width});

    // Targets: labels[t + 1] within each sequence, ignore_index at the end.
    Value targets;
    int64_t seq = labelsT.getRank() ? labelsT.getShape().back() : 1;
    if (ce.getShift() && seq == 1) {
      auto t = b.i32({rows});
      targets = ob.create<ConstantOp>(b.loc, DenseElementsAttr::get(t, ob.getI32IntegerAttr(ignore)));
    } else if (ce.getShift()) {
      int64_t seqs = rows / seq;
      Value l2 = b.reshape(ce.getLabels(), {seqs, seq});
      Value next = b.slice(l2, {0, 1}, {seqs, seq});
      auto padT = b.i32({seqs, 1});
      Value pad = ob.create<ConstantOp>(b.loc, DenseElementsAttr::get(padT, ob.getI32IntegerAttr(ignore)));
      Value shifted = ob.create<ConcatOp>(b.loc, ValueRange{next, pad}, 1);
      targets = b.reshape(shifted, {rows});
    } else {
      targets = b.reshape(ce.getLabels(), {rows});
    }

    // valid = clamp(t + 1, 0, 1) * clamp(V - t, 0, 1): 1 exactly for 0 <= t < V.
    Type floatType = cast<ShapedType>(ce.getLogits().getType()).getElementType();
    Value tf = ob.create<CastOp>(b.loc, RankedTensorType::get({rows}, floatType), targets);
    auto clamp01 = [&](Value x) {
      return b.binary(BinaryFn::min, b.binary(BinaryFn::max, x, b.scalar(0.0, x)), b.scalar(1.0, x));
    };
    Value valid = b.binary(BinaryFn::mul, clamp01(b.binary(BinaryFn::add, tf, b.scalar(1.0, tf))),
                           clamp01(b.binary(BinaryFn::sub, b.scalar((double)vocab, tf), tf)));
    Value denom = b.binary(BinaryFn::max, b.sumAll(valid), b.scalar(1.0, valid));

    Value total;
    MLIRContext *ctx = ce.getContext();
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t r0 = c * chunkRows, r1 = std::min(rows, r0 + chunkRows), n = r1 - r0;
      std::string tag = "loss.chunk" + std::to_string(c);
      b.loc = NameLoc::get(StringAttr::get(ctx, tag), ce.getLoc());
      Value count = b.sumAll(b.slice(valid, {r0}, {r1}));
      IRMapping map;
      map.map(matmul.getLhs(), b.slice(h2, {r0, 0}, {r1, width}));
      Value logits;
      for (Operation *op : chain) {
        if (auto r = dyn_cast<ReshapeOp>(op)) {
          map.map(r.getResult(), map.lookup(r.getInput()));
          continue;
        }
        Operation *clone = ob.clone(*op, map);
        clone->setLoc(NameLoc::get(StringAttr::get(ctx, tag + (isa<MatmulOp>(op) ? ".logits" : ".scale")),
                                   op->getLoc()));
        clone->getResult(0).setType(
            RankedTensorType::get({n, vocab}, cast<ShapedType>(op->getResult(0).getType()).getElementType()));
        logits = clone->getResult(0);
      }
      Value targetsC = b.slice(targets, {r0}, {r1});
      Value mean = ob.create<CrossEntropyOp>(b.loc, logits, targetsC, ob.getI64IntegerAttr(ignore),
                                             ob.getBoolAttr(false));
      Value part = b.binary(BinaryFn::mul, mean, count);
      total = total ? b.binary(BinaryFn::add, total, part) : part;
    }
    b.loc = ce.getLoc();
    Value loss = b.binary(BinaryFn::div, total, denom);
    ce.getResult().replaceAllUsesWith(loss);
    ce.erase();
    for (Operation *op : llvm::reverse(chain))
      if (op->use_empty())
        op->erase();
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss) {
      emitError(module.getLoc(), "tessera-chunk-loss: the module has no @loss function (run tessera-append-loss first)");
      return signalPassFailure();
    }
    if (chunkTokens < 0 || budgetBytes < 1 || minChunkTokens < 0 || maxChunkBytes < 0) {
      emitError(module.getLoc(), "tessera-chunk-loss: chunk-tokens, min-chunk-tokens and max-chunk-bytes must be >= 0 "
                                 "and budget-bytes >= 1");
      return signalPassFailure();
    }
    SmallVector<CrossEntropyOp> ces;
    loss.walk([&](CrossEntropyOp ce) { ces.push_back(ce); });
    for (CrossEntropyOp ce : ces)
      if (failed(chunk(ce)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::tessera
