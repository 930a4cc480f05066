//===- FuseElementwise.cpp - tessera-fuse-elementwise ---------------------===//
//
// Every elementwise op is a kernel that reads and writes whole tensors in
// global memory; a chain such as silu(gate) * up, or the dozen ops of an
// RMSNorm's backward, is memory-bound many times over. This pass groups
// maximal trees of elementwise ops into one tessera.fused_elementwise, which
// tessera-lower-to-kernels turns into one kernel that reads each input once
// and writes the result once.
//
// A group grows from its root (the last op of the tree, visited bottom-up):
// a producer of a member joins when it is a unary, binary, select or a cast
// to a float type, has the root's result shape, and every use of its result
// is inside the group or after the root (a use by a member of a group grown
// before, from a later root, counts at that root, where its fused op will be:
// otherwise a chain split by another group's interleaved members stayed
// unfused, e.g. RMSNorm backward's dy * w feeding both a reduction and the
// dx chain). A member read outside the group
// (a forward value the backward reuses) becomes a further result of the
// fused op, which is where all its outside users are still to come, so no
// use moves before its definition and no cycle through the group appears. A tessera.broadcast
// feeding a member is folded into the input's index map (a broadcast of a
// broadcast is a broadcast). Groups of one op are left alone unless they
// fold a broadcast. Reductions, matmuls, softmax, dropout and data movement
// end groups: they are kernels of their own.
//
// Storage types stay on the body's values: the kernel rounds each half
// intermediate where the unfused plan stored it (FusedElementwiseOp), so
// the pass changes no result bit.
//
//===----------------------------------------------------------------------===//
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/TypeUtilities.h"

#include "llvm/ADT/SetVector.h"

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAFUSEELEMENTWISE
#include "Tessera/Transforms/Passes.h.inc"

