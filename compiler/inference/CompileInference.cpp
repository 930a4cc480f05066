// CompileInference.cpp - the generation plan: two imports, @prefill and
// @decode, then the same lowering as training.
#include "compiler/Dialects.h"
#include "compiler/inference/CompileInference.h"

#include "autotune/Profile.h"

#include "compiler/import/OnnxImporter.h"
#include "compiler/inference/BuildInference.h"
#include "compiler/plan/PlanEmitter.h"
#include "runtime/plan/Plan.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include <cstdio>

namespace tessera {

int compileInferencePlan(const CompileOptions &o, std::string &error) {
  mlir::MLIRContext ctx;
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  std::string first;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error && first.empty()) {
      first = d.str();
      for (auto &note : d.getNotes()) first += " (" + note.str() + ")";
    }
    return mlir::success();
  });
  if (o.batch != 1) {
    error = "--generate plans are for one sequence: --batch must be 1";
    return 1;
  }
  if (o.seq < 2) {
    error = "--generate: --seq (the context: prompt + generated tokens) must be >= 2";
    return 1;
  }
  if (o.lora_rank < 1) {
    error = "--lora-rank must be >= 1";
    return 1;
  }

  // The model at the context length and at one token, each raised and adapted.
  auto load = [&](int64_t seq) -> mlir::OwningOpRef<mlir::ModuleOp> {
    mlir::OwningOpRef<mlir::ModuleOp> m = importOnnx(ctx, o.model, ImportOptions{1, seq}, error);
    if (!m) {
      if (error.empty()) error = o.model + ": import failed: " + first;
      return nullptr;
    }
    mlir::PassManager pm(&ctx);
    pm.addPass(mlir::tessera::createTesseraRaise());
    mlir::tessera::TesseraInjectLoRAOptions lora;
    lora.targets = o.lora_targets;
    lora.rank = o.lora_rank;
    lora.alpha = o.lora_alpha;
    lora.rslora = o.rslora;
    lora.layers = o.lora_layers;
    pm.addPass(mlir::tessera::createTesseraInjectLoRA(lora));
    if (mlir::failed(pm.run(*m))) {
      error = o.model + ": " + first;
      return nullptr;
    }
    return m;
  };
  mlir::OwningOpRef<mlir::ModuleOp> full = load(o.seq);
  if (!full) return 1;
  mlir::OwningOpRef<mlir::ModuleOp> one = load(1);
  if (!one) return 1;
  if (mlir::failed(buildInference(*full, *one, error))) {
    error = o.model + ": cannot build generation: " + error;
    return 1;
  }

  mlir::PassManager lowering(&ctx);
  lowering.addPass(mlir::tessera::createTesseraDecomposeFused());
  // Weights beyond the target's buffer limit: row tiles (docs/memory.md).
  mlir::tessera::TesseraSplitLargeTensorsOptions splitting;
  try {
    splitting.maxBytes = autotune::loadProfileOrDefault(o.profile).max_buffer_bytes;
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  lowering.addPass(mlir::tessera::createTesseraSplitLargeTensors(splitting));
  if (o.fuse) lowering.addPass(mlir::tessera::createTesseraFuseElementwise());
  mlir::tessera::TesseraSelectKernelConfigsOptions configOptions;
  configOptions.profile = o.profile;
  lowering.addPass(mlir::tessera::createTesseraSelectKernelConfigs(configOptions));
  lowering.addPass(mlir::tessera::createTesseraLowerToKernels());
  if (o.reuse_buffers) lowering.addPass(mlir::tessera::createTesseraReuseBuffers());
  lowering.addPass(mlir::tessera::createTesseraKernelsToSPIRV());
  if (mlir::failed(lowering.run(*full))) {
    error = "lowering the generation programs failed: " + first;
    return 1;
  }

  PlanOptions po;
  po.model_file = o.model;
  po.batch = 1;
  po.seq = o.seq;
  po.lora_rank = o.lora_rank;
  po.lora_alpha = o.lora_alpha;
  po.rslora = o.rslora;
  po.seed = o.seed;
  mlir::FailureOr<plan::Plan> p = buildPlan(*full, po);
  if (mlir::failed(p)) {
    error = "plan emission failed: " + first;
    return 1;
  }
  for (const plan::Buffer &b : p->buffers)
    if (b.name == "decode.logits" && b.shape.size() == 3) p->vocab = b.shape.back();
  p->target.max_buffer_bytes = uint64_t(splitting.maxBytes);
  try {
    plan::writePlanFile(*p, o.output);
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  if (!o.quiet) {
    size_t dispatches = 0;
    for (const plan::Program &prog : p->programs) dispatches += prog.dispatches.size();
    std::printf("wrote %s: generation plan (prefill + decode, context %lld), %zu kernels, %zu dispatches, %zu LoRA "
                "adapters, %.2f MiB of device memory\n",
                o.output.c_str(), (long long)o.seq, p->kernels.size(), dispatches, p->adapters.size(),
                double(p->memory.total) / 1048576.0);
  }
  return 0;
}

} // namespace tessera
