// Pipeline.h - `tessera compile`: ONNX file -> training plan file.
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

// Shapes a plan may be specialised for: every kernel indexes with 32-bit
// integers and no device binds a buffer beyond 4 GiB, so larger requests can
// only fail, after minutes of compiling and gigabytes of memory.
constexpr int64_t kMaxBatch = 65536;
constexpr int64_t kMaxSeq = 1 << 20;
constexpr int64_t kMaxTokensPerStep = 1 << 24; // batch * seq

struct CompileOptions {
  std::string model;           // ONNX file
  std::string output;          // plan file ("" with tuning_plan: write only that)
  std::string tuning_plan;     // also write the tuning plan (.ttune) here (docs/autotune.md)
  size_t tune_candidates = 32; // candidates per matmul problem in the tuning plan
  int64_t batch = 4, seq = 64; // training shapes the plan is specialised for
  int64_t lora_rank = 8;
  double lora_alpha = 16.0;
  std::string lora_targets = "all-linear";
  bool rslora = false;
  double lora_dropout = 0.0;   // PEFT's lora_dropout, applied in train_step only
  std::string lora_layers;     // decoder layers to adapt (0,2,5-7); empty: all
  uint64_t seed = 0;           // LoRA A initialisation seed
  std::string profile;         // device profile JSON; empty: built-in default
  std::string precision;       // fp32 | f16 | bf16; empty: the profile's default
  // The LoRA factors inside their products (tessera-assign-precision):
  // "f32" | "half" (rounded to the half type, as autocast does: tensor
  // cores); empty: the profile's `lora_products`.
  std::string lora_products;
  // Frozen linear weights block-quantised (docs/quantization.md): q8_0 |
  // q4_0 | tq2_0; empty: stored in `precision`. Overrides per layer:
  // "lm_head=q8_0,down_proj=fp32".
  std::string base_dtype;
  std::string base_dtype_overrides;
  // A llama.cpp GGUF base whose tensors are the frozen weights (its types
  // decide each layer's storage; train with --weights BASE.gguf).
  std::string gguf_weights;
  std::string emit_spirv_dir;  // write every kernel as <dir>/<kernel>.spv
  std::string emit_mlir;       // write the training graph (tensor level) here
  bool quiet = false;
  // Memory (docs/memory.md).
  int64_t loss_chunk_tokens = 0; // token rows per loss chunk; 0: fit a 64 MiB logits budget
  bool recompute = false;        // recompute each decoder layer's forward in the backward
  // Attention kept fused through autodiff (tessera-fuse-attention): 1 on,
  // 0 off, -1 the profile's `fused_attention`.
  int fused_attention = -1;
  bool recompute_elementwise = true; // recompute cheap forward values in the backward (tessera-recompute-elementwise)
  bool reuse_buffers = true;     // share storage between dead activations
  bool stream_weights = false;   // frozen weights in host memory, copied in around their uses (tessera-stream-weights)
  unsigned stream_prefetch = 32; // dispatches between a streamed weight's copy and its first reader
  bool fuse = true;              // elementwise chains as one kernel each (tessera-fuse-elementwise)
  bool fuse_epilogue = true;     // scales and adds into their matmul (tessera-fuse-matmul-epilogue)
  // Device memory the plan may take ("512MiB", "1.5GiB", "1GB", bytes); empty:
  // the profile's device-local heap less 10%, or no limit when it is unknown.
  // The compiler then picks loss chunks, recompute and micro-batches.
  std::string memory_budget;
  // Generation (compiler/inference): a plan with prefill + decode programs and
  // a KV cache of `seq` positions instead of the training programs.
  bool generate = false;
};

/// Parses a size: bytes, or a number with B, KB, MB, GB, TB (powers of 1000)
/// or KiB, MiB, GiB, TiB (powers of 1024), any case. False with `error` set.
bool parseSize(const std::string &text, uint64_t &bytes, std::string &error);

/// Runs import, LoRA injection, loss, autodiff, optimizer, lowering, SPIR-V
/// conversion and plan emission. Returns 0, or 1 with `error` set to one line.
int compileModel(const CompileOptions &options, std::string &error);

} // namespace tessera
