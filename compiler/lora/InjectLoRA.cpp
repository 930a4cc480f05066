//===- InjectLoRA.cpp - tessera-inject-lora -------------------------------===//
//
// Adds LoRA adapters to the selected linear layers of @forward.
//
// A linear layer is a tessera.matmul whose rhs is a rank-2 frozen
// tessera.param W (W [out, in] with transpose_rhs, [in, out] without). Its
// structural name is the matmul's `tessera.module` attribute, which
// tessera-raise derives from the graph structure (so anonymous weights such as
// dynamo's `val_159` still get `layers.0.self_attn.q_proj`); without it, the
// parameter name without a leading "model." and a trailing ".weight". A
// selected layer
//
//   %y = tessera.matmul %x, %W {transpose_rhs = true}
//
// becomes
//
//   %y  = tessera.matmul %x, %W {transpose_rhs = true}
//   %A  = tessera.param lora_a "<structural>.lora_A" : tensor<r x in>
//   %B  = tessera.param lora_b "<structural>.lora_B" : tensor<out x r>
//   %xa = tessera.matmul %x, %A {transpose_rhs = true}       // [..., M, r]
//   %xs = tessera.binary mul %xa, %scale                     // scale on the small side
//   %d  = tessera.matmul %xs, %B {transpose_rhs = true}      // [..., M, out]
//   %y2 = tessera.binary add %y, %d                          // replaces %y
//
// with scale = alpha / r (alpha / sqrt(r) with rslora). With dropout p > 0
// the A matmul reads `tessera.dropout %x {rate = p, site = fnv1a32(name)}`
// instead of %x: one independent mask per adapter, as PEFT's one nn.Dropout
// per LoRA layer, and a site that does not depend on the order of layers.
// `layers` (PEFT's layers_to_transform) keeps only the linear layers whose
// structural name starts with layers.N. for a listed N. Target matching
// follows PEFT: an entry selects a layer when it equals the last component
// of the structural name (q_proj) or is a dot-aligned suffix of it
// (self_attn.q_proj, layers.0.self_attn.q_proj); "all-linear" selects every
// linear layer except the output head (lm_head, or a head that reuses the
// embedding table).
//
// The module gets `tessera.lora = {rank, alpha, scale, rslora, targets,
// modules}`: targets as given, modules the adapted structural names in order.
// The new ops keep the base matmul's `tessera.layer` (decoder layer index).
//
//===----------------------------------------------------------------------===//
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>
#include <set>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAINJECTLORA
#include "Tessera/Transforms/Passes.h.inc"

