//===- ReuseBuffers.cpp - tessera-reuse-buffers ---------------------------===//
//
// Liveness-based sharing of activation storage in a lowered module.
//
// Programs run one at a time and each dispatch is a barrier-separated step,
// so the lifetime of a root activation buffer (one that owns storage) is the
// interval [first, last] of the dispatches of its program that bind it or
// any alias of it (reshapes). Two buffers may share storage when their
// intervals do not overlap; an operand that dies at dispatch d and a result
// born at d overlap, so no kernel ever reads and writes the same storage.
//
// Packing is greedy by size: buffers in decreasing size go to the smallest
// existing slot with no overlapping member, else to a new slot sized by
// that first (largest) member. A slot with several members becomes a new
// `activation` buffer and the members alias it (the plan's alias_of: the
// runtime binds the slot's VkBuffer at offset 0 with the member's range), so
// every bound range stays the size of one value and the runtime needs no
// arena offsets.
//
// Only activation roots bound by a single program are shared: they are
// written before they are read within their program (kernels write every
// element of their results) and nobody reads them afterwards. Everything
// the runtime reads or fills (weights, constants, LoRA factors, gradients,
// optimizer state, inputs, outputs, hparams) keeps its own storage.
//
// Sizes go into the module attribute
//   tessera.memory = {activations_unshared, activations_shared,
//                     activations_live_peak, activation_slots}   (bytes, count)
// which the plan emitter copies into the manifest.
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

#include <algorithm>
#include <map>
#include <set>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAREUSEBUFFERS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

struct Lifetime {
  int64_t program = -1, first = -1, last = -1;
  bool multiProgram = false;
};

struct Slot {
  int64_t bytes = 0;
  std::set<std::tuple<int64_t, int64_t, int64_t>> intervals; // (program, first, last)
  SmallVector<BufferOp> members;

  bool overlaps(const Lifetime &l) const {
    // The member starting at or before l.first, and the one after it.
    auto it = intervals.upper_bound({l.program, l.first, INT64_MAX});
    if (it != intervals.end() && std::get<0>(*it) == l.program && std::get<1>(*it) <= l.last)
      return true;
    if (it != intervals.begin()) {
      --it;
      if (std::get<0>(*it) == l.program && std::get<2>(*it) >= l.first)
        return true;
    }
    return false;
  }
};

int64_t bufferBytes(BufferOp b) {
  auto t = cast<MemRefType>(b.getType());
  // Bytes the runtime allocates: f32 / i32 (i1 is stored as i32), f16 / bf16
  // words, rounded up to whole 32-bit words.
  return (t.getNumElements() * t.getElementTypeBitWidth() / 8 + 3) / 4 * 4;
}

struct TesseraReuseBuffersPass : impl::TesseraReuseBuffersBase<TesseraReuseBuffersPass> {
  using TesseraReuseBuffersBase::TesseraReuseBuffersBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    if (module->hasAttr(attrs::memory))
      return; // already packed: slots are never packed again
    llvm::StringMap<BufferOp> bySymbol;
    SmallVector<BufferOp> buffers(module.getOps<BufferOp>());
    if (buffers.empty()) {
      emitError(module.getLoc(), "tessera-reuse-buffers: no tessera.buffer (run tessera-lower-to-kernels first)");
      return signalPassFailure();
    }
    for (BufferOp b : buffers)
      bySymbol[b.getSymName()] = b;
    auto rootOf = [&](StringRef sym) -> BufferOp {
      BufferOp b = bySymbol.lookup(sym);
      for (unsigned hops = 0; b && b.getAlias() && hops <= buffers.size(); ++hops)
        b = bySymbol.lookup(*b.getAlias());
      return b;
    };

    // Lifetimes of root buffers, per program, in dispatch order.
    DenseMap<Operation *, Lifetime> life;
    int64_t programIndex = 0;
    for (ProgramOp prog : module.getOps<ProgramOp>()) {
      int64_t d = 0;
      for (DispatchOp dispatch : prog.getBody().front().getOps<DispatchOp>()) {
        for (Attribute a : dispatch.getBuffers()) {
          BufferOp root = rootOf(cast<FlatSymbolRefAttr>(a).getValue());
          if (!root) {
            dispatch.emitOpError("binds unknown buffer ") << a;
            return signalPassFailure();
          }
          Lifetime &l = life[root];
          if (l.program >= 0 && l.program != programIndex)
            l.multiProgram = true;
          if (l.program != programIndex) {
            l.program = programIndex;
            l.first = d;
          }
          l.last = d;
        }
        ++d;
      }
      ++programIndex;
    }

