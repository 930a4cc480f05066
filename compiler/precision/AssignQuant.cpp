// AssignQuant.cpp - tessera-assign-quant: which frozen linear weights are
// stored block-quantised, and along which axis their blocks run
// (docs/quantization.md).
//
// A frozen 2-D weight qualifies when every use, in every function, is a
// matmul operand and one of them is its linear layer's forward product (the
// matmul with tessera.module). The blocks run along that product's
// reduction axis (GGUF's rows of input features): axis 1 of a [out, in]
// weight read with transpose_rhs, axis 0 (tessera.quant_transposed) of the
// [in, out] weights that dynamo exports pre-transpose. The backward's
// activation-gradient product (dY W) reads the same buffer along the other
// axis; the lowering indexes the blocks either way.
//
// The type: the last override whose pattern the layer's structural name
// equals or ends with (".down_proj" matches every down projection), else
// base-dtype, except lm_head, which stays in the plan's precision unless an
// override names it. What cannot be quantised stays in the precision and is
// reported in one remark per weight: rows that are not whole blocks, a
// weight also read otherwise (a tied embedding, the loss chunks' slices).
// BitNet's ternary codes (tessera.ternary = "codes") are TQ2_0 unless an
// override says otherwise: their values are -1, 0, 1, so blocks of scale 1
// hold them exactly.
#include "compiler/precision/Quantized.h"

#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/StringMap.h"

#include <map>
#include <set>

namespace mlir::tessera {
#define GEN_PASS_DEF_TESSERAASSIGNQUANT
#include "Tessera/Transforms/Passes.h.inc"

namespace {

using ::tessera::plan::DType;

struct Override {
  std::string pattern;
  std::optional<DType> type; // nullopt: the precision (not quantised)
};

bool matches(StringRef module, StringRef pattern) {
  return module == pattern || (module.ends_with(pattern) && module.size() > pattern.size() &&
                               (pattern.front() == '.' || module[module.size() - pattern.size() - 1] == '.'));
}

// What one weight's uses say, merged over the functions.
struct WeightUse {
  std::string module;       // the forward product's tessera.module
  std::string otherUse;     // an op that is no matmul, if any
  std::optional<int> axis;  // the forward product's reduction axis of the weight
  Location loc;
  std::vector<ParamOp> params;
};

struct TesseraAssignQuantPass : impl::TesseraAssignQuantBase<TesseraAssignQuantPass> {
  using TesseraAssignQuantBase::TesseraAssignQuantBase;

  bool isPrecision(StringRef t) {
    StringRef p = precision;
    return t == p || ((t == "f32" || t == "fp32") && (p == "f32" || p == "fp32"));
  }

