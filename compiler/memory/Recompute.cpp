//===- Recompute.cpp - tessera-recompute ----------------------------------===//
//
// Activation recomputation per decoder layer in @loss_grad.
//
// The forward ops are those the loss depends on. tessera-raise marks every
// op of decoder layer N with `tessera.layer = N`; ops added later inside a
// layer (the LoRA branches of tessera-inject-lora) inherit N when all their
// forward users are in layer N and one of their operands comes from it. A layer's *outputs* are its values used by
// forward ops outside the layer (the residual stream into the next layer);
// they are kept, like everything defined outside the layer.
//
// Every other value of layer N that the backward sweep uses is recomputed:
// the layer ops it needs are cloned, in forward order, right before the first
// backward op that uses one of them, and the backward ops use the clones.
// The forward's copies then die inside the forward, so only the layer inputs
// and outputs stay alive across the whole step, and one layer's internals at
// a time during the backward. The clones run the same kernels on the same
// inputs, so the gradients are bit-identical.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"

#include <map>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERARECOMPUTE
#include "Tessera/Transforms/Passes.h.inc"

namespace {

constexpr ::llvm::StringLiteral kLayerAttr = attrs::layer;

bool isLeaf(Operation *op) { return isa<ParamOp, ConstantOp>(op); }

struct TesseraRecomputePass : impl::TesseraRecomputeBase<TesseraRecomputePass> {
  using TesseraRecomputeBase::TesseraRecomputeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto f = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!f || !f.getBody().hasOneBlock()) {
      emitError(module.getLoc(), "tessera-recompute: the module has no single-block @loss_grad (run tessera-autodiff first)");
      return signalPassFailure();
    }
    Block &body = f.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());

    // Forward ops: what the loss depends on.
    DenseSet<Operation *> forward;
    SmallVector<Value> work{ret.getOperand(0)};
    while (!work.empty()) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (!def || !forward.insert(def).second)
        continue;
      for (Value v : def->getOperands())
        work.push_back(v);
    }

    // Layer of each forward op (leaves have none: they are never recomputed).
    DenseMap<Operation *, int64_t> layer;
    for (Operation &op : body)
      if (forward.contains(&op) && !isLeaf(&op))
        if (auto a = op.getAttrOfType<IntegerAttr>(kLayerAttr))
          layer[&op] = a.getInt();
    if (layer.empty()) {
      emitError(f.getLoc(), "tessera-recompute: no decoder layers found: recomputation needs the forward ops "
                            "marked with tessera.layer (the tessera-raise pass marks recognised decoder layers)");
      return signalPassFailure();
    }
    for (Operation &op : llvm::reverse(body)) {
      if (!forward.contains(&op) || isLeaf(&op) || layer.count(&op))
        continue;
      std::optional<int64_t> common;
      bool same = true, any = false;
      for (Operation *user : op.getUsers()) {
        if (!forward.contains(user))
          continue;
        auto it = layer.find(user);
        if (it == layer.end() || (common && *common != it->second)) {
          same = false;
          break;
        }
        common = it->second;
        any = true;
      }
      if (same && any)
        layer[&op] = *common;
    }
    // ... and that take one of their operands from layer N (a LoRA branch
    // does; the embedding that feeds layer 0 does not: it is layer 0's input).
    for (Operation &op : body) {
      if (!forward.contains(&op) || op.hasAttr(kLayerAttr) || !layer.count(&op))
        continue;
      int64_t n = layer.lookup(&op);
      bool fromLayer = llvm::any_of(op.getOperands(), [&](Value v) {
        Operation *def = v.getDefiningOp();
        return def && layer.count(def) && layer.lookup(def) == n;
      });
      if (!fromLayer)
        layer.erase(&op);
    }

    // Per layer: the values the backward sweep needs recomputed.
    auto layerOf = [&](Value v) -> std::optional<int64_t> {
      Operation *def = v.getDefiningOp();
      auto it = def ? layer.find(def) : layer.end();
      if (it == layer.end())
        return std::nullopt;
      return it->second;
    };
    auto isOutput = [&](Value v, int64_t n) {
      for (Operation *user : v.getUsers())
        if (forward.contains(user) && (!layer.count(user) || layer.lookup(user) != n))
          return true;
      return llvm::is_contained(ret.getOperands(), v);
    };
    std::map<int64_t, SmallVector<Value>> needed;
    std::map<int64_t, Operation *> firstUse;
    DenseSet<Value> seen;
    for (Operation &op : body) {
      if (forward.contains(&op) || &op == ret.getOperation())
        continue;
      for (Value v : op.getOperands()) {
        std::optional<int64_t> n = layerOf(v);
        if (!n || isOutput(v, *n))
          continue;
        if (!firstUse.count(*n))
          firstUse[*n] = &op;
        if (seen.insert(v).second)
          needed[*n].push_back(v);
      }
    }

    for (auto &[n, values] : needed) {
      // The layer ops these values need, stopping at kept values.
      DenseSet<Operation *> clone;
      SmallVector<Value> stack(values.begin(), values.end());
      while (!stack.empty()) {
        Value v = stack.pop_back_val();
        std::optional<int64_t> vn = layerOf(v);
        if (!vn || *vn != n || isOutput(v, n))
          continue;
        if (!clone.insert(v.getDefiningOp()).second)
          continue;
        for (Value o : v.getDefiningOp()->getOperands())
          stack.push_back(o);
      }
      SmallVector<Operation *> ordered(clone.begin(), clone.end());
      llvm::sort(ordered, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
      OpBuilder b(firstUse[n]);
      IRMapping map;
      DenseSet<Operation *> clones;
      // The clones keep the originals' attributes (also tessera.layer), so
      // they share the originals' kernels.
      for (Operation *op : ordered)
        clones.insert(b.clone(*op, map));
      for (Value v : values) {
        Value r = map.lookup(v);
        v.replaceUsesWithIf(r, [&](OpOperand &use) {
          Operation *owner = use.getOwner();
          return !forward.contains(owner) && !clones.contains(owner) && owner != ret.getOperation();
        });
      }
    }
  }
};

} // namespace
} // namespace mlir::tessera
