//===- StreamWeights.cpp - tessera-stream-weights -------------------------===//
//
// Frozen weights kept in host memory and copied into device memory only
// around the dispatches that read them ("streaming", issue 13), so that a
// model whose weights do not fit next to its activations still trains.
//
// Runs on a lowered module, after tessera-lower-to-kernels and before
// tessera-reuse-buffers. In each program, the dispatches that bind one
// weight are grouped into runs whose neighbours are at most `max-gap`
// dispatches apart (a layer's forward products, the same products in the
// backward, the loss chunks' lm_head): each run gets an activation buffer of
// the weight's type, a copy dispatch (weight -> that buffer) `prefetch`
// dispatches before the run (a transfer in the runtime, overlapping the
// dispatches between: the copy is ready when the run starts, at the cost of
// the copy's slot living that much longer), and the run binds the copy. The weight buffer is marked
// `tessera.host_resident`: the plan records it (`"host": true`) and the
// runtime keeps it in host-visible system memory, out of the device-local
// heap. The copies are activations, so tessera-reuse-buffers packs them
// into the same slots as everything else: at any time only the weights of
// the layer being computed are on the device. The copies are bit-exact, so
// the losses are those of the unstreamed plan.
//
// With `percent` below 100 (what --memory-budget asks for first) only part
// of the weights is streamed: those whose longest run is shortest, the
// largest first among equals, as many as fit in that share of the bytes.
//
// Weights at least `min-bytes` large are streamed; a weight that a reshape
// aliases keeps its place (the aliases would need copies of their own). A
// block-quantised weight streams as its 32-bit words: the copy holds the same
// blocks, and the kernels that dequantise index them the same way.
//
//===----------------------------------------------------------------------===//
#include "compiler/lowering/kernels/Kernels.h"

#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <map>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERASTREAMWEIGHTS
#include "Tessera/Transforms/Passes.h.inc"

namespace {

// The tensor element type a copy kernel moves for a buffer's storage type:
// bf16 weights are stored as 16-bit words, block-quantised ones as 32-bit words.
Type copyElement(MemRefType t) {
  Type e = t.getElementType();
  if (e.isInteger(16))
    return BFloat16Type::get(t.getContext());
  return e;
}

// Runs of the dispatches of `program` that bind each weight of `weights`:
// neighbours at most `maxGap` dispatches apart share a run (and a copy).
std::map<std::string, SmallVector<SmallVector<unsigned>>>
weightRuns(MutableArrayRef<DispatchOp> dispatches, const llvm::StringMap<BufferOp> &weights, unsigned maxGap) {
  std::map<std::string, SmallVector<SmallVector<unsigned>>> runs;
  for (auto [i, d] : llvm::enumerate(dispatches))
    for (Attribute a : d.getBuffers()) {
      StringRef sym = cast<FlatSymbolRefAttr>(a).getValue();
      if (!weights.count(sym))
        continue;
      auto &r = runs[sym.str()];
      if (r.empty() || i - r.back().back() > maxGap)
        r.emplace_back();
      if (r.back().empty() || r.back().back() != i)
        r.back().push_back(i);
    }
  return runs;
}

struct TesseraStreamWeightsPass : impl::TesseraStreamWeightsBase<TesseraStreamWeightsPass> {
  using TesseraStreamWeightsBase::TesseraStreamWeightsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<::tessera::lowering::LoweringContext> ctx = ::tessera::lowering::LoweringContext::fromModule(module);
    if (failed(ctx))
      return signalPassFailure();
    for (Operation &op : module.getOps())
      if (auto sym = op.getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName()))
        ctx->reserveName(sym.getValue());

    // The weights to stream: frozen, large enough, with no reshape alias.
    llvm::StringMap<BufferOp> weights;
    llvm::StringSet<> aliased;
    for (BufferOp b : module.getOps<BufferOp>())
      if (auto alias = b.getAlias())
        aliased.insert(*alias);
    for (BufferOp b : module.getOps<BufferOp>()) {
      auto mem = cast<MemRefType>(b.getType());
      int64_t bytes = mem.getNumElements() * (mem.getElementTypeBitWidth() / 8);
      if (b.getKind() == BufferKind::weight && !b.getAlias() && !aliased.contains(b.getSymName()) &&
          bytes >= int64_t(minBytes))
        weights[b.getSymName()] = b;
    }
    if (percent < 100) {
      // Part of the weights, as many as fit in the share: first those whose
      // copies live shortest (a copy holds its slot through its run: the
      // tied embedding's run spans the loss chunks, where activations peak,
      // so streaming it frees little), then the largest (fewest copies for
      // the bytes they free).
      std::map<std::string, unsigned> span; // longest run of each weight, in dispatches
      for (ProgramOp program : module.getOps<ProgramOp>()) {
        SmallVector<DispatchOp> dispatches(program.getBody().getOps<DispatchOp>());
        for (auto &[sym, list] : weightRuns(dispatches, weights, maxGap))
          for (const SmallVector<unsigned> &run : list)
            span[sym] = std::max(span[sym], run.back() - run.front() + 1);
      }
      struct Candidate {
        unsigned span;
        int64_t bytes;
        std::string name;
      };
      SmallVector<Candidate> order;
      int64_t total = 0;
      for (auto &e : weights) {
        auto mem = cast<MemRefType>(e.second.getType());
        int64_t bytes = mem.getNumElements() * (mem.getElementTypeBitWidth() / 8);
        order.push_back({span[e.first().str()], bytes, e.first().str()});
        total += bytes;
      }
      llvm::sort(order, [](const Candidate &a, const Candidate &b) {
        return std::tie(a.span, b.bytes, a.name) < std::tie(b.span, a.bytes, b.name);
      });
      int64_t room = total / 100 * int64_t(percent) + total % 100 * int64_t(percent) / 100, taken = 0;
      for (const Candidate &c : order)
        if (taken + c.bytes <= room)
          taken += c.bytes;
        else
          weights.erase(c.name);
    }
    if (weights.empty())
      return;

