//===- FoldRopeTransposes.cpp - tessera-fold-rope-transposes --------------===//
//
// Attention wants q and k as [B, H, T, D]; the projections give [B, T, H, D].
// The import's transpose before RoPE (forward) and after its adjoint
// (backward: dq, dk) are kernels that only copy a tensor (Qwen3's f32 q and
// k: 32 and 16 MB a layer each way). The rope kernel reads each element and
// its partner half a head away, and the transposes keep that last dim in
// place, so they fold into its addressing instead (RopeOp's
// input_permutation / result_permutation):
//
//   rope(transpose(x, p))          -> rope(x) {input_permutation = p}
//   transpose(rope(x), p)          -> rope(x) {result_permutation = p}
//
// composed with permutations already folded. The transpose must keep the last
// dim and have no other user (a transpose read elsewhere stays, and the
// rope's own read of it would then be no saving). Copies are exact, so
// results are bit-identical. After autodiff (RopeOp has no gradient with
// folded transposes), before tessera-select-kernel-configs.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAFOLDROPETRANSPOSES
#include "Tessera/Transforms/Passes.h.inc"

namespace {

bool keepsLast(ArrayRef<int64_t> perm) { return !perm.empty() && perm.back() == (int64_t)perm.size() - 1; }

// outer ∘ inner as one permutation: dim d of outer(inner(x)) is dim
// inner[outer[d]] of x (tessera.transpose: result dim d = input dim perm[d]).
SmallVector<int64_t> compose(ArrayRef<int64_t> inner, ArrayRef<int64_t> outer) {
  SmallVector<int64_t> p;
  for (int64_t d : outer)
    p.push_back(inner[d]);
  return p;
}

SmallVector<int64_t> identity(size_t rank) {
  SmallVector<int64_t> p;
  for (size_t d = 0; d < rank; ++d)
    p.push_back(d);
  return p;
}

/// rope(transpose(x, p)): the rope reads x through p.
struct FoldInputTranspose : OpRewritePattern<RopeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeOp rope, PatternRewriter &rewriter) const override {
    auto t = rope.getInput().getDefiningOp<TransposeOp>();
    if (!t || !keepsLast(t.getPerm()) || !t->hasOneUse())
      return failure();
    SmallVector<int64_t> inner(t.getPerm());
    SmallVector<int64_t> perm =
        compose(inner, rope.getInputPermutation() ? *rope.getInputPermutation() : ArrayRef(identity(inner.size())));
    rewriter.modifyOpInPlace(rope, [&] {
      rope.getInputMutable().assign(t.getInput());
      rope.setInputPermutation(perm);
    });
    rewriter.eraseOp(t);
    return success();
  }
};

/// transpose(rope(x), p): the rope writes its result through p.
struct FoldResultTranspose : OpRewritePattern<TransposeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TransposeOp t, PatternRewriter &rewriter) const override {
    auto rope = t.getInput().getDefiningOp<RopeOp>();
    if (!rope || !keepsLast(t.getPerm()) || !rope->hasOneUse())
      return failure();
    ArrayRef<int64_t> outer = t.getPerm();
    SmallVector<int64_t> perm = rope.getResultPermutation() ? compose(*rope.getResultPermutation(), outer)
                                                           : SmallVector<int64_t>(outer);
    rewriter.modifyOpInPlace(rope, [&] {
      rope.setResultPermutation(perm);
      rope.getResult().setType(t.getResult().getType()); // a transpose keeps the element type
    });
    rewriter.replaceOp(t, rope.getResult());
    return success();
  }
};

struct TesseraFoldRopeTransposesPass : impl::TesseraFoldRopeTransposesBase<TesseraFoldRopeTransposesPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    FoldInputTranspose input(ctx);
    FoldResultTranspose result(ctx);
    PatternRewriter rewriter(ctx);
    // One walk over the ropes and the transposes: each fold is local, and the
    // greedy driver would also fold and reorder every other op of the program.
    getOperation().walk([&](func::FuncOp f) {
      SmallVector<RopeOp> ropes;
      f.walk([&](RopeOp r) { ropes.push_back(r); });
      for (RopeOp r : ropes)
        (void)input.matchAndRewrite(r, rewriter);
      SmallVector<TransposeOp> transposes; // after the input folds erased theirs
      f.walk([&](TransposeOp t) { transposes.push_back(t); });
      for (TransposeOp t : transposes)
        (void)result.matchAndRewrite(t, rewriter);
    });
  }
};

} // namespace
} // namespace mlir::tessera
