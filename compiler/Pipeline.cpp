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

#include <algorithm>
#include <cctype>
#include <cstdlib>
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
    if (b.kind == plan::BufferKind::Weight && b.alias_of < 0 && !b.host) {
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
  if (m.host_weights) {
    size_t host = 0, copies = 0;
    for (const plan::Buffer &b : p.buffers)
      host += b.host;
    for (const plan::Program &prog : p.programs)
      for (const plan::Dispatch &d : prog.dispatches)
        copies += !d.bindings.empty() && p.buffers[d.bindings[0]].host;
    std::printf("  streamed weights        %10.2f MiB  (in host memory, not counted above: %zu tensors, %zu copies "
                "into activations per run of the programs)\n", mib(m.host_weights), host, copies);
  }
  std::printf("  activations             %10.2f MiB  (largest live set %.2f MiB, %.2f MiB without reuse)\n",
              mib(m.activations), mib(m.activations_live_peak), mib(m.activations_unshared));
  std::printf("  adapter + AdamW + grads %10.2f MiB  (LoRA %.2f, AdamW state %.2f, gradients %.2f)\n",
              mib(m.adapters + m.optimizer_state + m.gradients), mib(m.adapters), mib(m.optimizer_state),
              mib(m.gradients));
  std::printf("  workspace               %10.2f MiB  (inputs, outputs, hparams, constants)\n", mib(m.workspace));
  std::printf("  largest buffer          %10.2f MiB  (%s)\n", mib(m.largest_buffer), m.largest_buffer_name.c_str());
}

std::string mibText(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.1f MiB", b / 1048576.0);
  return s;
}

// The first buffer with its own storage over the target's buffer limit, as
// the refusal that names it, its size, the limit and what to change; "" when
// every buffer fits.
std::string overLimit(const plan::Plan &p, uint64_t limit, const std::string &profile) {
  for (const plan::Buffer &b : p.buffers) {
    if (b.alias_of >= 0 || b.bytes <= limit)
      continue;
    std::string change;
    switch (b.kind) {
    case plan::BufferKind::Lora:
    case plan::BufferKind::OptimizerState:
    case plan::BufferKind::Gradient: change = "a smaller --lora-rank, or --lora-targets without this module"; break;
    case plan::BufferKind::Weight: change = "a profile with a larger device.max_buffer_bytes"; break;
    default: change = "a smaller --batch or --seq (or --loss-chunk-tokens for the logits)"; break;
    }
    // A shared activation slot (tessera-reuse-buffers): name its largest value.
    std::string what = "buffer '" + b.name + "'";
    uint64_t largest = 0;
    size_t index = &b - p.buffers.data();
    for (const plan::Buffer &m : p.buffers)
      if (m.alias_of == int64_t(index) && m.bytes > largest)
        largest = m.bytes, what = "activation '" + m.name + "' (shared slot '" + b.name + "')";
    return what + " is " + mibText(b.bytes) + ", larger than the target's buffer limit (" + mibText(limit) +
           ", device.max_buffer_bytes of profile '" + (profile.empty() ? "default" : profile) +
           "') and cannot be split: compile with " + change;
  }
  return "";
}

// The logits budget of a loss chunk unless a memory budget asks for less.
constexpr int64_t kLossChunkBudget = int64_t(64) << 20;
// Whatever the budget, a loss chunk holds at least this many tokens where a
// buffer holds them: a 4 MiB chunk of a 151,936-word vocabulary is 13 tokens,
// and each chunk's lm_head products read the whole table (the H200 trained a
// 2 GiB budget's plan of such chunks at 5,468 tokens/s, docs/benchmarks.md).
constexpr int64_t kMinLossChunkTokens = 64;

// What --memory-budget may change, cheapest first.
struct MemoryChoice {
  int64_t batch;        // sequences per micro-batch (the step's batch / grad_accum)
  int64_t chunk_budget; // bytes of logits per loss chunk
  bool recompute;
  bool stream = false; // frozen weights in host memory, copied in around their uses (tessera-stream-weights)
  bool fused_attention = true; // no [B, H, T, S] probabilities (tessera-fuse-attention)
  unsigned stream_percent = 100; // with stream: only part of the weights, up to this share of their bytes
  bool operator==(const MemoryChoice &o) const {
    return batch == o.batch && chunk_budget == o.chunk_budget && recompute == o.recompute && stream == o.stream &&
           stream_percent == o.stream_percent && fused_attention == o.fused_attention;
  }
};