    OpBuilder buffers(module.getContext());
    buffers.setInsertionPoint(*module.getOps<BufferOp>().begin());
    unsigned streamed = 0, copies = 0;
    llvm::StringSet<> used;
    for (ProgramOp program : module.getOps<ProgramOp>()) {
      SmallVector<DispatchOp> dispatches(program.getBody().getOps<DispatchOp>());
      // weight -> runs of dispatch indices
      std::map<std::string, SmallVector<SmallVector<unsigned>>> runs = weightRuns(dispatches, weights, maxGap);
      for (auto &[sym, list] : runs) {
        BufferOp w = weights[sym];
        auto mem = cast<MemRefType>(w.getType());
        used.insert(sym);
        for (auto [k, run] : llvm::enumerate(list)) {
          std::string name = (w.getName() ? w.getName()->str() : sym) + ".streamed";
          std::string slot = ctx->uniqueName(program.getSymName().str() + "." + sym + ".stream" + std::to_string(k));
          BufferOp copy = buffers.create<BufferOp>(
              w.getLoc(), StringAttr::get(&getContext(), slot), BufferKindAttr::get(&getContext(), BufferKind::activation),
              TypeAttr::get(mem), StringAttr::get(&getContext(), name), w.getShapeAttr(), ElementsAttr(),
              FlatSymbolRefAttr(), IntegerAttr());
          // A quantised weight's copy holds the same blocks in the same order.
          for (StringRef attr : {attrs::quant, attrs::quantTransposed})
            if (Attribute a = w->getAttr(attr))
              copy->setAttr(attr, a);
          ::tessera::lowering::OpLowering l =
              ::tessera::lowering::lowerCopy(*ctx, mem.getNumElements(), copyElement(mem));
          // Ahead of the run, not before the program's start.
          OpBuilder pb(dispatches[run.front() - std::min<unsigned>(run.front(), prefetch)]);
          for (const ::tessera::lowering::DispatchStep &step : l.steps) {
            SmallVector<Attribute> refs{FlatSymbolRefAttr::get(&getContext(), sym),
                                        FlatSymbolRefAttr::get(&getContext(), slot)};
            auto d = pb.create<DispatchOp>(dispatches[run.front()].getLoc(),
                                           FlatSymbolRefAttr::get(&getContext(), step.kernel.name),
                                           ArrayAttr::get(&getContext(), refs), ArrayRef<int64_t>(step.kernel.groups));
            d->setAttr(attrs::stream, StringAttr::get(&getContext(), name));
          }
          ++copies;
          for (unsigned i : run) {
            DispatchOp d = dispatches[i];
            SmallVector<Attribute> refs;
            for (Attribute a : d.getBuffers())
              refs.push_back(cast<FlatSymbolRefAttr>(a).getValue() == sym ? FlatSymbolRefAttr::get(&getContext(), slot)
                                                                          : a);
            d.setBuffersAttr(ArrayAttr::get(&getContext(), refs));
          }
        }
      }
    }
    for (auto &entry : used) {
      weights[entry.getKey()]->setAttr(attrs::hostResident, UnitAttr::get(&getContext()));
      ++streamed;
    }
    module->setAttr(attrs::streamedWeights,
                    DictionaryAttr::get(&getContext(),
                                        {NamedAttribute(StringAttr::get(&getContext(), "weights"),
                                                        IntegerAttr::get(IntegerType::get(&getContext(), 64), streamed)),
                                         NamedAttribute(StringAttr::get(&getContext(), "copies"),
                                                        IntegerAttr::get(IntegerType::get(&getContext(), 64), copies))}));
  }
};

} // namespace
} // namespace mlir::tessera
