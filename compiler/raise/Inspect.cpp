// Inspect.cpp - `tessera inspect`: import, run tessera-raise, print what it
// recognised (the module's `tessera.arch` and the named linear layers).
#include "compiler/Dialects.h"
#include "compiler/raise/Inspect.h"

#include "compiler/import/OnnxImporter.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

namespace tessera {
namespace {

using namespace mlir;
using namespace mlir::tessera;

int64_t intField(DictionaryAttr d, StringRef name) {
  auto a = d.getAs<IntegerAttr>(name);
  return a ? a.getInt() : 0;
}
double floatField(DictionaryAttr d, StringRef name) {
  auto a = d.getAs<FloatAttr>(name);
  return a ? a.getValueAsDouble() : 0.0;
}
std::string strField(DictionaryAttr d, StringRef name) {
  auto a = d.getAs<StringAttr>(name);
  return a ? a.str() : "";
}
bool boolField(DictionaryAttr d, StringRef name) {
  auto a = d.getAs<BoolAttr>(name);
  return a && a.getValue();
}

std::string structuralFromParam(StringRef param) {
  param.consume_front("model.");
  param.consume_back(".weight");
  return param.str();
}

void printReport(ModuleOp module, func::FuncOp forward, DictionaryAttr arch,
                 const InspectOptions &o, llvm::raw_ostream &os) {
  auto line = [&](StringRef key) -> llvm::raw_ostream & {
    os << "  " << key << ":";
    for (size_t i = key.size(); i < 18; ++i)
      os << ' ';
    return os;
  };
  os << o.model << " (imported at batch " << o.batch << ", seq " << o.seq << ")\n";
  line("architecture") << strField(arch, "arch") << "\n";
  line("layers") << intField(arch, "layers") << "\n";
  line("hidden size") << intField(arch, "hidden") << "\n";
  int64_t heads = intField(arch, "heads"), kv = intField(arch, "kv_heads");
  line("attention heads") << heads << "\n";
  line("kv heads") << kv;
  if (kv && heads != kv)
    os << " (grouped-query, " << heads / kv << " query heads per kv head)";
  os << "\n";
  line("head dim") << intField(arch, "head_dim") << "\n";
  line("intermediate size") << intField(arch, "intermediate") << "\n";
  line("vocab size") << intField(arch, "vocab") << "\n";
  line("norm") << strField(arch, "norm");
  if (strField(arch, "norm") != "none") {
    os << ", eps " << llvm::format("%g", floatField(arch, "norm_eps"));
    if (floatField(arch, "norm_weight_offset") != 0)
      os << ", weight (1 + w)";
  }
  os << "\n";
  line("q/k norm") << (boolField(arch, "qk_norm") ? "yes" : "no") << "\n";
  std::string act = strField(arch, "activation");
  line("activation") << act
                     << (act == "silu"        ? " (SwiGLU)"
                         : act == "gelu_tanh" ? " (GeGLU)"
                         : act == "relu2"     ? " (relu(gate)^2 * up)"
                                              : "")
                     << "\n";
  if (int64_t bit = intField(arch, "bit_linear_layers"))
    line("BitLinear layers") << bit << " (BitNet b1.58: ternary absmean weights, int8 absmax activations)\n";
  line("tied embeddings") << (boolField(arch, "tied_embeddings") ? "yes" : "no") << "\n";
  line("embedding scale") << llvm::format("%g", floatField(arch, "embedding_scale")) << "\n";
  line("attention scale") << llvm::format("%g", floatField(arch, "attention_scale")) << "\n";
  line("attention masks");
  auto windows = arch.getAs<DenseI64ArrayAttr>("attention_windows");
  for (size_t i = 0; windows && i < windows.size(); ++i) {
    int64_t w = windows[i];
    os << (i ? ", " : "") << "layer " << i << " "
       << (w == -1  ? "causal"
           : w == -2 ? "from an initializer"
           : w == 0  ? "other"
                     : "sliding window " + std::to_string(w));
  }
  os << "\n";

  // Linear layers, in graph order.
  struct Linear {
    std::string name, param;
    int64_t in, out;
    bool head, ternary, int8;
  };
  std::vector<Linear> linears;
  size_t width = 0;
  forward.walk([&](MatmulOp mm) {
    Value rhs = mm.getRhs();
    bool ternary = false;
    if (auto t = rhs.getDefiningOp<TernaryWeightOp>())
      rhs = t.getWeight(), ternary = true;
    auto p = rhs.getDefiningOp<ParamOp>();
    if (!p || p.getKind() != ParamKind::frozen)
      return;
    auto shape = cast<ShapedType>(p.getType()).getShape();
    if (shape.size() != 2)
      return;
    Linear l;
    auto named = mm->getAttrOfType<StringAttr>(attrs::module);
    l.name = named ? named.str() : structuralFromParam(p.getName());
    l.param = p.getName().str();
    l.in = mm.getTransposeRhs() ? shape[1] : shape[0];
    l.out = mm.getTransposeRhs() ? shape[0] : shape[1];
    l.head = l.name == "lm_head";
    l.ternary = ternary;
    l.int8 = mm.getLhs().getDefiningOp<ActQuantOp>() != nullptr;
    width = std::max(width, l.name.size());
    linears.push_back(l);
  });
  os << "linear layers (" << linears.size()
     << "; --lora-targets matches the last name component, e.g. q_proj, or all-linear):\n";
  for (const Linear &l : linears) {
    os << "  " << l.name << std::string(width + 2 - l.name.size(), ' ') << "[" << l.in << " -> "
       << l.out << "]  " << l.param;
    if (l.ternary)
      os << (l.int8 ? "  (BitLinear: ternary weight, int8 activations)" : "  (ternary weight)");
    if (l.head)
      os << (boolField(arch, "tied_embeddings") ? "  (output head, tied; not in all-linear)"
                                                : "  (output head; not in all-linear)");
    os << "\n";
  }

  auto generic = arch.getAs<ArrayAttr>("generic_ops");
  int64_t total = 0;
  for (Attribute a : generic)
    total += intField(cast<DictionaryAttr>(a), "count");
  os << "generic ops: " << (total ? std::to_string(total) : "none")
     << (total ? " (not raised; they still train, through the generic kernels)" : "") << "\n";
  for (Attribute a : generic) {
    auto d = cast<DictionaryAttr>(a);
    os << "  " << strField(d, "op") << " x" << intField(d, "count");
    auto nodes = d.getAs<ArrayAttr>("nodes");
    if (nodes && !nodes.empty()) {
      os << " (";
      for (size_t i = 0; i < nodes.size(); ++i)
        os << (i ? ", " : "") << cast<StringAttr>(nodes[i]).getValue();
      os << (intField(d, "count") > (int64_t)nodes.size() ? ", ...)" : ")");
    }
    os << "\n";
  }
}

} // namespace

int inspectModel(const InspectOptions &o, std::string &report, std::string &error) {
  MLIRContext ctx;
  DialectRegistry registry;
  ::tessera::registerCompilerDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  std::string firstError;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    if (d.getSeverity() == DiagnosticSeverity::Error && firstError.empty())
      firstError = d.str();
    return success();
  });
  if (o.batch < 1 || o.seq < 1) {
    error = "--batch and --seq must be >= 1";
    return 1;
  }
  OwningOpRef<ModuleOp> module = importOnnx(ctx, o.model, ImportOptions{o.batch, o.seq}, error);
  if (!module) {
    if (error.empty())
      error = o.model + ": import failed: " + firstError;
    return 1;
  }
  PassManager pm(&ctx);
  pm.addPass(createTesseraRaise());
  if (failed(pm.run(*module))) {
    error = o.model + ": " + firstError;
    return 1;
  }
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  auto arch = (*module)->getAttrOfType<DictionaryAttr>(attrs::arch);
  if (!forward || !arch || intField(arch, "layers") == 0) {
    error = o.model +
            ": not a decoder language model: no embedding followed by residual attention/MLP "
            "blocks was recognised (tessera expects token ids -> embedding -> decoder layers -> "
            "logits)";
    return 1;
  }
  llvm::raw_string_ostream os(report);
  printReport(*module, forward, arch, o, os);
  return 0;
}

} // namespace tessera