std::vector<MemoryChoice> memoryChoices(const MemoryChoice &asked, bool userChunks, bool copyQueue) {
  std::vector<MemoryChoice> out{asked};
  auto add = [&](MemoryChoice c) {
    if (std::find(out.begin(), out.end(), c) == out.end())
      out.push_back(c);
  };
  MemoryChoice c = asked;
  if (!userChunks) // --loss-chunk-tokens fixes the chunks
    for (int64_t b : {int64_t(16) << 20, int64_t(4) << 20})
      c.chunk_budget = b, add(c);
  c.recompute = true;
  add(c);
  for (int64_t m = asked.batch - 1; m >= 1; --m) // micro-batches that divide the batch, largest first
    if (asked.batch % m == 0)
      c.batch = m, add(c);
  // The same with frozen weights streamed from host memory, a quarter of
  // their bytes first. Without a transfer-only queue last, as every streamed
  // weight then costs its copy's bus time twice a step (on the H200 on one
  // queue all of a 0.6B model's weights add 30 % to the step); where the
  // profile says the device has one (device.copy_queue), the copies run
  // beside the compute (10 % for all of them, 4 % for three quarters beside
  // recomputation) and a share of streamed weights is tried right after each
  // choice, before the next: smaller loss chunks, recomputation and above all
  // smaller micro-batches cost more (a 2 GiB budget's micro-batches of 1
  // trained at 4,454 tokens/s, recomputation with 75 % streamed at 15,963).
  auto streamed = [&](MemoryChoice s, unsigned percent) {
    s.stream = true;
    s.stream_percent = percent;
    return s;
  };
  std::vector<MemoryChoice> base = out;
  out.clear();
  for (const MemoryChoice &b : base)
    if (copyQueue) {
      add(b);
      if (!b.stream) // --stream-weights: all of them, as asked
        for (unsigned percent : {25u, 50u, 75u, 100u})
          add(streamed(b, percent));
    } else {
      add(b);
    }
  if (!copyQueue)
    for (const MemoryChoice &b : base)
      if (!b.stream)
        for (unsigned percent : {25u, 50u, 75u, 100u})
          add(streamed(b, percent));
  // Where the profile decomposes attention (faster there), fused attention
  // last: it drops the probabilities but the SIMT kernels cost speed.
  if (!asked.fused_attention)
    for (size_t i = 0, n = out.size(); i < n; ++i) {
      MemoryChoice f = out[i];
      f.fused_attention = true;
      add(f);
    }
  return out;
}

std::string describeChoice(const MemoryChoice &c, const MemoryChoice &asked) {
  std::vector<std::string> parts;
  if (c.chunk_budget != asked.chunk_budget)
    parts.push_back("loss chunks of at most " + mibText(uint64_t(c.chunk_budget)) + " of logits (or of " +
                    std::to_string(kMinLossChunkTokens) + " tokens, whichever is more)");
  if (c.recompute && !asked.recompute)
    parts.push_back("recompute");
  if (c.batch != asked.batch)
    parts.push_back("micro-batches of " + std::to_string(c.batch) + " x " + std::to_string(asked.batch / c.batch) +
                    " per step (gradient accumulation)");
  if (c.stream && !asked.stream)
    parts.push_back(c.stream_percent < 100 ? "part of the frozen weights (up to " + std::to_string(c.stream_percent) +
                                                 " % of their bytes) streamed from host memory"
                                           : std::string("frozen weights streamed from host memory"));
  if (c.fused_attention && !asked.fused_attention)
    parts.push_back("fused attention");
  if (parts.empty())
    return "as compiled (it fits)";
  std::string s;
  for (const std::string &p : parts)
    s += (s.empty() ? "" : ", ") + p;
  return s;
}

// The default budget: the device-local heap less a margin for the driver,
// the display and the runtime's own allocations.
uint64_t defaultBudget(uint64_t heap) { return heap - heap / 10; }

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

