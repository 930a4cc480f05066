//===- Raise.cpp - tessera-raise ------------------------------------------===//
//
// 1. Raises recognised op chains (RaisePatterns.cpp).
// 2. Recovers the decoder structure by walking the residual stream from the
//    embedding: each `h = h + branch(h)` is one block; a block holding a
//    tessera.attention is a layer's attention half, one holding a
//    tessera.glu its MLP half. Linear matmuls get their structural name
//    (`tessera.module`) by dataflow:
//      q/k/v_proj: the linear each attention operand comes from (through
//                  head reshapes, q/k norms, RoPE, scalar scaling),
//      o_proj:     the linear the attention result flows into,
//      gate/up_proj: the linears feeding the GLU's activated / plain input,
//      down_proj:  the linear the GLU result flows into,
//      lm_head:    the linear producing the logits (tied when its weight is
//                  the embedding table).
//    Every op of decoder layer N gets `tessera.layer = N`.
// 3. Summarises the recognised architecture in the module attribute
//    `tessera.arch` (read by `tessera inspect`), including the ops that
//    stayed generic.
//
//===----------------------------------------------------------------------===//
#include "compiler/raise/Match.h"
#include "compiler/raise/Raise.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseSet.h"

#include <functional>
#include <map>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERARAISE
#include "Tessera/Transforms/Passes.h.inc"

