// TrainingPipeline.h - the training graph's passes in their order, as one
// registered pipeline: tessera-training-pipeline (raise, inject-lora,
// [fuse-attention], decompose-fused, append-loss, chunk-loss, split-large-tensors, autodiff, [recompute],
// schedule-loss-chunks, add-optimizer, assign-precision, assign-quant, [recompute-elementwise]). `tessera compile`
// builds it with its options; tessera-opt --tessera-training-pipeline="..."
// runs the same list in lit tests.
#pragma once

#include "mlir/Pass/PassOptions.h"

#include <string>

namespace mlir {
class OpPassManager;
}

namespace tessera {

struct TrainingPipelineOptions : mlir::PassPipelineOptions<TrainingPipelineOptions> {
  Option<std::string> targets{*this, "targets", llvm::cl::desc("LoRA targets (see tessera-inject-lora)"),
                              llvm::cl::init("all-linear")};
  Option<int64_t> rank{*this, "rank", llvm::cl::desc("LoRA rank r"), llvm::cl::init(8)};
  Option<double> alpha{*this, "alpha", llvm::cl::desc("LoRA alpha"), llvm::cl::init(16.0)};
  Option<bool> rslora{*this, "rslora", llvm::cl::desc("scale alpha/sqrt(r)"), llvm::cl::init(false)};
  Option<double> dropout{*this, "dropout", llvm::cl::desc("LoRA dropout"), llvm::cl::init(0.0)};
  Option<std::string> layers{*this, "layers", llvm::cl::desc("decoder layers to adapt (empty: all)"),
                             llvm::cl::init("")};
  Option<int64_t> chunkTokens{*this, "chunk-tokens",
                              llvm::cl::desc("token rows per loss chunk (0: chosen for the logits budget)"),
                              llvm::cl::init(0)};
  Option<bool> recompute{*this, "recompute", llvm::cl::desc("recompute each layer's forward in the backward"),
                         llvm::cl::init(false)};
  Option<bool> fusedAttention{*this, "fused-attention",
                              llvm::cl::desc("keep attention fused through autodiff (flash_attention)"),
                              llvm::cl::init(true)};
  Option<bool> recomputeElementwise{
      *this, "recompute-elementwise",
      llvm::cl::desc("recompute cheap forward values in the backward instead of keeping them"), llvm::cl::init(true)};
  Option<std::string> precision{*this, "precision", llvm::cl::desc("storage precision: fp32, f16 or bf16"),
                                llvm::cl::init("fp32")};
  Option<std::string> loraProducts{*this, "lora-products",
                                   llvm::cl::desc("the LoRA factors inside their products: f32 or half"),
                                   llvm::cl::init("f32")};
  Option<int64_t> maxBufferBytes{*this, "max-buffer-bytes",
                                 llvm::cl::desc("the target's largest buffer (profile device.max_buffer_bytes): "
                                                "frozen weights over it become row tiles, loss chunks stay under it"),
                                 llvm::cl::init(int64_t(1) << 27)};
  Option<int64_t> chunkBudget{*this, "chunk-budget", llvm::cl::desc("bytes of logits per loss chunk"),
                              llvm::cl::init(int64_t(64) << 20)};
  Option<int64_t> minChunkTokens{*this, "min-chunk-tokens",
                                 llvm::cl::desc("loss chunks of at least this many tokens where a buffer holds them"),
                                 llvm::cl::init(0)};
  Option<std::string> baseDtype{*this, "base-dtype",
                                llvm::cl::desc("frozen linear weights block-quantised: q8_0, q4_0, tq2_0 (empty: none)"),
                                llvm::cl::init("")};
  Option<std::string> baseDtypeOverrides{*this, "base-dtype-overrides",
                                         llvm::cl::desc("per-layer types, LAYER=TYPE comma-separated"),
                                         llvm::cl::init("")};
};

void buildTrainingPipeline(mlir::OpPassManager &pm, const TrainingPipelineOptions &options);
// Registers tessera-training-pipeline (tessera-opt).
void registerTrainingPipeline();

} // namespace tessera