bool parseSize(const std::string &text, uint64_t &bytes, std::string &error) {
  auto bad = [&](const std::string &why) {
    error = "'" + text + "': " + why + "; give bytes or a number with B, KB, MB, GB, TB (powers of 1000) or "
            "KiB, MiB, GiB, TiB (powers of 1024), e.g. 512MiB, 1.5GiB, 1GB";
    return false;
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.'))
    ++i;
  std::string number = text.substr(0, i), unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ')
    unit.erase(unit.begin());
  if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 || number == ".")
    return bad("not a size");
  std::string u;
  for (char ch : unit)
    u += char(std::tolower((unsigned char)ch));
  static const std::pair<const char *, double> units[] = {
      {"", 1},       {"b", 1},        {"kb", 1e3},          {"mb", 1e6},          {"gb", 1e9},
      {"tb", 1e12},  {"kib", 1024.0}, {"mib", 1048576.0},   {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  double scale = 0;
  for (const auto &[name, factor] : units)
    if (u == name)
      scale = factor;
  if (scale == 0)
    return bad("unknown unit '" + unit + "'");
  double value = std::strtod(number.c_str(), nullptr) * scale;
  if (!(value >= 1) || value > 1.8e19)
    return bad("must be at least 1 byte");
  bytes = uint64_t(value);
  return true;
}

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
  bool trial = false, notesPrinted = false; // --memory-budget compiles several times: notes once
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    first.capture(d);
    if (d.getSeverity() == mlir::DiagnosticSeverity::Remark && !o.quiet && !trial)
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
  int64_t maxBufferBytes = 0;  // the largest buffer the target binds (maxStorageBufferRange)
  int64_t memoryHeapBytes = 0; // its device-local heap (0: unknown)
  bool copyQueue = false;      // a transfer-only queue: streamed weights' copies overlap the compute
  bool profileFusedAttention = true;
  std::string loraProducts;
  try {
    autotune::DeviceProfile profile = autotune::loadProfileOrDefault(o.profile);
    maxBufferBytes = profile.max_buffer_bytes;
    memoryHeapBytes = profile.memory_heap_bytes;
    copyQueue = profile.copy_queue;
    profileFusedAttention = profile.fused_attention;
    loraProducts = o.lora_products.empty() ? profile.lora_products : o.lora_products;
    if (loraProducts != "f32" && loraProducts != "half")
      throw autotune::ProfileError("--lora-products: unknown value '" + loraProducts + "' (f32 or half)");
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

  uint64_t budget = 0; // --memory-budget, or the profile's device-local heap less a margin
  if (!o.memory_budget.empty()) {
    if (!parseSize(o.memory_budget, budget, error)) {
      error = "--memory-budget " + error;
      return 1;
    }
  } else if (memoryHeapBytes > 0) {
    budget = defaultBudget(uint64_t(memoryHeapBytes));
  }

  // One compilation of the training plan with these memory choices. Only the
  // final one writes --emit-mlir, --tuning-plan and --emit-spirv; returns 0,
  // 1 (error set), 2 (only a tuning plan was asked for: written) or 3 (a
  // buffer over the target's limit: error set).
  auto build = [&](const MemoryChoice &c, bool final, plan::Plan &out) -> int {
    first.message.clear();
    trial = notesPrinted; // notes (about the model) once, from the first compilation
    notesPrinted = true;
    mlir::OwningOpRef<mlir::ModuleOp> module =
        importOnnx(ctx, o.model, ImportOptions{c.batch, o.seq}, error);
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
    pipeline.recompute = c.recompute;
    pipeline.recomputeElementwise = o.recompute_elementwise;
    pipeline.fusedAttention = c.fused_attention;
    pipeline.precision = autotune::precisionName(precision);
    pipeline.loraProducts = loraProducts;
    pipeline.maxBufferBytes = maxBufferBytes; // weights over it split, loss chunks under it
    pipeline.chunkBudget = c.chunk_budget;
    pipeline.minChunkTokens = kMinLossChunkTokens;
    pipeline.baseDtype = o.base_dtype;
    pipeline.baseDtypeOverrides = o.gguf_weights.empty() ? o.base_dtype_overrides : gguf.overrides;
    buildTrainingPipeline(training, pipeline);
    if (mlir::failed(training.run(*module))) {
      error = "building the training graph failed: " + first.message;
      return 1;
    }
    if (final && !o.emit_mlir.empty() && !writeText(o.emit_mlir, *module, error))
      return 1;

    // Kernel configs: the profile's exact entries, else its rules (of the
    // fused elementwise kernels too).
    mlir::PassManager configs(&ctx);
    // BitLinear forward products in integers, before the epilogues take their scales.
    configs.addPass(mlir::tessera::createTesseraIntegerBitLinear());
    // Epilogues first: the scales and adds a product feeds are its own.
    if (o.fuse_epilogue)
      configs.addPass(mlir::tessera::createTesseraFuseMatmulEpilogue());
    if (o.fuse)
      configs.addPass(mlir::tessera::createTesseraFuseElementwise());
    // The q/k layout transposes around RoPE: into the rope kernel's addressing.
    configs.addPass(mlir::tessera::createTesseraFoldRopeTransposes());
    mlir::tessera::TesseraSelectKernelConfigsOptions configOptions;
    configOptions.profile = o.profile;
    configs.addPass(mlir::tessera::createTesseraSelectKernelConfigs(configOptions));
    if (mlir::failed(configs.run(*module))) {
      error = "selecting kernel configs failed: " + first.message;
      return 1;
    }
    if (final && !o.tuning_plan.empty()) {
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
        return 2;
    }

    // Kernels: buffers, dispatches, SPIR-V.
    mlir::PassManager lowering(&ctx);
    lowering.addPass(mlir::tessera::createTesseraLowerToKernels());
    if (c.stream) {
      mlir::tessera::TesseraStreamWeightsOptions so;
      so.prefetch = o.stream_prefetch;
      so.percent = c.stream_percent;
      lowering.addPass(mlir::tessera::createTesseraStreamWeights(so));
    }
    if (o.reuse_buffers)
      lowering.addPass(mlir::tessera::createTesseraReuseBuffers());
    lowering.addPass(mlir::tessera::createTesseraKernelsToSPIRV());
    if (mlir::failed(lowering.run(*module))) {
      error = "lowering to kernels failed: " + first.message;
      return 1;
    }

    PlanOptions planOptions;
    planOptions.model_file = o.model;
    planOptions.batch = c.batch;
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
        if (b.row_offset >= 0) {
          error = o.gguf_weights + ": the weight '" + b.name + "' is split over the target's buffer limit, and tiles of "
                  "GGUF tensors are not supported yet: compile with ONNX weights or a profile with larger buffers";
          return 1;
        }
        auto it = gguf.sources.find(b.name);
        if (it == gguf.sources.end()) {
          error = o.gguf_weights + ": no tensor holds the weight '" + b.name + "' of " + o.model;
          return 1;
        }
        b.gguf = it->second;
        ++n;
      }
      if (!trial && !o.quiet) // once, from the first compilation
        std::printf("frozen weights from %s (%s): %zu tensors, %zu linear layers kept as blocks\n", o.gguf_weights.c_str(),
                    gguf.arch.c_str(), n, gguf.quantized);
    }
    p->target.max_buffer_bytes = uint64_t(maxBufferBytes);
    p->target.memory_budget = budget;
    p->target.grad_accum = o.batch / c.batch;
    // Weights are split above; what is still over the target's limit cannot be.
    if (std::string why = overLimit(*p, uint64_t(maxBufferBytes), o.profile); !why.empty()) {
      error = why;
      return 3; // a smaller micro-batch may fit
    }
    if (final && !o.emit_spirv_dir.empty() && !writeKernelsSpirv(*p, o.emit_spirv_dir, error))
      return 1;
    out = std::move(*p);
    return 0;
  };

  MemoryChoice asked{o.batch, kLossChunkBudget, o.recompute, o.stream_weights,
                     o.fused_attention >= 0 ? o.fused_attention == 1 : profileFusedAttention};
  plan::Plan p;
  if (!budget) {
    if (int rc = build(asked, true, p))
      return rc == 2 ? 0 : 1;
  } else {
    // Cheapest first (memoryChoices): smaller loss chunks, recomputation, then
    // ever smaller micro-batches with gradient accumulation, and streamed weights.
    std::vector<MemoryChoice> choices = memoryChoices(asked, o.loss_chunk_tokens > 0, copyQueue);
    std::vector<uint64_t> peaks(choices.size(), UINT64_MAX);
    size_t chosen = choices.size();
    std::string firstOverLimit;
    for (size_t i = 0; i < choices.size() && chosen == choices.size(); ++i) {
      plan::Plan attempt;
      int rc = build(choices[i], false, attempt);
      if (rc == 3) { // this choice has a buffer over the limit: try the next
        if (firstOverLimit.empty())
          firstOverLimit = error;
        error.clear();
        continue;
      }
      if (rc)
        return 1;
      peaks[i] = attempt.memory.total;
      if (attempt.memory.total <= budget) {
        chosen = i;
        p = std::move(attempt);
      }
    }
    if (chosen == choices.size()) {
      size_t smallest = std::min_element(peaks.begin(), peaks.end()) - peaks.begin();
      uint64_t least = peaks[smallest];
      if (least == UINT64_MAX) {
        error = firstOverLimit;
        return 1;
      }
      error = "--memory-budget " + mibText(budget) + ": no plan fits; the smallest (" +
              describeChoice(choices[smallest], asked) + ") needs " + mibText(least) +
              " of device memory: give --memory-budget " + std::to_string((least + 1048575) / 1048576) +
              "MiB or more";
      return 1;
    }
    // The attempt is the plan, unless the final build has more to write.
    bool extras = !o.emit_mlir.empty() || !o.tuning_plan.empty() || !o.emit_spirv_dir.empty();
    if (extras)
      if (int rc = build(choices[chosen], true, p))
        return rc == 2 ? 0 : 1;
    p.target.choices = describeChoice(choices[chosen], asked);
    if (!o.quiet)
      std::printf("memory budget %s: %s -> peak %s\n", mibText(budget).c_str(), p.target.choices.c_str(),
                  mibText(p.memory.total).c_str());
  }
  try {
    plan::writePlanFile(p, o.output);
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  if (!o.quiet)
    printSummary(p, o.output);
  return 0;
}

} // namespace tessera
