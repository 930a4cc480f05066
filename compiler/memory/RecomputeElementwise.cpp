//===- RecomputeElementwise.cpp - tessera-recompute-elementwise -----------===//
//
// Cheap forward values recomputed in the backward instead of kept.
//
// In a training function (tessera.role loss_grad, train_step or accumulate)
// the backward sweep starts at the first cross_entropy_grad. A forward value
// the backward reads stays alive from its definition to that read: across
// the rest of the forward and the backward of every later layer. When it is
// an elementwise op (unary, binary, select, float cast) whose operands are
// alive at that read anyway (parameters, constants, values the backward
// reads too, or other such recomputed values), computing it again right
// before its first backward use costs one memory-bound kernel and frees its
// storage for the whole span. This is what PyTorch's min-cut partitioner
// does for torch.compile; in a SwiGLU MLP it drops silu(gate) and
// silu(gate) * up (2 x 24 MiB per layer of the Qwen3-0.6B shape at batch
// 8 x 512) from the saved set, as gate and up are kept for their gradients.
//
// Runs last in the training pipeline (after the precision and quantisation
// passes), so a clone has its original's types: same kernel, same inputs,
// bit-identical values.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

#include <limits>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERARECOMPUTEELEMENTWISE
#include "Tessera/Transforms/Passes.h.inc"

namespace {

// Ops worth recomputing: one memory-bound kernel each, deterministic. Not
// the cast of a parameter (a LoRA factor in the half type for its products,
// tessera-assign-precision lora-products=half): parameter-sized, its clone
// would cost a kernel per factor to free a few KiB.
bool isCheapElementwise(Operation *op) {
  if (auto c = dyn_cast<CastOp>(op))
    return isFloatTensor(c.getInput()) && isFloatTensor(c.getResult()) && !c.getInput().getDefiningOp<ParamOp>();
  return isa<UnaryOp, BinaryOp, SelectOp>(op);
}

void recomputeIn(func::FuncOp f) {
  Block &body = f.getBody().front();
  llvm::DenseMap<Operation *, int64_t> pos;
  int64_t n = 0, backward = -1;
  for (Operation &op : body) {
    pos[&op] = n++;
    if (backward < 0 && isa<CrossEntropyGradOp>(op))
      backward = pos[&op];
  }
  if (backward < 0)
    return;
  auto inBackward = [&](Operation *user) { return pos.lookup(user) > backward; };
  // The first backward use of each forward value.
  auto firstBackwardUse = [&](Value v) {
    int64_t first = std::numeric_limits<int64_t>::max();
    for (Operation *user : v.getUsers())
      if (inBackward(user))
        first = std::min(first, pos.lookup(user));
    return first;
  };

  // Candidates: cheap forward ops with a backward use.
  llvm::SetVector<Operation *> candidates;
  for (Operation &op : body) {
    if (pos[&op] >= backward)
      break;
    if (isCheapElementwise(&op) && op.getNumResults() == 1 &&
        firstBackwardUse(op.getResult(0)) != std::numeric_limits<int64_t>::max())
      candidates.insert(&op);
  }
  // Where each clone is needed: before the first backward use of its value,
  // or earlier, before the clone of a candidate that reads it. Then drop the
  // candidates an operand of which would otherwise be kept alive just for
  // them, until nothing changes.
  llvm::DenseMap<Operation *, int64_t> neededAt;
  for (bool changed = true; changed;) {
    changed = false;
    neededAt.clear();
    for (Operation *op : llvm::reverse(candidates)) {
      int64_t at = firstBackwardUse(op->getResult(0));
      for (Operation *user : op->getResult(0).getUsers())
        if (candidates.contains(user))
          at = std::min(at, neededAt.lookup(user));
      neededAt[op] = at;
    }
    for (Operation *op : llvm::make_early_inc_range(candidates)) {
      int64_t at = neededAt[op];
      bool alive = llvm::all_of(op->getOperands(), [&](Value o) {
        Operation *def = o.getDefiningOp();
        if (!def || isa<ParamOp, ConstantOp>(def) || candidates.contains(def))
          return true;
        // Kept for another backward use at or after the clone's place.
        return llvm::any_of(o.getUsers(), [&](Operation *u) {
          return !candidates.contains(u) && u != op && pos.lookup(u) >= at;
        });
      });
      if (!alive) {
        candidates.remove(op);
        changed = true;
      }
    }
  }

  // Clone in forward order right before the op at neededAt; the backward
  // uses (and the clones of candidates reading it) take the clone.
  std::vector<Operation *> byPos(size_t(n), nullptr);
  for (Operation &op : body)
    byPos[size_t(pos[&op])] = &op;
  IRMapping clones;
  OpBuilder b(f.getContext());
  for (Operation *op : candidates) {
    b.setInsertionPoint(byPos[size_t(neededAt[op])]);
    Operation *clone = b.clone(*op, clones); // operands already cloned map to their clones
    Value original = op->getResult(0), copy = clone->getResult(0);
    clones.map(original, copy);
    original.replaceUsesWithIf(copy, [&](OpOperand &use) { return inBackward(use.getOwner()); });
  }
}

struct TesseraRecomputeElementwisePass : impl::TesseraRecomputeElementwiseBase<TesseraRecomputeElementwisePass> {
  using TesseraRecomputeElementwiseBase::TesseraRecomputeElementwiseBase;

  void runOnOperation() override {
    for (func::FuncOp f : getOperation().getOps<func::FuncOp>()) {
      std::optional<ProgramRole> role = programRole(f);
      if (!role || !f.getBody().hasOneBlock() ||
          !(*role == ProgramRole::loss_grad || *role == ProgramRole::train_step || *role == ProgramRole::accumulate))
        continue;
      recomputeIn(f);
    }
  }
};

} // namespace
} // namespace mlir::tessera