  // A type name: a block type, or the precision (nullopt); failure otherwise.
  FailureOr<std::optional<DType>> parseType(ModuleOp m, StringRef t, StringRef what) {
    if (std::optional<DType> d = ::tessera::quant::parseQuantType(t))
      return std::optional<DType>(*d);
    if (t.empty() || isPrecision(t))
      return std::optional<DType>();
    if (t == "f32" || t == "fp32" || t == "f16" || t == "bf16")
      return emitError(m.getLoc()) << what << " = " << t << ": frozen weights are stored in the plan's precision ("
                                   << precision << ") or block-quantised (q8_0, q4_0, tq2_0); for " << t
                                   << " storage compile with --precision " << t,
             failure();
    return emitError(m.getLoc()) << what << " = '" << t << "' is not q8_0, q4_0, tq2_0 or " << precision,
           failure();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto base = parseType(module, baseDtype, "--base-dtype");
    if (failed(base))
      return signalPassFailure();
    std::vector<Override> rules;
    for (StringRef item : llvm::split(StringRef(overrides), ',')) {
      item = item.trim();
      if (item.empty())
        continue;
      auto [pat, type] = item.split('=');
      pat = pat.trim(), type = type.trim();
      if (pat.empty() || !item.contains('=')) {
        emitError(module.getLoc()) << "--base-dtype-override '" << item << "': expected LAYER=TYPE, e.g. lm_head=q8_0";
        return signalPassFailure();
      }
      auto t = parseType(module, type, "--base-dtype-override " + pat.str());
      if (failed(t))
        return signalPassFailure();
      rules.push_back({pat.str(), *t});
    }
    bool ternary = false; // BitNet codes are TQ2_0 without --base-dtype
    module.walk([&](ParamOp p) { ternary |= ::tessera::quant::ternaryPart(p) == "codes"; });
    if (!*base && rules.empty() && !ternary)
      return;

    // Uses of every frozen 2-D weight, over all functions.
    std::map<std::string, WeightUse> uses;
    module.walk([&](ParamOp p) {
      auto t = cast<ShapedType>(p.getType());
      // A tile of a weight split over the buffer limit stays in the
      // precision (its rows load from the initializer, not as blocks).
      if (p.getKind() != ParamKind::frozen || t.getRank() != 2 || p.getRows())
        return;
      auto [it, inserted] = uses.try_emplace(p.getName().str(), WeightUse{"", "", std::nullopt, p.getLoc(), {}});
      WeightUse &w = it->second;
      w.params.push_back(p);
      for (OpOperand &use : p.getResult().getUses()) {
        auto mm = dyn_cast<MatmulOp>(use.getOwner());
        if (!mm) {
          if (w.otherUse.empty())
            w.otherUse = use.getOwner()->getName().stripDialect().str();
          continue;
        }
        auto name = mm->getAttrOfType<StringAttr>("tessera.module");
        if (!name || w.axis)
          continue;
        bool rhs = use.getOperandNumber() == 1;
        bool transposed = rhs ? mm.getTransposeRhs() : mm.getTransposeLhs();
        // rhs [K, N] (or [N, K] transposed) / lhs [M, K] (or [K, M]): the K axis.
        w.axis = rhs ? (transposed ? 1 : 0) : (transposed ? 0 : 1);
        w.module = name.str();
      }
    });

    std::set<size_t> matched; // overrides that named a layer
    for (auto &[name, w] : uses) {
      if (w.module.empty())
        continue; // no linear layer reads it (an untied embedding)
      std::optional<DType> type = w.module == "lm_head" ? std::nullopt : *base;
      // BitNet's ternary codes are exactly TQ2_0 values (block scale 1): packed
      // by default, whatever --base-dtype says; an override may still choose.
      if (::tessera::quant::ternaryPart(w.params.front()) == "codes")
        type = DType::TQ2_0;
      for (size_t r = 0; r < rules.size(); ++r)
        if (matches(w.module, rules[r].pattern))
          type = rules[r].type, matched.insert(r);
      if (!type)
        continue;
      const char *tname = ::tessera::plan::dtypeName(*type);
      if (!w.otherUse.empty()) {
        emitRemark(w.loc) << w.module << " ('" << name << "') stays in " << precision << ", not " << tname
                          << ": its weight is also read by " << w.otherUse
                          << (w.otherUse == "gather" ? " (tied to the embedding)" : "");
        continue;
      }
      auto shape = cast<ShapedType>(w.params.front().getType()).getShape();
      int64_t row = shape[*w.axis], block = int64_t(::tessera::plan::blockElements(*type));
      if (row % block != 0) {
        emitRemark(w.loc) << w.module << " ('" << name << "') stays in " << precision << ", not " << tname
                          << ": its rows of " << row << " input features are not whole blocks of " << block;
        continue;
      }
      Builder b(module.getContext());
      for (ParamOp p : w.params) {
        p->setAttr(::tessera::quant::kQuantAttr, b.getStringAttr(tname));
        if (*w.axis == 0)
          p->setAttr(::tessera::quant::kTransposedAttr, b.getUnitAttr());
      }
    }
    for (size_t r = 0; r < rules.size(); ++r)
      if (!matched.count(r))
        emitRemark(module.getLoc()) << "--base-dtype-override " << rules[r].pattern
                                    << ": no linear layer is named so (they are named like layers.0.mlp.down_proj "
                                       "and lm_head; the embedding is gathered and stays in "
                                    << precision << ")";
  }
};

} // namespace
} // namespace mlir::tessera
