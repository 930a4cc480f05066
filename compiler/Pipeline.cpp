// Pipeline.cpp - the compile driver: one function that walks the stages in
// the order of the compiler/ folders.
#include "compiler/Pipeline.h"
#include "compiler/Dialects.h"
#include "compiler/TrainingPipeline.h"

#include "autotune/Profile.h"
#include "compiler/export/GgufBase.h"
#include "compiler/import/OnnxImporter.h"
#include "compiler/inference/CompileInference.h"
#include "compiler/plan/PlanEmitter.h"
#include "autotune/TuningPlan.h"
#include "runtime/plan/Plan.h"
#include "runtime/weights/GgufWeights.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace tessera {
namespace {

// Collects the first error diagnostic as one line for the CLI.
struct FirstError {
  std::string message;
  void capture(mlir::Diagnostic &diag) {
    if (diag.getSeverity() != mlir::DiagnosticSeverity::Error || !message.empty())
      return;
    llvm::raw_string_ostream os(message);
    os << diag;
    for (auto &note : diag.getNotes())
      os << " (" << note << ")";
  }
};

bool writeText(const std::string &path, mlir::ModuleOp module, std::string &error) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    error = path + ": cannot write: " + ec.message();
    return false;
  }
  module.print(os);
  return true;
}

void printSummary(const plan::Plan &p, const std::string &path) {
  size_t dispatches = 0;
  for (const plan::Program &prog : p.programs)
    dispatches += prog.dispatches.size();
  const plan::MemorySummary &m = p.memory;
  auto mib = [](uint64_t b) { return b / 1048576.0; };
  std::printf("wrote %s: %zu kernels, %zu dispatches, %zu LoRA adapters\n", path.c_str(), p.kernels.size(),
              dispatches, p.adapters.size());
  std::printf("peak device memory %.2f MiB:\n", mib(m.total));
  // Frozen weights by storage type (the block types hold ~8.5, 4.5, 2.06 bits per value).
  std::map<std::string, std::pair<uint64_t, size_t>> byType;
  for (const plan::Buffer &b : p.buffers)
    if (b.kind == plan::BufferKind::Weight && b.alias_of < 0) {
      auto &e = byType[plan::dtypeName(b.dtype)];
      e.first += b.bytes, e.second += 1;
    }
  std::string types;
  for (const auto &[t, e] : byType) {
    char part[96];
    std::snprintf(part, sizeof(part), "%s%s %.2f MiB in %zu tensors", types.empty() ? "" : ", ", t.c_str(), mib(e.first),
                  e.second);
    types += part;
  }
  std::printf("  frozen weights          %10.2f MiB  (%s)\n", mib(m.weights), types.c_str());
  std::printf("  activations             %10.2f MiB  (largest live set %.2f MiB, %.2f MiB without reuse)\n",
              mib(m.activations), mib(m.activations_live_peak), mib(m.activations_unshared));
  std::printf("  adapter + AdamW + grads %10.2f MiB  (LoRA %.2f, AdamW state %.2f, gradients %.2f)\n",
              mib(m.adapters + m.optimizer_state + m.gradients), mib(m.adapters), mib(m.optimizer_state),
              mib(m.gradients));
  std::printf("  workspace               %10.2f MiB  (inputs, outputs, hparams, constants)\n", mib(m.workspace));
  std::printf("  largest buffer          %10.2f MiB  (%s)\n", mib(m.largest_buffer), m.largest_buffer_name.c_str());
}

std::vector<std::string> splitList(const std::string &s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos)
      comma = s.size();
    if (comma > start)
      out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

} // namespace

