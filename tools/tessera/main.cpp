// tessera: the full command line (compiler + runtime commands).
// tessera-rt carries the runtime commands alone, without MLIR.
#include "compiler/Pipeline.h"
#include "compiler/export/ExportGguf.h"
#include "compiler/raise/Inspect.h"
#include "autotune/Profile.h"
#include "autotune/TuneCommand.h"
#include "runtime/cli/Commands.h"
#include "runtime/cli/Numbers.h"
#include "runtime/util/File.h"
#include "runtime/vulkan/Context.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

namespace {

// The flags that shape the training graph (compile and tune).
void addModelFlags(CLI::App *cmd, tessera::CompileOptions &o) {
  cmd->add_option("model", o.model, "ONNX model file")->required();
  cmd->add_option("--batch", o.batch, "sequences per step")->capture_default_str()->check(tessera::cli::integerIn(1, tessera::kMaxBatch));
  cmd->add_option("--seq", o.seq, "tokens per sequence")->capture_default_str()->check(tessera::cli::integerIn(2, tessera::kMaxSeq));
  cmd->add_option("--lora-rank", o.lora_rank, "LoRA rank r")->capture_default_str()->check(tessera::cli::integerIn(1, 65536));
  cmd->add_option("--lora-alpha", o.lora_alpha, "LoRA alpha (scale alpha/r; not 0)")->capture_default_str()->check(tessera::cli::finiteNumber());
  cmd->add_option("--lora-targets", o.lora_targets,
                  "linear layers to adapt: comma-separated names (q_proj,v_proj) or all-linear")
      ->capture_default_str();
  cmd->add_flag("--rslora", o.rslora, "scale by alpha/sqrt(r) instead of alpha/r");
  cmd->add_option("--lora-dropout", o.lora_dropout,
                  "dropout on each adapter's input during training (PEFT's lora_dropout)")
      ->capture_default_str()->check(tessera::cli::finiteNumber());
  cmd->add_option("--lora-layers", o.lora_layers,
                  "decoder layers to adapt, e.g. 0,2,5-7 (PEFT's layers_to_transform); default all");
  cmd->add_option("--seed", o.seed, "seed of the LoRA A initialisation")->capture_default_str()->check(tessera::cli::unsignedInteger());
  cmd->add_option("--precision", o.precision,
                  "storage precision of weights and activations: fp32, f16 or bf16 (default: the "
                  "profile's; the built-in profile's is fp32)");
  cmd->add_option("--base-dtype", o.base_dtype,
                  "store the frozen linear weights block-quantised as GGUF does: q8_0, q4_0 or tq2_0 (dequantised "
                  "inside the matmul kernels; lm_head and the embedding stay in --precision; default: --precision)");
  cmd->add_option("--base-dtype-override", o.base_dtype_overrides,
                  "per-layer weight types, comma-separated LAYER=TYPE (LAYER: a structural name or its end, e.g. "
                  "lm_head=q8_0,down_proj=fp32; TYPE: q8_0, q4_0, tq2_0 or the precision)");
  cmd->add_option("--lora-products", o.lora_products,
                  "the f32 LoRA factors inside their products in f16/bf16 plans: f32 (as stored, as PEFT without "
                  "autocast) or half (rounded to the plan's half type, as PyTorch autocast does: the adapters' "
                  "products run on tensor cores; the factors, gradients and AdamW stay f32); default: the "
                  "profile's lora_products (f32 unless it says otherwise)")
      ->check(CLI::IsMember({"f32", "half"}));
  cmd->add_option("--loss-chunk-tokens", o.loss_chunk_tokens,
                  "token rows per cross-entropy chunk (0: as many as fit 64 MiB of logits)")
      ->capture_default_str()->check(tessera::cli::integerIn(0, tessera::kMaxTokensPerStep));
  cmd->add_flag("--recompute", o.recompute,
                "recompute each decoder layer's forward during the backward (less memory, more time)");
  cmd->add_flag("!--keep-elementwise", o.recompute_elementwise,
                "keep every forward value the backward reads (by default cheap elementwise ones are recomputed in "
                "the backward instead: less memory, same values)");
  cmd->add_flag("--stream-weights", o.stream_weights,
                "keep the frozen weights in host memory and copy each to the device just before the dispatches "
                "that read it (less device memory, a copy of every weight twice a step); --memory-budget chooses "
                "it by itself when nothing else fits");
  cmd->add_option("--stream-prefetch", o.stream_prefetch,
                  "with streamed weights: dispatches between a weight's copy and the first dispatch that reads it "
                  "(the copy overlaps them; 0: just before it)")
      ->capture_default_str()
      ->check(tessera::cli::integerIn(0, 100000));
  cmd->add_flag_callback("--fused-attention", [&o] { o.fused_attention = 1; },
                         "keep attention one fused kernel forward and two backward that never store the "
                         "[B, H, T, S] probabilities (the default unless the profile says fused_attention: false)");
  cmd->add_flag_callback("--no-fused-attention", [&o] { o.fused_attention = 0; },
                         "decompose attention into matmul and softmax kernels before autodiff");
  cmd->add_option("--memory-budget", o.memory_budget,
                  "device memory the plan may take, e.g. 512MiB, 1.5GiB, 1GB or bytes: the compiler picks loss "
                  "chunks, --recompute, micro-batches with gradient accumulation and --stream-weights to fit (default: the "
                  "profile's device.memory_heap_bytes less 10%, or no limit when the profile has none)");
  cmd->add_option("--tune-candidates", o.tune_candidates, "candidates per matmul problem in the tuning plan")
      ->capture_default_str();
}

void addCompileCommand(CLI::App &app, tessera::CompileOptions &o) {
  CLI::App *cmd = app.add_subcommand("compile", "Compile an ONNX model into a LoRA training plan");
  addModelFlags(cmd, o);
  cmd->add_option("-o,--output", o.output, "plan file to write");
  cmd->add_option("--tuning-plan", o.tuning_plan,
                  "also (or, without -o, only) write the candidate kernels of every kernel problem to FILE.ttune "
                  "for tessera-rt tune (docs/autotune.md)");
  cmd->add_option("--profile", o.profile,
                  "device profile: a JSON file or the name of a bundled one (default: built-in; see tessera devices)");
  cmd->add_option("--weights", o.gguf_weights,
                  "a llama.cpp GGUF base of this model whose tensors are the frozen weights (each linear layer in "
                  "the file's type: q8_0, q4_0, tq2_0 stay blocks); train and eval then take --weights BASE.gguf");
  cmd->add_option("--emit-spirv", o.emit_spirv_dir, "also write every kernel as DIR/<kernel>.spv");
  cmd->add_option("--emit-mlir", o.emit_mlir, "also write the training graph (MLIR) to FILE");
  cmd->add_flag("--generate", o.generate,
                "write a generation plan (prefill + one-token decode with a KV cache of --seq positions) for "
                "tessera generate, instead of a training plan");
  cmd->add_flag("!--no-buffer-reuse", o.reuse_buffers,
                "give every activation its own buffer (debugging the memory plan)");
  cmd->add_flag("!--no-fuse", o.fuse,
                "one kernel per elementwise op instead of one per fused chain (A/B of tessera-fuse-elementwise; "
                "the results are bit-identical)");
  cmd->add_flag("!--no-fuse-epilogue", o.fuse_epilogue,
                "keep the scales and adds a matmul feeds as kernels of their own (A/B of "
                "tessera-fuse-matmul-epilogue; the fused product rounds once, so half-precision results differ "
                "in the last bits)");
  cmd->callback([&o] {
    std::string error;
    if (tessera::compileModel(o, error) != 0)
      throw std::runtime_error(error);
  });
}

// tessera tune MODEL.onnx: compile the tuning plan, tune it on this
// machine's device, optionally compile the plan with the tuned profile.
void addTuneModelCommand(CLI::App &app) {
  struct Flags {
    tessera::CompileOptions compile;
    tessera::autotune::TuneOptions tune;
    std::string budget = "120s", timeout = "60s", families, plan, coldCache = "auto";
  };
  auto f = std::make_shared<Flags>();
  CLI::App *cmd = app.add_subcommand(
      "tune", "Tune the kernels of MODEL.onnx on this machine's device: tessera compile --tuning-plan, then "
              "tessera-rt tune, then (with -o) the plan compiled with the tuned profile");
  addModelFlags(cmd, f->compile);
  cmd->add_option("--profile", f->compile.profile,
                  "base profile whose rules are the baseline (default: the bundled profile of the device, else "
                  "rules from its properties)");
  cmd->add_option("--tuning-plan", f->compile.tuning_plan, "where the tuning plan goes (default: OUT.ttune)");
  cmd->add_option("-o,--output", f->plan, "also compile the training plan with the tuned profile");
  tessera::autotune::addTuneFlags(*cmd, f->tune, f->budget, f->timeout, f->families, f->coldCache);
  cmd->callback([f] {
    using namespace tessera::autotune;
    finishTuneFlags(f->tune, f->budget, f->timeout, f->families, f->coldCache);
    if (f->tune.out.empty())
      throw std::runtime_error("--out PROFILE.json is required");
    std::vector<tessera::vk::DeviceInfo> devices = tessera::vk::Context::listDevices();
    if (f->tune.device < 0 || size_t(f->tune.device) >= devices.size())
      throw std::runtime_error("device " + std::to_string(f->tune.device) + " does not exist (see tessera devices)");
    const tessera::vk::DeviceInfo &d = devices[size_t(f->tune.device)];
    DeviceIdentity id{d.vendorID, d.deviceID, d.driverVersion, d.name, d.driver, d.type};
    tessera::CompileOptions c = f->compile;
    if (!c.profile.empty()) {
      checkProfileForDevice(loadProfileOrDefault(c.profile), id);
    } else if (const BundledProfile *b = matchBundledProfile(id)) {
      c.profile = b->profile.name;
    } else {
      DeviceLimits l;
      l.subgroup_size = d.subgroupSize;
      l.max_workgroup_invocations = d.maxWorkgroupInvocations;
      l.shared_memory_bytes = d.maxSharedMemory;
      l.max_workgroup_count = d.maxWorkgroupCount;
      l.max_buffer_bytes = int64_t(d.maxStorageBufferRange);
      l.max_allocation_bytes = int64_t(d.maxMemoryAllocationSize);
      l.memory_heap_bytes = int64_t(d.deviceLocalHeap);
      l.copy_queue = d.copyQueue;
      l.features = {d.float16, d.int16, d.storage16, d.bfloat16, d.int8, d.integerDot};
      c.profile = f->tune.out + ".base.json";
      tessera::util::writeFileAtomic(c.profile, profileToJson(profileFromProperties(id, l)));
      std::printf("no bundled profile names %s: the baseline is the rules from its properties (%s)\n",
                  d.name.c_str(), c.profile.c_str());
    }
    if (c.tuning_plan.empty())
      c.tuning_plan = f->tune.out + ".ttune";
    c.output.clear();
    std::string error;
    if (tessera::compileModel(c, error) != 0)
      throw std::runtime_error(error);
    f->tune.ttune = c.tuning_plan;
    runTuning(f->tune);
    if (!f->plan.empty()) {
      c.tuning_plan.clear();
      c.output = f->plan;
      c.profile = f->tune.out;
      if (tessera::compileModel(c, error) != 0)
        throw std::runtime_error(error);
    }
  });
}

void addInspectCommand(CLI::App &app, tessera::InspectOptions &o) {
  CLI::App *cmd = app.add_subcommand(
      "inspect", "Print the decoder architecture, linear layers (LoRA targets) and generic ops "
                 "recognised in an ONNX model");
  cmd->add_option("model", o.model, "ONNX model file")->required();
  cmd->add_option("--batch", o.batch, "batch size to specialise the graph to")->capture_default_str()->check(tessera::cli::integerIn(1, tessera::kMaxBatch));
  cmd->add_option("--seq", o.seq, "sequence length to specialise the graph to")->capture_default_str()->check(tessera::cli::integerIn(1, tessera::kMaxSeq));
  cmd->callback([&o] {
    std::string report, error;
    if (tessera::inspectModel(o, report, error) != 0)
      throw std::runtime_error(error);
    std::fputs(report.c_str(), stdout);
  });
}

void addExportCommand(CLI::App &app, tessera::ExportOptions &o) {
  CLI::App *cmd = app.add_subcommand(
      "export", "Write the model and/or its LoRA adapter as GGUF files for llama.cpp (llama-cli -m BASE.gguf --lora ADAPTER.gguf)");
  cmd->add_option("--weights", o.weights, "ONNX model (the one the adapter was trained on)")->required();
  cmd->add_option("--tokenizer", o.tokenizer,
                  "Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json) for the base model's vocabulary; "
                  "without it a placeholder byte vocabulary (token ids only)");
  cmd->add_option("--adapter", o.adapter, "PEFT adapter folder to convert (tessera train --out)");
  cmd->add_option("--gguf-base", o.gguf_base, "write the base model here");
  cmd->add_option("--gguf-adapter", o.gguf_adapter, "write the LoRA adapter here (llama.cpp's format)");
  cmd->add_option("--type", o.type, "weight type: f32, f16, q8_0, or for --gguf-base also q4_0 or tq2_0 (rows not of whole blocks: f16)")->capture_default_str();
  cmd->add_option("--config", o.config, "the model's Hugging Face config.json (default: the one beside the model)");
  cmd->add_option("--context-length", o.context_length,
                  "context length to record (default: config.json's max_position_embeddings)");
  cmd->add_option("--seq", o.seq, "sequence length the graph is specialised to while reading it")->capture_default_str();
  cmd->add_flag("--vocab-only", o.vocab_only,
                "with --tokenizer: write --gguf-base with the metadata and tokenizer only, no weights (a vocab-only GGUF)");
  cmd->callback([&o] {
    std::string error;
    if (tessera::exportGguf(o, error) != 0)
      throw std::runtime_error(error);
  });
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"tessera: LoRA fine-tuning compiled ahead of time, run on any Vulkan GPU"};
  app.require_subcommand(1);
  tessera::CompileOptions compile;
  addCompileCommand(app, compile);
  tessera::InspectOptions inspect;
  addInspectCommand(app, inspect);
  tessera::ExportOptions exportOptions;
  addExportCommand(app, exportOptions);
  tessera::addRuntimeCommands(app);
  addTuneModelCommand(app);
  // tessera-rt's `tune` takes a tuning plan; here `tune` takes the model, and
  // the worker it starts is the same hidden command.
  tessera::autotune::addTuneWorkerCommand(app);
  return tessera::runApp(app, argc, argv);
}