namespace {

ArrayRef<int64_t> shapeOf(Value v) { return cast<ShapedType>(v.getType()).getShape(); }

/// An op the fused kernel can evaluate per element: float result (a cast to
/// i1 / i32 would need the integer representation inside the body).
bool fusable(Operation *op) {
  if (!isa_and_nonnull<UnaryOp, BinaryOp, SelectOp, CastOp>(op))
    return false;
  return isa<FloatType>(getElementTypeOrSelf(op->getResult(0).getType()));
}

struct Group {
  Operation *root;
  llvm::SmallPtrSet<Operation *, 16> members;
};

/// Grows the group of `root` over producers whose every use is inside it.
/// `taken`: the members of the groups grown before (later roots), each with
/// its root, where the fused op will be: a use by such a member counts at
/// that root, not where the member is now.
Group grow(Operation *root, const DenseMap<Operation *, Operation *> &taken) {
  Group g{root, {}};
  g.members.insert(root);
  ArrayRef<int64_t> shape = shapeOf(root->getResult(0));
  SmallVector<Operation *> work = {root};
  while (!work.empty()) {
    Operation *m = work.pop_back_val();
    for (Value v : m->getOperands()) {
      Operation *d = v.getDefiningOp();
      if (!fusable(d) || g.members.contains(d) || taken.contains(d) || d->getBlock() != root->getBlock() ||
          shapeOf(d->getResult(0)) != shape)
        continue;
      // Uses outside the group must come after the root, where the fused op
      // will be: d is then one more result (also: no cycle through them).
      if (!llvm::all_of(d->getUsers(), [&](Operation *u) {
            return g.members.contains(u) || root->isBeforeInBlock(taken.lookup(u) ? taken.lookup(u) : u);
          }))
        continue; // revisited when its other users join
      // A producer rejected earlier because d was not in yet is checked
      // again among d's operands.
      g.members.insert(d);
      work.push_back(d);
    }
  }
  return g;
}

/// The value an input of the group reads: a broadcast's own input.
Value folded(Value v) {
  while (auto b = v.getDefiningOp<BroadcastOp>())
    v = b.getInput();
  return v;
}

void fuse(Group &g) {
  Operation *root = g.root;
  Block *block = root->getBlock();
  SmallVector<Operation *> ordered;
  for (Operation &op : *block)
    if (g.members.contains(&op))
      ordered.push_back(&op);
  // Inputs, first use first.
  llvm::SetVector<Value> inputs;
  bool broadcastFolded = false;
  for (Operation *m : ordered)
    for (Value v : m->getOperands())
      if (!g.members.contains(v.getDefiningOp())) {
        Value f = folded(v);
        broadcastFolded |= f != v;
        inputs.insert(f);
      }
  if (ordered.size() < 2 && !broadcastFolded)
    return;

  // Results: the root, then the members read outside the group.
  SmallVector<Value> outputs = {root->getResult(0)};
  for (Operation *m : ordered)
    if (m != root && llvm::any_of(m->getUsers(), [&](Operation *u) { return !g.members.contains(u); }))
      outputs.push_back(m->getResult(0));
  SmallVector<Type> types;
  for (Value v : outputs)
    types.push_back(v.getType());

  OpBuilder b(root);
  auto fused = b.create<FusedElementwiseOp>(root->getLoc(), types, inputs.getArrayRef());
  for (NamedAttribute a : root->getDiscardableAttrs())
    fused->setAttr(a.getName(), a.getValue());
  Block &body = fused.getBody().front();
  IRMapping map;
  for (Operation *m : ordered)
    for (Value v : m->getOperands())
      if (!g.members.contains(v.getDefiningOp()))
        map.map(v, body.getArgument(llvm::find(inputs, folded(v)) - inputs.begin()));
  b.setInsertionPointToStart(&body);
  for (Operation *m : ordered) {
    Operation *c = b.clone(*m, map);
    // Elements: 0-d tensors of the storage type; no bookkeeping attributes.
    for (Value r : c->getResults())
      r.setType(RankedTensorType::get({}, getElementTypeOrSelf(r.getType())));
    for (NamedAttribute a : llvm::to_vector(c->getDiscardableAttrs()))
      c->removeDiscardableAttr(a.getName());
  }
  SmallVector<Value> yielded;
  for (Value v : outputs)
    yielded.push_back(map.lookup(v));
  b.create<YieldOp>(root->getLoc(), yielded);

  // Outside uses only (the members go).
  for (auto [v, r] : llvm::zip(outputs, fused.getResults()))
    v.replaceUsesWithIf(r, [&](OpOperand &use) { return !g.members.contains(use.getOwner()); });
  llvm::SetVector<Operation *> broadcasts;
  for (Operation *m : llvm::reverse(ordered)) {
    for (Value v : m->getOperands())
      if (auto bc = v.getDefiningOp<BroadcastOp>())
        broadcasts.insert(bc);
    m->erase();
  }
  // Broadcasts now without uses (chains of them included).
  while (!broadcasts.empty()) {
    Operation *bc = broadcasts.pop_back_val();
    if (!bc->use_empty())
      continue;
    if (auto inner = bc->getOperand(0).getDefiningOp<BroadcastOp>())
      broadcasts.insert(inner);
    bc->erase();
  }
}

struct TesseraFuseElementwisePass : impl::TesseraFuseElementwiseBase<TesseraFuseElementwisePass> {
  void runOnOperation() override {
    getOperation().walk([&](func::FuncOp f) {
      for (Block &block : f.getBody()) {
        DenseMap<Operation *, Operation *> taken; // member -> its group's root
        SmallVector<Group> groups;
        for (Operation &op : llvm::reverse(block)) {
          if (!fusable(&op) || taken.contains(&op))
            continue;
          groups.push_back(grow(&op, taken));
          for (Operation *m : groups.back().members)
            taken[m] = &op;
        }
        for (Group &g : groups)
          fuse(g);
      }
    });
  }
};

} // namespace
} // namespace mlir::tessera