namespace {
using namespace raise;

/// The linear a value comes from, through layout ops, q/k norms, RoPE and
/// scalar scaling. Sets `normed` when a norm was crossed.
MatmulOp traceBackToLinear(Value v, bool *normed = nullptr) {
  for (int steps = 0; steps < 32; ++steps) {
    Operation *def = v.getDefiningOp();
    if (!def)
      return MatmulOp();
    if (auto mm = dyn_cast<MatmulOp>(def))
      return linearWeight(mm) ? mm : MatmulOp();
    if (isa<ReshapeOp, TransposeOp>(def)) {
      v = def->getOperand(0);
    } else if (auto r = dyn_cast<RopeOp>(def)) {
      v = r.getInput();
    } else if (auto n = dyn_cast<RMSNormOp>(def)) {
      if (normed)
        *normed = true;
      v = n.getInput();
    } else if (auto b = dyn_cast<BinaryOp>(def);
               b && (b.getFn() == BinaryFn::mul || b.getFn() == BinaryFn::div) &&
               scalarConstant(b.getRhs())) {
      v = b.getLhs();
    } else if (b && b.getFn() == BinaryFn::mul && scalarConstant(b.getLhs())) {
      v = b.getRhs();
    } else {
      return MatmulOp();
    }
  }
  return MatmulOp();
}

/// The linear a value flows into (as its input), through layout ops and
/// BitNet's sub-norm and activation quantiser before o_proj / down_proj.
MatmulOp traceForwardToLinear(Value v) {
  for (int steps = 0; steps < 8; ++steps) {
    Value next;
    for (Operation *user : v.getUsers()) {
      if (auto mm = dyn_cast<MatmulOp>(user); mm && mm.getLhs() == v && linearWeight(mm))
        return mm;
      bool through = isa<ReshapeOp, TransposeOp, ActQuantOp>(user) ||
                     (isa<RMSNormOp>(user) && user->getOperand(0) == v);
      if (through && !next)
        next = user->getResult(0);
    }
    if (!next)
      return MatmulOp();
    v = next;
  }
  return MatmulOp();
}

/// Ops on the paths from `h` to `branch` (inclusive of branch's op).
SmallVector<Operation *> blockSlice(Value h, Value branch) {
  DenseMap<Operation *, bool> memo;
  std::function<bool(Operation *)> depends = [&](Operation *op) -> bool {
    auto it = memo.find(op);
    if (it != memo.end())
      return it->second;
    memo[op] = false;
    bool d = false;
    for (Value operand : op->getOperands()) {
      if (operand == h)
        d = true;
      else if (Operation *def = operand.getDefiningOp())
        d |= depends(def);
    }
    memo[op] = d;
    return d;
  };
  SmallVector<Operation *> slice;
  if (Operation *def = branch.getDefiningOp())
    depends(def);
  for (auto &[op, d] : memo)
    if (d)
      slice.push_back(op);
  llvm::sort(slice, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return slice;
}

/// Attention window of a constant additive mask: -1 causal over the whole
/// sequence, w > 0 sliding window of w tokens, -2 a mask read from the model
/// file (baked into a static export), 0 not a recognisable causal mask.
int64_t maskWindow(Value mask) {
  while (Operation *def = mask.getDefiningOp()) {
    if (!isa<BroadcastOp, ReshapeOp>(def))
      break;
    mask = def->getOperand(0);
  }
  if (mask.getDefiningOp<ParamOp>())
    return -2;
  auto c = mask.getDefiningOp<ConstantOp>();
  auto dense = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : DenseElementsAttr();
  ArrayRef<int64_t> s = shapeOf(mask);
  if (!dense || dense.isSplat() || s.size() < 2 || !dense.getElementType().isF32())
    return 0;
  int64_t rows = s[s.size() - 2], cols = s.back();
  auto values = dense.getValues<float>();
  int64_t window = -1, offset = cols - rows; // keys may include earlier positions
  for (int64_t i = 0; i < rows; ++i) {
    int64_t first = -1;
    for (int64_t j = 0; j < cols; ++j) {
      bool masked = values[i * cols + j] < -1e9f;
      if (j > i + offset && !masked)
        return 0; // not causal
      if (!masked && first < 0)
        first = j;
      if (first >= 0 && j <= i + offset && masked)
        return 0; // holes: not a window
    }
    if (first > 0)
      window = std::max<int64_t>(window, i + offset - first + 1);
  }
  return window;
}

std::string nodeName(Location loc) {
  if (auto n = dyn_cast<NameLoc>(loc))
    return n.getName().str();
  if (auto f = dyn_cast<FusedLoc>(loc))
    for (Location l : f.getLocations())
      if (std::string s = nodeName(l); !s.empty())
        return s;
  return "";
}

std::string opKind(Operation *op) {
  std::string name = op->getName().getStringRef().str();
  if (auto u = dyn_cast<UnaryOp>(op))
    return name + " " + stringifyUnaryFn(u.getFn()).str();
  if (auto b = dyn_cast<BinaryOp>(op))
    return name + " " + stringifyBinaryFn(b.getFn()).str();
  if (auto r = dyn_cast<ReduceOp>(op))
    return name + " " + stringifyReduceFn(r.getFn()).str();
  return name;
}

struct Structure {
  int64_t layers = 0, hidden = 0, heads = 0, kvHeads = 0, headDim = 0, intermediate = 0,
          vocab = 0;
  double attentionScale = 0, embeddingScale = 1, eps = 0, normOffset = 0;
  bool qkNorm = false, tied = false, sandwichNorms = false, haveNorm = false;
  std::string activation;
  SmallVector<int64_t> windows; // per layer
  int64_t linears = 0;
  int64_t bitLinears = 0; // linears whose weight is a tessera.ternary_weight
};

struct TesseraRaisePass : impl::TesseraRaiseBase<TesseraRaisePass> {
  OpBuilder *builder = nullptr;
  llvm::DenseSet<Operation *> covered;

  void name(MatmulOp mm, const std::string &structural, Structure &s) {
    if (!mm || mm->hasAttr(attrs::module))
      return;
    mm->setAttr(attrs::module, builder->getStringAttr(structural));
    covered.insert(mm);
    ++s.linears;
    if (mm.getRhs().getDefiningOp<TernaryWeightOp>())
      ++s.bitLinears;
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      emitError(module.getLoc(), "tessera-raise: the module has no @forward function");
      return signalPassFailure();
    }
    raiseFusedOps(forward);
    covered.clear(); // the pass instance may run on several modules

    OpBuilder b(module.getContext());
    builder = &b;
    Structure s;
    Value h, table;
    forward.walk([&](EmbeddingOp e) {
      if (!h) {
        h = e.getResult(), table = e.getTable();
        s.embeddingScale = e.getScale().convertToDouble();
      }
    });
    if (!h)
      forward.walk([&](GatherOp g) {
        if (!h && isa<BlockArgument>(g.getIndices()) && g.getInput().getDefiningOp<ParamOp>())
          h = g.getResult(), table = g.getInput();
      });

    // Walk the residual stream.
    int64_t layer = 0;
    bool layerHasAttention = false, layerHasMlp = false;
    auto i64 = b.getI64Type();
    for (int guard = 0; h && guard < 100000; ++guard) {
      BinaryOp residual;
      Value branch;
      for (Operation *user : h.getUsers()) {
        auto add = dyn_cast<BinaryOp>(user);
        if (!add || add.getFn() != BinaryFn::add || add.getLhs() == add.getRhs() ||
            shapeOf(add.getResult()) != shapeOf(h))
          continue;
        Value other = add.getLhs() == h ? add.getRhs() : add.getLhs();
        if (shapeOf(other) != shapeOf(h))
          continue;
        if (!residual || add->isBeforeInBlock(residual))
          residual = add, branch = other;
      }
      if (!residual)
        break;
      SmallVector<Operation *> slice = blockSlice(h, branch);
      AttentionOp att;
      GluOp glu;
      bool softmax = false;
      for (Operation *op : slice) {
        if (auto a = dyn_cast<AttentionOp>(op); a && !att)
          att = a;
        if (auto g = dyn_cast<GluOp>(op); g && !glu)
          glu = g;
        softmax |= isa<SoftmaxOp>(op);
      }
      bool isAttention = att || softmax;
      if (isAttention && (layerHasAttention || layerHasMlp)) {
        ++layer;
        layerHasAttention = layerHasMlp = false;
      }
      if (!isAttention && layerHasMlp) {
        ++layer;
        layerHasAttention = false;
      }
      std::string prefix = "layers." + std::to_string(layer) + ".";
      if (att) {
        bool qNorm = false;
        name(traceBackToLinear(att.getQuery(), &qNorm), prefix + "self_attn.q_proj", s);
        name(traceBackToLinear(att.getKey()), prefix + "self_attn.k_proj", s);
        name(traceBackToLinear(att.getValue()), prefix + "self_attn.v_proj", s);
        name(traceForwardToLinear(att.getResult()), prefix + "self_attn.o_proj", s);
        if (layer == 0) {
          ArrayRef<int64_t> q = shapeOf(att.getQuery()), k = shapeOf(att.getKey());
          s.heads = q[1], s.kvHeads = k[1], s.headDim = q[3];
          s.attentionScale = att.getScale().convertToDouble();
          s.qkNorm = qNorm;
          s.sandwichNorms = branch.getDefiningOp<RMSNormOp>() != nullptr;
        }
        s.windows.push_back(att.getMask() ? maskWindow(att.getMask()) : 0);
      }
      if (glu) { // also in an attention block: parallel attention + MLP (one residual add)
        name(traceBackToLinear(glu.getGate()), prefix + "mlp.gate_proj", s);
        name(traceBackToLinear(glu.getUp()), prefix + "mlp.up_proj", s);
        name(traceForwardToLinear(glu.getResult()), prefix + "mlp.down_proj", s);
        if (s.activation.empty()) {
          s.activation = stringifyGluActivation(glu.getAct()).str();
          s.intermediate = shapeOf(glu.getResult()).back();
        }
      }
      layerHasAttention |= isAttention;
      layerHasMlp |= !isAttention || glu;
      auto layerAttr = IntegerAttr::get(i64, layer);
      for (Operation *op : slice)
        op->setAttr(attrs::layer, layerAttr);
      residual->setAttr(attrs::layer, layerAttr);
      covered.insert(residual);
      s.hidden = shapeOf(h).back();
      h = residual.getResult();
    }
    s.layers = (layerHasAttention || layerHasMlp) ? layer + 1 : layer;

    // The output head: the linear producing the returned logits.
    auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
    if (ret.getNumOperands() == 1) {
      if (MatmulOp head = traceBackToLinear(ret.getOperand(0))) {
        ParamOp w = linearWeight(head);
        ParamOp t = table ? table.getDefiningOp<ParamOp>() : ParamOp();
        s.tied = t && (w == t || w.getName() == t.getName());
        s.vocab = shapeOf(head.getResult()).back();
        name(head, "lm_head", s);
      }
    }
    forward.walk([&](RMSNormOp n) {
      if (!s.haveNorm) {
        s.haveNorm = true;
        s.eps = n.getEps().convertToDouble();
        s.normOffset = n.getWeightOffset().convertToDouble();
      }
    });
    if (!s.vocab && table)
      s.vocab = shapeOf(table)[0];

    module->setAttr(attrs::arch, archAttr(forward, s));
  }

  /// Ops that stayed generic: everything except leaves, raised ops, named
  /// linears, residual adds and the layout ops next to them.
  DictionaryAttr archAttr(func::FuncOp forward, const Structure &s) {
    OpBuilder &b = *builder;
    forward.walk([&](Operation *op) {
      if (isa<RMSNormOp, RopeOp, AttentionOp, GluOp, EmbeddingOp, ParamOp, ConstantOp,
              ActQuantOp, TernaryWeightOp, func::ReturnOp>(op))
        covered.insert(op);
    });
    bool changed = true;
    while (changed) {
      changed = false;
      forward.walk([&](Operation *op) {
        if (!isa<ReshapeOp, TransposeOp, BroadcastOp>(op) || covered.contains(op))
          return;
        Operation *def = op->getOperand(0).getDefiningOp();
        bool adjacent = def && covered.contains(def);
        for (Operation *user : op->getUsers())
          adjacent |= covered.contains(user);
        if (adjacent) {
          covered.insert(op);
          changed = true;
        }
      });
    }
    struct Generic {
      std::string kind;
      int64_t count = 0;
      SmallVector<Attribute> nodes;
    };
    std::vector<Generic> generic; // in order of first appearance
    std::map<std::string, size_t> index;
    forward.walk([&](Operation *op) {
      if (op == forward.getOperation() || covered.contains(op))
        return;
      std::string kind = opKind(op);
      auto [it, added] = index.try_emplace(kind, generic.size());
      if (added)
        generic.push_back({kind, 0, {}});
      Generic &entry = generic[it->second];
      ++entry.count;
      std::string node = nodeName(op->getLoc());
      if (!node.empty() && entry.nodes.size() < 3)
        entry.nodes.push_back(b.getStringAttr(node));
    });
    SmallVector<Attribute> genericAttrs;
    for (Generic &entry : generic)
      genericAttrs.push_back(b.getDictionaryAttr({
          b.getNamedAttr("op", b.getStringAttr(entry.kind)),
          b.getNamedAttr("count", b.getI64IntegerAttr(entry.count)),
          b.getNamedAttr("nodes", b.getArrayAttr(entry.nodes)),
      }));

    std::string arch = "decoder";
    if (s.layers == 0)
      arch = "unknown";
    else if (s.activation == "relu2" && s.bitLinears > 0)
      arch = "bitnet";
    else if (s.activation == "gelu_tanh" && s.embeddingScale != 1.0)
      arch = "gemma3";
    else if (s.activation == "silu" && s.qkNorm)
      arch = "qwen3";
    else if (s.activation == "silu")
      arch = "llama";
    SmallVector<NamedAttribute> attrs = {
        b.getNamedAttr("arch", b.getStringAttr(arch)),
        b.getNamedAttr("layers", b.getI64IntegerAttr(s.layers)),
        b.getNamedAttr("hidden", b.getI64IntegerAttr(s.hidden)),
        b.getNamedAttr("heads", b.getI64IntegerAttr(s.heads)),
        b.getNamedAttr("kv_heads", b.getI64IntegerAttr(s.kvHeads)),
        b.getNamedAttr("head_dim", b.getI64IntegerAttr(s.headDim)),
        b.getNamedAttr("intermediate", b.getI64IntegerAttr(s.intermediate)),
        b.getNamedAttr("vocab", b.getI64IntegerAttr(s.vocab)),
        b.getNamedAttr("norm", b.getStringAttr(!s.haveNorm           ? "none"
                                               : s.sandwichNorms      ? "rms_norm (pre + post)"
                                                                      : "rms_norm")),
        b.getNamedAttr("norm_eps", b.getF64FloatAttr(s.eps)),
        b.getNamedAttr("norm_weight_offset", b.getF64FloatAttr(s.normOffset)),
        b.getNamedAttr("qk_norm", b.getBoolAttr(s.qkNorm)),
        b.getNamedAttr("activation", b.getStringAttr(s.activation.empty() ? "none" : s.activation)),
        b.getNamedAttr("attention_scale", b.getF64FloatAttr(s.attentionScale)),
        b.getNamedAttr("attention_windows", b.getDenseI64ArrayAttr(s.windows)),
        b.getNamedAttr("embedding_scale", b.getF64FloatAttr(s.embeddingScale)),
        b.getNamedAttr("tied_embeddings", b.getBoolAttr(s.tied)),
        b.getNamedAttr("linear_layers", b.getI64IntegerAttr(s.linears)),
        b.getNamedAttr("generic_ops", b.getArrayAttr(genericAttrs)),
    };
    if (s.bitLinears) // BitNet only: other architectures' summaries stay as they were
      attrs.push_back(b.getNamedAttr("bit_linear_layers", b.getI64IntegerAttr(s.bitLinears)));
    return b.getDictionaryAttr(attrs);
  }
};

} // namespace
} // namespace mlir::tessera