int compileModel(const CompileOptions &o, std::string &error) {
  if (o.generate && (!o.base_dtype.empty() || !o.base_dtype_overrides.empty() || !o.gguf_weights.empty())) {
    error = "--base-dtype and --weights BASE.gguf are for training plans; a --generate plan reads ONNX weights in "
            "--precision";
    return 1;
  }
  if (o.generate && !o.tuning_plan.empty()) {
    error = "--tuning-plan is for training plans (tune with the training plan's shapes; a profile tuned "
            "for them serves --generate plans' matmuls through its rules)";
    return 1;
  }
  if (o.generate)
    return compileInferencePlan(o, error);
  mlir::MLIRContext ctx;
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  FirstError first;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    first.capture(d);
    if (d.getSeverity() == mlir::DiagnosticSeverity::Remark && !o.quiet)
      std::fprintf(stderr, "note: %s\n", d.str().c_str());
    return mlir::success();
  });
  if (o.output.empty() && o.tuning_plan.empty()) {
    error = "nothing to write: give -o PLAN and/or --tuning-plan FILE";
    return 1;
  }

  if (o.batch < 1 || o.seq < 2) {
    error = "--batch must be >= 1 and --seq >= 2";
    return 1;
  }
  if (o.batch > kMaxBatch || o.seq > kMaxSeq || o.batch * o.seq > kMaxTokensPerStep) {
    error = "--batch " + std::to_string(o.batch) + " x --seq " + std::to_string(o.seq) +
            " is too large: at most " + std::to_string(kMaxBatch) + " sequences of " + std::to_string(kMaxSeq) +
            " tokens and " + std::to_string(kMaxTokensPerStep) + " tokens per step (use --grad-accum in train for larger batches)";
    return 1;
  }
  if (!std::isfinite(o.lora_alpha) || o.lora_alpha == 0) {
    char alpha[32];
    std::snprintf(alpha, sizeof(alpha), "%g", o.lora_alpha);
    error = std::string("--lora-alpha ") + alpha +
            (o.lora_alpha == 0 ? ": the adapter's scale alpha/r would be 0 and the loss could never move (PEFT's default is 8)"
                               : ": must be a finite number");
    return 1;
  }
  if (o.loss_chunk_tokens < 0) {
    error = "--loss-chunk-tokens must be >= 0 (0: chosen for a 64 MiB logits budget)";
    return 1;
  }
  if (o.lora_rank < 1) {
    error = "--lora-rank must be >= 1";
    return 1;
  }
  if (!(o.lora_dropout >= 0.0 && o.lora_dropout < 1.0)) {
    error = "--lora-dropout must be in [0, 1)";
    return 1;
  }

  // The profile decides the default precision and whether a half precision
  // can run on its devices.
  autotune::Precision precision;
  try {
    autotune::DeviceProfile profile = autotune::loadProfileOrDefault(o.profile);
    precision = o.precision.empty() ? profile.default_precision
                                    : autotune::parsePrecision(o.precision, "--precision");
    if (std::string why = profile.unsupportedPrecision(precision); !why.empty())
      throw autotune::ProfileError("--precision " + std::string(autotune::precisionName(precision)) +
                                   ": " + why);
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }

  // A GGUF base: its tensors by name, each linear layer in the file's type.
  GgufBinding gguf;
  if (!o.gguf_weights.empty()) {
    if (!weights::isGgufFile(o.gguf_weights)) {
      error = "--weights " + o.gguf_weights + ": not a GGUF file (compile reads a llama.cpp GGUF base; ONNX weights "
              "are read by train and eval)";
      return 1;
    }
    if (!o.base_dtype.empty() || !o.base_dtype_overrides.empty()) {
      error = "--base-dtype and --weights " + o.gguf_weights + ": the GGUF's tensor types decide each layer's storage";
      return 1;
    }
    if (bindGgufBase(o.model, o.gguf_weights, o.seq, autotune::precisionName(precision), gguf, error) != 0)
      return 1;
  }

  mlir::OwningOpRef<mlir::ModuleOp> module =
      importOnnx(ctx, o.model, ImportOptions{o.batch, o.seq}, error);
  if (!module) {
    if (error.empty())
      error = o.model + ": import failed: " + first.message;
    return 1;
  }

  // Training graph (tessera-training-pipeline).
  mlir::PassManager training(&ctx);
  TrainingPipelineOptions pipeline;
  pipeline.targets = o.lora_targets;
  pipeline.rank = o.lora_rank;
  pipeline.alpha = o.lora_alpha;
  pipeline.rslora = o.rslora;
  pipeline.dropout = o.lora_dropout;
  pipeline.layers = o.lora_layers;
  pipeline.chunkTokens = o.loss_chunk_tokens;
  pipeline.recompute = o.recompute;
  pipeline.precision = autotune::precisionName(precision);
  pipeline.baseDtype = o.base_dtype;
  pipeline.baseDtypeOverrides = o.gguf_weights.empty() ? o.base_dtype_overrides : gguf.overrides;
  buildTrainingPipeline(training, pipeline);
  if (mlir::failed(training.run(*module))) {
    error = "building the training graph failed: " + first.message;
    return 1;
  }
  if (!o.emit_mlir.empty() && !writeText(o.emit_mlir, *module, error))
    return 1;

  // Kernel configs: the profile's exact entries, else its rules.
  mlir::PassManager configs(&ctx);
  mlir::tessera::TesseraSelectKernelConfigsOptions configOptions;
  configOptions.profile = o.profile;
  configs.addPass(mlir::tessera::createTesseraSelectKernelConfigs(configOptions));
  if (mlir::failed(configs.run(*module))) {
    error = "selecting kernel configs failed: " + first.message;
    return 1;
  }
  if (!o.tuning_plan.empty()) {
    mlir::PassManager tuning(&ctx);
    mlir::tessera::TesseraWriteTuningPlanOptions tuneOptions;
    tuneOptions.output = o.tuning_plan;
    tuneOptions.profile = o.profile;
    tuneOptions.candidates = unsigned(o.tune_candidates);
    tuneOptions.model = o.model;
    tuning.addPass(mlir::tessera::createTesseraWriteTuningPlan(tuneOptions));
    if (mlir::failed(tuning.run(*module))) {
      error = first.message;
      return 1;
    }
    if (!o.quiet) {
      autotune::TuningPlan t = autotune::readTuningPlanFile(o.tuning_plan);
      size_t candidates = 0, bytes = 0;
      for (const autotune::TuneProblem &p : t.problems)
        candidates += p.candidates.size();
      for (const auto &b : t.blobs)
        bytes += b.size();
      std::printf("wrote %s: %zu kernel problems, %zu candidates, %.1f MiB\n", o.tuning_plan.c_str(),
                  t.problems.size(), candidates, bytes / 1048576.0);
    }
    if (o.output.empty())
      return 0;
  }

  // Kernels: buffers, dispatches, SPIR-V.
  mlir::PassManager lowering(&ctx);
  lowering.addPass(mlir::tessera::createTesseraLowerToKernels());
  if (o.reuse_buffers)
    lowering.addPass(mlir::tessera::createTesseraReuseBuffers());
  lowering.addPass(mlir::tessera::createTesseraKernelsToSPIRV());
  if (mlir::failed(lowering.run(*module))) {
    error = "lowering to kernels failed: " + first.message;
    return 1;
  }

  PlanOptions planOptions;
  planOptions.model_file = o.model;
  planOptions.batch = o.batch;
  planOptions.seq = o.seq;
  planOptions.lora_rank = o.lora_rank;
  planOptions.lora_alpha = o.lora_alpha;
  planOptions.rslora = o.rslora;
  planOptions.lora_targets = splitList(o.lora_targets);
  planOptions.seed = o.seed;
  mlir::FailureOr<plan::Plan> p = buildPlan(*module, planOptions);
  if (mlir::failed(p)) {
    error = "plan emission failed: " + first.message;
    return 1;
  }
  if (!o.gguf_weights.empty()) {
    size_t n = 0;
    for (plan::Buffer &b : p->buffers) {
      if (b.kind != plan::BufferKind::Weight || b.alias_of >= 0) continue;
      auto it = gguf.sources.find(b.name);
      if (it == gguf.sources.end()) {
        error = o.gguf_weights + ": no tensor holds the weight '" + b.name + "' of " + o.model;
        return 1;
      }
      b.gguf = it->second;
      ++n;
    }
    if (!o.quiet)
      std::printf("frozen weights from %s (%s): %zu tensors, %zu linear layers kept as blocks\n", o.gguf_weights.c_str(),
                  gguf.arch.c_str(), n, gguf.quantized);
  }
  if (!o.emit_spirv_dir.empty() && !writeKernelsSpirv(*p, o.emit_spirv_dir, error))
    return 1;
  try {
    plan::writePlanFile(*p, o.output);
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  if (!o.quiet)
    printSummary(*p, o.output);
  return 0;
}

} // namespace tessera