namespace {

/// "model.layers.0.self_attn.q_proj.weight" -> "layers.0.self_attn.q_proj".
std::string structuralName(StringRef paramName) {
  StringRef s = paramName;
  s.consume_front("model.");
  s.consume_back(".weight");
  return s.str();
}

StringRef lastComponent(StringRef structural) {
  size_t dot = structural.rfind('.');
  return dot == StringRef::npos ? structural : structural.drop_front(dot + 1);
}

/// PEFT-style match of one target entry against a structural name.
bool matches(StringRef entry, StringRef structural) {
  if (entry == structural || entry == lastComponent(structural))
    return true;
  return structural.size() > entry.size() && structural.ends_with(entry) &&
         structural[structural.size() - entry.size() - 1] == '.';
}

/// FNV-1a, 32 bits: the dropout site of an adapter from its structural name.
uint32_t fnv1a32(StringRef s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

/// The decoder layer index of "layers.N.<...>", if any.
std::optional<int64_t> layerIndex(StringRef structural) {
  if (!structural.consume_front("layers."))
    return std::nullopt;
  int64_t n;
  StringRef digits = structural.take_until([](char c) { return c == '.'; });
  if (digits.getAsInteger(10, n))
    return std::nullopt;
  return n;
}

/// "0,2,5-7" -> {0, 2, 5, 6, 7}; an error message on bad syntax.
FailureOr<std::set<int64_t>> parseLayers(StringRef spec, std::string &err) {
  std::set<int64_t> out;
  for (StringRef e : llvm::split(spec, ',')) {
    e = e.trim();
    if (e.empty())
      continue;
    auto [lo, hi] = e.split('-');
    int64_t a, z;
    if (lo.trim().getAsInteger(10, a) || a < 0 ||
        (hi.empty() ? (z = a, false) : hi.trim().getAsInteger(10, z)) || z < a) {
      err = "--lora-layers: '" + e.str() + "' is not a layer index or range (e.g. 0,2,5-7)";
      return failure();
    }
    for (int64_t i = a; i <= z; ++i)
      out.insert(i);
  }
  return out;
}

struct LinearLayer {
  MatmulOp matmul;
  ParamOp weight;
  std::string structural;
  int64_t in, out;
};

/// A linear layer when the rhs is a rank-2 frozen param.
std::optional<LinearLayer> asLinear(MatmulOp mm) {
  Value rhs = mm.getRhs();
  if (auto t = rhs.getDefiningOp<TernaryWeightOp>()) // BitLinear: the weight it ternarises
    rhs = t.getWeight();
  auto param = rhs.getDefiningOp<ParamOp>();
  if (!param || param.getKind() != ParamKind::frozen)
    return std::nullopt;
  auto wt = cast<RankedTensorType>(param.getType());
  if (wt.getRank() != 2)
    return std::nullopt;
  std::string structural = structuralName(param.getName());
  if (auto named = mm->getAttrOfType<StringAttr>(attrs::module))
    structural = named.str();
  LinearLayer l{mm, param, structural, 0, 0};
  l.in = mm.getTransposeRhs() ? wt.getDimSize(1) : wt.getDimSize(0);
  l.out = mm.getTransposeRhs() ? wt.getDimSize(0) : wt.getDimSize(1);
  return l;
}

/// Names of the params used as gather tables (embeddings): a matmul against
/// one of them is a tied output head, not a linear layer for all-linear.
llvm::StringSet<> embeddingTables(func::FuncOp f) {
  llvm::StringSet<> names;
  f.walk([&](GatherOp g) {
    if (auto t = g.getInput().getDefiningOp<ParamOp>())
      names.insert(t.getName());
  });
  f.walk([&](EmbeddingOp e) {
    if (auto t = e.getTable().getDefiningOp<ParamOp>())
      names.insert(t.getName());
  });
  return names;
}

/// The linear layers for an error message: every structural name when there
/// are few, otherwise the distinct last components and one full example.
std::string describeLinears(ArrayRef<LinearLayer> linears) {
  llvm::SetVector<StringRef> names, kinds;
  for (const LinearLayer &l : linears) {
    names.insert(l.structural);
    kinds.insert(lastComponent(l.structural));
  }
  if (names.empty())
    return "(none)";
  if (names.size() <= 16)
    return llvm::join(names, ", ");
  return llvm::join(kinds, ", ") + " (" + std::to_string(names.size()) + " layers, e.g. " +
         names.front().str() + ")";
}

struct TesseraInjectLoRAPass : impl::TesseraInjectLoRABase<TesseraInjectLoRAPass> {
  using TesseraInjectLoRABase::TesseraInjectLoRABase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      emitError(module.getLoc(), "tessera-inject-lora: the module has no @forward function");
      return signalPassFailure();
    }
    if (rank < 1) {
      emitError(module.getLoc(), "tessera-inject-lora: --lora-rank must be >= 1, got ")
          << (int64_t)rank;
      return signalPassFailure();
    }
    if (module->hasAttr(attrs::lora)) {
      emitError(module.getLoc(), "tessera-inject-lora: the module already has LoRA adapters");
      return signalPassFailure();
    }

    SmallVector<std::string> entries;
    for (StringRef e : llvm::split(StringRef(targets), ',')) {
      e = e.trim();
      if (!e.empty())
        entries.push_back(e.str());
    }
    if (entries.empty()) {
      emitError(module.getLoc(), "tessera-inject-lora: --lora-targets is empty");
      return signalPassFailure();
    }
    bool allLinear = llvm::is_contained(entries, "all-linear");
    if (!(dropout >= 0.0 && dropout < 1.0)) {
      emitError(module.getLoc(), "tessera-inject-lora: --lora-dropout must be in [0, 1), got ")
          << (double)dropout;
      return signalPassFailure();
    }
    std::string layersError;
    FailureOr<std::set<int64_t>> layerSet = parseLayers(layers, layersError);
    if (failed(layerSet)) {
      emitError(module.getLoc(), layersError);
      return signalPassFailure();
    }

    SmallVector<LinearLayer> linears;
    forward.walk([&](MatmulOp mm) {
      if (auto l = asLinear(mm))
        linears.push_back(*l);
    });

    // Select layers; every explicit entry must match at least one.
    llvm::StringSet<> tables = embeddingTables(forward);
    SmallVector<LinearLayer> selected;
    llvm::StringMap<bool> entryUsed;
    for (LinearLayer &l : linears) {
      bool take = false;
      if (allLinear && lastComponent(l.structural) != "lm_head" &&
          !tables.contains(l.weight.getName()))
        take = true;
      for (const std::string &e : entries)
        if (e != "all-linear" && matches(e, l.structural)) {
          take = true;
          entryUsed[e] = true;
        }
      if (take && !layerSet->empty()) {
        std::optional<int64_t> n = layerIndex(l.structural);
        take = n && layerSet->count(*n);
      }
      if (take)
        selected.push_back(l);
    }
    if (!layerSet->empty()) {
      std::set<int64_t> present;
      for (const LinearLayer &l : linears)
        if (std::optional<int64_t> n = layerIndex(l.structural))
          present.insert(*n);
      for (int64_t n : *layerSet)
        if (!present.count(n)) {
          emitError(module.getLoc()) << "--lora-layers: the model has no decoder layer " << n
                                     << " (its layers are 0-"
                                     << (present.empty() ? -1 : *present.rbegin()) << ")";
          return signalPassFailure();
        }
    }
    for (const std::string &e : entries) {
      if (e == "all-linear" || entryUsed.lookup(e))
        continue;
      emitError(module.getLoc()) << "--lora-targets '" << e
                                 << "' matches no linear layer; linear layers are: "
                                 << describeLinears(linears);
      return signalPassFailure();
    }
    if (selected.empty()) {
      emitError(module.getLoc(), "tessera-inject-lora: --lora-targets '")
          << targets << "' selects no linear layer";
      return signalPassFailure();
    }

    // A rank above min(in, out) adds parameters and memory but no capacity
    // (the update B A has rank <= min(in, out) anyway): a typo, not a choice.
    for (const LinearLayer &l : selected)
      if (rank > std::min(l.in, l.out)) {
        emitError(module.getLoc()) << "--lora-rank " << (int64_t)rank << " is larger than " << l.structural
                                   << "'s smaller dimension (" << l.in << " in, " << l.out
                                   << " out): a rank above min(in, out) adds memory but no capacity; use --lora-rank "
                                   << std::min(l.in, l.out) << " or less";
        return signalPassFailure();
      }
    double scale = rslora ? alpha / std::sqrt((double)rank) : alpha / (double)rank;
    OpBuilder b(module.getContext());
    auto f32 = b.getF32Type();
    SmallVector<Attribute> moduleNames;
    llvm::StringSet<> seen;
    for (const LinearLayer &l : selected) {
      MatmulOp mm = l.matmul;
      Location loc = mm.getLoc();
      b.setInsertionPointAfter(mm);
      auto aType = RankedTensorType::get({rank, l.in}, f32);
      auto bType = RankedTensorType::get({l.out, rank}, f32);
      Value pa = b.create<ParamOp>(loc, aType, ParamKind::lora_a,
                                   b.getStringAttr(l.structural + ".lora_A"));
      Value pb = b.create<ParamOp>(loc, bType, ParamKind::lora_b,
                                   b.getStringAttr(l.structural + ".lora_B"));
      // A BitLinear's LoRA branch reads the unquantised input, as PEFT's
      // wrapper of transformers' AutoBitLinear does.
      Value input = mm.getLhs();
      if (auto q = input.getDefiningOp<ActQuantOp>())
        input = q.getInput();
      Value x = input;
      if (dropout > 0.0)
        x = b.create<DropoutOp>(loc, x, b.getF64FloatAttr(dropout),
                                b.getI64IntegerAttr(fnv1a32(l.structural)));
      Value xa = b.create<MatmulOp>(loc, x, pa, mm.getTransposeLhs(), /*transpose_rhs=*/true);
      Type e = cast<ShapedType>(xa.getType()).getElementType();
      Value c = b.create<ConstantOp>(
          loc, DenseElementsAttr::get(RankedTensorType::get({}, e), b.getFloatAttr(e, scale)));
      Value xs = b.create<BinaryOp>(loc, BinaryFn::mul, xa, c);
      Value d = b.create<MatmulOp>(loc, xs, pb, /*transpose_lhs=*/false, /*transpose_rhs=*/true);
      auto sum = b.create<BinaryOp>(loc, BinaryFn::add, mm.getResult(), d);
      mm.getResult().replaceAllUsesExcept(sum.getResult(), sum);
      if (Attribute layer = mm->getAttr(attrs::layer))
        for (Value v : {x, xa, c, xs, d, Value(sum.getResult())})
          if (v != input)
            v.getDefiningOp()->setAttr(attrs::layer, layer);
      if (seen.insert(l.structural).second)
        moduleNames.push_back(b.getStringAttr(l.structural));
    }

    SmallVector<Attribute> targetAttrs;
    for (const std::string &e : entries)
      targetAttrs.push_back(b.getStringAttr(e));
    NamedAttribute attrs[] = {
        b.getNamedAttr("rank", b.getI64IntegerAttr(rank)),
        b.getNamedAttr("alpha", b.getF64FloatAttr(alpha)),
        b.getNamedAttr("scale", b.getF64FloatAttr(scale)),
        b.getNamedAttr("rslora", b.getBoolAttr(rslora)),
        b.getNamedAttr("dropout", b.getF64FloatAttr(dropout)),
        b.getNamedAttr("targets", b.getArrayAttr(targetAttrs)),
        b.getNamedAttr("modules", b.getArrayAttr(moduleNames)),
    };
    module->setAttr(attrs::lora, b.getDictionaryAttr(attrs));
  }
};

} // namespace
} // namespace mlir::tessera
