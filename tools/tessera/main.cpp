// tessera: the full command line (compiler + runtime commands).
// tessera-rt carries the runtime commands alone, without MLIR.
#include "compiler/Pipeline.h"
#include "compiler/raise/Inspect.h"
#include "runtime/cli/Commands.h"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace {

void addCompileCommand(CLI::App &app, tessera::CompileOptions &o) {
  CLI::App *cmd = app.add_subcommand("compile", "Compile an ONNX model into a LoRA training plan");
  cmd->add_option("model", o.model, "ONNX model file")->required();
  cmd->add_option("-o,--output", o.output, "plan file to write")->required();
  cmd->add_option("--batch", o.batch, "sequences per step")->capture_default_str();
  cmd->add_option("--seq", o.seq, "tokens per sequence")->capture_default_str();
  cmd->add_option("--lora-rank", o.lora_rank, "LoRA rank r")->capture_default_str();
  cmd->add_option("--lora-alpha", o.lora_alpha, "LoRA alpha")->capture_default_str();
  cmd->add_option("--lora-targets", o.lora_targets,
                  "linear layers to adapt: comma-separated names (q_proj,v_proj) or all-linear")
      ->capture_default_str();
  cmd->add_flag("--rslora", o.rslora, "scale by alpha/sqrt(r) instead of alpha/r");
  cmd->add_option("--lora-dropout", o.lora_dropout,
                  "dropout on each adapter's input during training (PEFT's lora_dropout)")
      ->capture_default_str();
  cmd->add_option("--lora-layers", o.lora_layers,
                  "decoder layers to adapt, e.g. 0,2,5-7 (PEFT's layers_to_transform); default all");
  cmd->add_option("--seed", o.seed, "seed of the LoRA A initialisation")->capture_default_str();
  cmd->add_option("--profile", o.profile, "device profile JSON (default: built-in)");
  cmd->add_option("--precision", o.precision,
                  "storage precision of weights and activations: fp32, f16 or bf16 (default: the "
                  "profile's; the built-in profile's is fp32)");
  cmd->add_option("--emit-spirv", o.emit_spirv_dir, "also write every kernel as DIR/<kernel>.spv");
  cmd->add_option("--emit-mlir", o.emit_mlir, "also write the training graph (MLIR) to FILE");
  cmd->add_option("--loss-chunk-tokens", o.loss_chunk_tokens,
                  "token rows per cross-entropy chunk (0: as many as fit 64 MiB of logits)")
      ->capture_default_str();
  cmd->add_flag("--recompute", o.recompute,
                "recompute each decoder layer's forward during the backward (less memory, more time)");
  cmd->add_flag("!--no-buffer-reuse", o.reuse_buffers,
                "give every activation its own buffer (debugging the memory plan)");
  cmd->callback([&o] {
    std::string error;
    if (tessera::compileModel(o, error) != 0)
      throw std::runtime_error(error);
  });
}

void addInspectCommand(CLI::App &app, tessera::InspectOptions &o) {
  CLI::App *cmd = app.add_subcommand(
      "inspect", "Print the decoder architecture, linear layers (LoRA targets) and generic ops "
                 "recognised in an ONNX model");
  cmd->add_option("model", o.model, "ONNX model file")->required();
  cmd->add_option("--batch", o.batch, "batch size to specialise the graph to")->capture_default_str();
  cmd->add_option("--seq", o.seq, "sequence length to specialise the graph to")->capture_default_str();
  cmd->callback([&o] {
    std::string report, error;
    if (tessera::inspectModel(o, report, error) != 0)
      throw std::runtime_error(error);
    std::fputs(report.c_str(), stdout);
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
  tessera::addRuntimeCommands(app);
  return tessera::runApp(app, argc, argv);
}
