//===- ScheduleLossChunks.cpp - tessera-schedule-loss-chunks --------------===//
//
// Autodiff emits the backward sweep in reverse order, so the gradient of the
// first loss chunk's logits would come last and every chunk's logits would
// stay alive until then. The gradient of a chunk w.r.t. its logits depends
// only on those logits, the labels and a scalar that is known before the
// chunk's forward (d loss / d chunk mean = count_c / denom), so each
// cross_entropy_grad can run right after its cross_entropy:
//
//   1. the ops computing its operands that sit after the chunk's
//      cross_entropy (the scalar seed) move, in order, right after it;
//   2. the cross_entropy_grad follows them;
//   3. each user of its result whose other operands are available there
//      (the matmul giving d hidden, and d W when lm_head is adapted, with up
//      to a few small producers such as a reshape) follows, so the [rows x
//      vocab] gradient dies at once too.
//
// Only pure tensor ops move, never across their operands, so the function
// computes the same values.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERASCHEDULELOSSCHUNKS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

// Ops of `block` after `point` that `roots` need (transitively), in block
// order; fails when one is not a movable pure op or there are more than
// `limit`.
FailureOr<SmallVector<Operation *>> producersAfter(Operation *point, ArrayRef<Value> roots,
                                                   size_t limit) {
  SmallVector<Operation *> found;
  DenseSet<Operation *> seen;
  SmallVector<Value> work(roots.begin(), roots.end());
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != point->getBlock() || def == point || !point->isBeforeInBlock(def))
      continue;
    if (!seen.insert(def).second)
      continue;
    if (def->getNumRegions() || isa<AdamWUpdateOp>(def) || def->getDialect()->getNamespace() != "tessera" ||
        found.size() >= limit)
      return failure();
    found.push_back(def);
    for (Value o : def->getOperands())
      work.push_back(o);
  }
  llvm::sort(found, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return found;
}

struct TesseraScheduleLossChunksPass
    : impl::TesseraScheduleLossChunksBase<TesseraScheduleLossChunksPass> {
  using TesseraScheduleLossChunksBase::TesseraScheduleLossChunksBase;

  void schedule(CrossEntropyGradOp grad) {
    CrossEntropyOp forward;
    for (Operation *user : grad.getLogits().getUsers())
      if (auto ce = dyn_cast<CrossEntropyOp>(user))
        if (ce->getBlock() == grad->getBlock() && ce.getLabels() == grad.getLabels())
          forward = ce;
    if (!forward || !forward->isBeforeInBlock(grad))
      return;
    Operation *point = forward;
    // Moves `ops` (in order), then `op`, right after `point`.
    auto placeAfterPoint = [&](ArrayRef<Operation *> ops, Operation *op) {
      for (Operation *o : ops) {
        o->moveAfter(point);
        point = o;
      }
      op->moveAfter(point);
      point = op;
    };
    // 1 + 2: the seed and the gradient itself.
    FailureOr<SmallVector<Operation *>> seed =
        producersAfter(point, SmallVector<Value>(grad->getOperands()), /*limit=*/16);
    if (failed(seed))
      return;
    placeAfterPoint(*seed, grad);
    // 3: its users, with their small producers.
    SmallVector<Operation *> users(grad->getUsers().begin(), grad->getUsers().end());
    llvm::sort(users, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
    users.erase(std::unique(users.begin(), users.end()), users.end());
    for (Operation *user : users) {
      if (user->getBlock() != point->getBlock() || !point->isBeforeInBlock(user) ||
          user->getNumRegions() || user->getDialect()->getNamespace() != "tessera" ||
          isa<AdamWUpdateOp>(user))
        continue;
      SmallVector<Value> others;
      for (Value o : user->getOperands())
        if (o != grad.getResult())
          others.push_back(o);
      FailureOr<SmallVector<Operation *>> producers = producersAfter(point, others, /*limit=*/4);
      if (failed(producers))
        continue;
      placeAfterPoint(*producers, user);
    }
  }

  void runOnOperation() override {
    getOperation().walk([&](func::FuncOp f) {
      SmallVector<CrossEntropyGradOp> grads;
      f.walk([&](CrossEntropyGradOp g) { grads.push_back(g); });
      // Forward order of the chunks keeps the moved seeds in order too.
      llvm::sort(grads, [](CrossEntropyGradOp a, CrossEntropyGradOp b) {
        auto fa = a.getLogits().getDefiningOp(), fb = b.getLogits().getDefiningOp();
        return fa && fb && fa->getBlock() == fb->getBlock() ? fa->isBeforeInBlock(fb) : false;
      });
      for (CrossEntropyGradOp g : grads)
        schedule(g);
    });
  }
};

} // namespace
} // namespace mlir::tessera