    // Candidates: activation roots bound by exactly one program.
    SmallVector<std::pair<BufferOp, Lifetime>> candidates;
    int64_t unshared = 0, pinned = 0;
    for (BufferOp b : buffers) {
      if (b.getAlias() || b.getKind() != BufferKind::activation || b.getInit())
        continue;
      unshared += bufferBytes(b);
      auto it = life.find(b);
      if (it == life.end() || it->second.multiProgram) {
        pinned += bufferBytes(b);
        continue;
      }
      candidates.push_back({b, it->second});
    }

    // Peak of the live set (a lower bound for any packing), per program.
    int64_t livePeak = 0;
    {
      std::map<std::pair<int64_t, int64_t>, int64_t> delta; // (program, dispatch) -> bytes
      for (auto &[b, l] : candidates) {
        delta[{l.program, l.first}] += bufferBytes(b);
        delta[{l.program, l.last + 1}] -= bufferBytes(b);
      }
      int64_t current = 0, program = -1;
      for (auto &[key, bytes] : delta) {
        if (key.first != program)
          current = 0, program = key.first;
        current += bytes;
        livePeak = std::max(livePeak, current);
      }
      livePeak += pinned;
    }

    // Greedy by size: largest first, into the smallest slot that is free
    // for the whole lifetime.
    std::stable_sort(candidates.begin(), candidates.end(), [](auto &x, auto &y) {
      return bufferBytes(x.first) > bufferBytes(y.first);
    });
    std::vector<Slot> slots;
    for (auto &[b, l] : candidates) {
      Slot *best = nullptr;
      for (Slot &s : slots)
        if (!s.overlaps(l) && (!best || s.bytes < best->bytes))
          best = &s;
      if (!best) {
        slots.emplace_back();
        best = &slots.back();
        best->bytes = bufferBytes(b);
      }
      best->intervals.insert({l.program, l.first, l.last});
      best->members.push_back(b);
    }

    // Slot buffers, before the first buffer of the module.
    OpBuilder builder(ctx);
    builder.setInsertionPoint(buffers.front());
    SymbolTable symbols(module);
    int64_t shared = unshared;
    int64_t slotCount = 0;
    for (Slot &s : slots) {
      if (s.members.size() < 2)
        continue; // a lone member keeps its own buffer
      std::string sym = "activation.slot" + std::to_string(slotCount++);
      int64_t elements = s.bytes / 4;
      auto type = MemRefType::get({elements}, Float32Type::get(ctx));
      auto slot = builder.create<BufferOp>(
          module.getLoc(), StringAttr::get(ctx, sym), BufferKindAttr::get(ctx, BufferKind::activation),
          TypeAttr::get(type), StringAttr::get(ctx, sym),
          DenseI64ArrayAttr::get(ctx, {elements}), ElementsAttr(), FlatSymbolRefAttr(), IntegerAttr());
      symbols.insert(slot); // renames on a clash
      for (BufferOp m : s.members) {
        shared -= bufferBytes(m);
        m.setAliasAttr(FlatSymbolRefAttr::get(slot.getSymNameAttr()));
      }
      shared += s.bytes;
    }

    auto i64 = [&](int64_t v) { return IntegerAttr::get(IntegerType::get(ctx, 64), v); };
    module->setAttr(attrs::memory,
                    DictionaryAttr::get(ctx, {
                                                 NamedAttribute(StringAttr::get(ctx, "activations_unshared"), i64(unshared)),
                                                 NamedAttribute(StringAttr::get(ctx, "activations_shared"), i64(shared)),
                                                 NamedAttribute(StringAttr::get(ctx, "activations_live_peak"), i64(livePeak)),
                                                 NamedAttribute(StringAttr::get(ctx, "activation_slots"), i64(slotCount)),
                                             }));
  }
};

} // namespace
} // namespace mlir::tessera
