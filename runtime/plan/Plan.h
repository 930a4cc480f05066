// Plan.h - the training plan: what `tessera compile` writes and the runtime
// executes. Plain C++ (no MLIR, no Vulkan) so that both sides share one
// definition of the format. The byte layout is documented in
// docs/plan-format.md; Plan.cpp reads and writes it.
#pragma once

#include "runtime/plan/Abi.h"

#include <array>
#include <stdexcept>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::plan {

// 2: per-buffer f16/bf16 dtypes, the plan's precision and required device
// features, kernel configs.
constexpr uint32_t kFormatVersion = 2;
constexpr char kMagic[8] = {'T', 'E', 'S', 'S', 'P', 'L', 'A', 'N'};

enum class BufferKind : uint32_t {
  Input = 0,          // written by the host before each step: input_ids, labels (i32)
  Weight = 1,         // frozen weight, read from the model file by `weight` name
  Constant = 2,       // data baked into the plan (blob `init_blob`)
  Lora = 3,           // trainable adapter factor (A or B)
  OptimizerState = 4, // AdamW moments, zero-initialised
  Gradient = 5,       // gradient of a trainable weight
  Activation = 6,     // intermediate, contents undefined between programs
  Output = 7,         // read back by the host (loss)
  HParams = 8,        // per-step scalars written by the host, see HParam
};

// Element type of a buffer. bf16 is stored as its 16 bits (the upper half
// of the f32 with the same value, rounded to nearest even). Q8_0, Q4_0 and
// TQ2_0 are frozen weights in GGUF's block layouts (runtime/gguf/Quant.h):
// blocks of 32 (256) values of a row behind an f16 scale; a kernel reads them
// as 32-bit words and dequantises while it loads (docs/quantization.md).
enum class DType : uint32_t { F32 = 0, I32 = 1, F16 = 2, BF16 = 3, Q8_0 = 4, Q4_0 = 5, TQ2_0 = 6 };
constexpr bool isQuantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::TQ2_0; }
// Bytes of one element of an unblocked type, 4 (one word) for the block
// types: the one definition every layer (compiler, plan, runtime) sizes
// buffers with, through bufferBytes.
constexpr uint64_t bytesPerElement(DType t) { return t == DType::F16 || t == DType::BF16 ? 2 : 4; }
// Values per block and bytes per block of a block type (1 and the element
// size otherwise).
constexpr uint64_t blockElements(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 ? 32 : t == DType::TQ2_0 ? 256 : 1; }
constexpr uint64_t blockBytes(DType t) {
  return t == DType::Q8_0 ? 34 : t == DType::Q4_0 ? 18 : t == DType::TQ2_0 ? 66 : bytesPerElement(t);
}
// Bytes of a buffer of `elements` values: whole blocks, rounded up to a
// whole 32-bit word for the block types (kernels read them as words).
constexpr uint64_t bufferBytes(DType t, uint64_t elements) {
  return isQuantized(t) ? (elements / blockElements(t) * blockBytes(t) + 3) / 4 * 4 : elements * bytesPerElement(t);
}
const char *dtypeName(DType t); // "f32", "i32", "f16", "bf16", "q8_0", "q4_0", "tq2_0"

// A BitNet b1.58 weight part (compiler/precision/Quantized.h): derived at
// load from the whole initializer w, in f32, s = 1 / max(mean |w|, eps):
// Codes clamp(roundeven(w * s), -1, 1) (w's shape; any float or block type),
// Scale 1 / s (one f32 value). None: the initializer's values.
enum class Ternary : uint8_t { None = 0, Codes = 1, Scale = 2 };

struct Buffer {
  std::string name;           // weight initializer name, LoRA param name, or value label
  BufferKind kind = BufferKind::Activation;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; // logical shape (row-major); bytes = bufferBytes(dtype, product)
  uint64_t bytes = 0;
  // Block types (a 2-D weight [R, C]): the blocks run along axis 1 (rows of
  // C values, the GGUF layout of a [out, in] linear weight), or with
  // `transposed` along axis 0: the buffer holds the [C, R] transpose (an ONNX
  // MatMul's [in, out] weight stored as GGUF stores it).
  bool transposed = false;
  int64_t init_blob = -1;     // Constant: index into Plan::blobs holding the data
  int64_t alias_of = -1;      // >= 0: shares the storage of that buffer (reshape)
  // Weight: the buffer holds rows [row_offset, row_offset + shape[0]) of the
  // initializer `name` (a tile of a weight larger than the device's buffer
  // limit, tessera-split-large-tensors); -1: the whole initializer.
  int64_t row_offset = -1;
  // Weight: kept in host-visible system memory instead of the device-local
  // heap; the dispatches read copies the plan makes of it around its uses
  // (tessera-stream-weights, docs/memory.md).
  bool host = false;
  Ternary ternary = Ternary::None;
  double ternary_eps = 0; // > 0 with ternary
  // A plan compiled with --weights BASE.gguf: the weight's tensor in that
  // file (llama.cpp's name) and how the ONNX initializer's values follow from
  // it (runtime/weights/GgufWeights.h): rows un-permuted in `permute` groups
  // (llama's q/k), then x / mul - add, then transposed back when
  // `transpose` (the ONNX weight is [in, out]). Empty tensor: none.
  struct GgufSource {
    std::string tensor;
    int64_t permute = 0;
    bool transpose = false;
    double add = 0, mul = 1;
  } gguf;
};

// What a kernel may touch, recorded by the compiler and checked by the
// reader against the kernel's SPIR-V and every dispatch (docs/plan-format.md,
// "Trust model"): a dispatch binds buffers of at least `bytes` with this
// element type, never a frozen buffer to a binding the kernel writes, with
// at most `max_groups` workgroups per dimension.
enum class Access : uint32_t { Read = 1, Write = 2, ReadWrite = 3 };
struct BindingInterface {
  DType dtype = DType::F32; // element type the kernel reads / writes
  Access access = Access::ReadWrite;
  uint64_t bytes = 0;       // bytes from offset 0 the kernel may touch (its declared array)
};
struct KernelInterface {
  std::vector<BindingInterface> bindings;   // one per binding
  std::array<uint32_t, 3> max_groups{1, 1, 1}; // the largest workgroup counts the compiler dispatches it with
};

struct Kernel {
  std::string name;           // unique; also the SPIR-V entry point name
  uint32_t spirv_blob = 0;    // index into Plan::blobs (a SPIR-V module, 4-byte words)
  uint32_t num_bindings = 0;  // storage buffers at set 0, bindings 0..n-1
  std::array<uint32_t, 3> local_size{1, 1, 1};
  uint32_t push_constant_bytes = 0;
  std::string config;         // how it was generated, e.g. "matmul tiled 64x64x16 thread 4x4 split 1" (informational)
  KernelInterface interface;  // manifest field "interface"
};

struct Dispatch {
  uint32_t kernel = 0;                 // index into Plan::kernels
  std::vector<uint32_t> bindings;      // buffer index per binding, in binding order
  std::array<uint32_t, 3> groups{1, 1, 1};
  std::vector<uint8_t> push_constants; // size == kernel's push_constant_bytes
  // A streamed weight's copy (tessera-stream-weights): binding 0, a
  // host-resident weight, copied whole into binding 1. The kernel does it;
  // the runtime may instead record a transfer, which the compute dispatches
  // around it do not wait for (docs/memory.md).
  bool copy = false;
};

struct Program {
  std::string name; // "train_step" (forward, loss, backward, AdamW) or "eval" (forward, loss)
  std::vector<Dispatch> dispatches;
};

// One LoRA-adapted linear layer: y = x W^T + scale * (x A^T) B^T.
struct Adapter {
  std::string module;  // structural name, e.g. "layers.0.self_attn.q_proj"
  int64_t in_features = 0, out_features = 0, rank = 0;
  int64_t a = -1, b = -1;           // buffers: A [rank, in], B [out, rank]
  int64_t grad_a = -1, grad_b = -1; // gradient buffers (filled by train_step)
  int64_t m_a = -1, v_a = -1, m_b = -1, v_b = -1; // AdamW moments
};

// Device memory of the plan by role, in bytes (storage-owning buffers only;
// informational, docs/memory.md). Written by the compiler, optional on read.
struct MemorySummary {
  uint64_t total = 0;
  uint64_t weights = 0;               // frozen weights (kind weight) on the device
  uint64_t host_weights = 0;          // frozen weights kept in host memory (streamed; not in total)
  uint64_t activations = 0;           // activation storage after reuse
  uint64_t activations_live_peak = 0; // largest live set of activations (lower bound)
  uint64_t activations_unshared = 0;  // activation storage without reuse
  uint64_t adapters = 0;              // LoRA factors
  uint64_t optimizer_state = 0;       // AdamW moments
  uint64_t gradients = 0;             // LoRA gradients
  uint64_t workspace = 0;             // inputs, outputs, hparams, constants
  uint64_t largest_buffer = 0;        // the largest single buffer
  std::string largest_buffer_name;
};

// Optional device features a plan's kernels use (the runtime enables them
// and refuses a device that lacks one).
constexpr const char *kFeatureFloat16 = "float16";     // shaderFloat16
constexpr const char *kFeatureInt16 = "int16";         // shaderInt16
constexpr const char *kFeatureStorage16 = "storage16"; // storageBuffer16BitAccess
constexpr const char *kFeatureInt8 = "int8";           // shaderInt8 + storageBuffer8BitAccess
constexpr const char *kFeatureIntegerDot = "integer_dot_product"; // shaderIntegerDotProduct (OpSDot, 4x8-bit packed)
constexpr const char *kFeatureCoopMat = "cooperative_matrix"; // VK_KHR_cooperative_matrix (tensor cores)
constexpr const char *kFeatureBf16CoopMat = "bfloat16_cooperative_matrix"; // VK_KHR_shader_bfloat16 fragments
constexpr const char *kFeatureWorkgroupCoopMat = "workgroup_cooperative_matrix"; // VK_NV_cooperative_matrix2 workgroup scope

// The decoder the plan was compiled from (tessera-raise's `tessera.arch`):
// what a GGUF adapter needs to be read back (llama q/k rows are permuted per
// head). Optional in the manifest ("model"); empty arch: unknown.
struct ModelInfo {
  std::string arch;  // llama, qwen3, gemma3, decoder, ...
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
};

// The device limits the compiler planned for (manifest "target", optional;
// 0: unknown): the runtime names them when a device is smaller.
struct TargetLimits {
  uint64_t max_buffer_bytes = 0; // the profile's device.max_buffer_bytes
  uint64_t memory_budget = 0;    // --memory-budget (or its default from the profile)
  // Micro-batches per optimizer step the compiler chose to fit the budget
  // (`tessera train` applies them unless --grad-accum is given); 1: none.
  int64_t grad_accum = 1;
  // What --memory-budget chose, for people (e.g. "loss chunks of 16 MiB, recompute").
  std::string choices;
};

struct Plan {
  uint32_t version = kFormatVersion;
  std::string precision = "fp32";    // storage precision it was compiled with (fp32, f16, bf16)
  std::vector<std::string> features; // device features its kernels need (kFeature*)
  // Model and shapes the plan was specialised for.
  std::string model_file;  // file name the plan was compiled from (informational)
  int64_t batch = 0, seq = 0, vocab = 0;
  // LoRA hyper-parameters (PEFT adapter_config.json needs them).
  int64_t lora_rank = 0;
  double lora_alpha = 0;
  double lora_scale = 0;   // alpha / rank (or alpha / sqrt(rank) with rslora)
  bool rslora = false;
  double lora_dropout = 0; // PEFT's lora_dropout (the train_step program applies it)
  std::vector<std::string> lora_targets; // as given to --lora-targets
  uint64_t seed = 0;       // LoRA A initialisation seed
  // AdamW defaults, torch.optim.AdamW's (the runtime's flags override them).
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  // Well-known buffers.
  int64_t input_ids = -1, labels = -1, loss = -1, hparams = -1;

  std::vector<Buffer> buffers;
  std::vector<Kernel> kernels;
  std::vector<Program> programs;
  std::vector<Adapter> adapters;
  std::vector<std::vector<uint8_t>> blobs; // SPIR-V modules and constant data
  MemorySummary memory;                    // manifest "memory"
  ModelInfo model;                         // manifest "model" (optional)
  TargetLimits target;                     // manifest "target" (optional)

  const Program *program(const std::string &name) const {
    for (const Program &p : programs)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// Serialise to bytes / file (the file is written atomically: temp + rename).
std::vector<uint8_t> serialize(const Plan &plan);
void writePlanFile(const Plan &plan, const std::string &path);

// Parse and validate: magic, version, checksum, every index in range, binding
// counts, blob sizes. Throws PlanError with a message naming the file and field.
Plan parse(const std::vector<uint8_t> &bytes, const std::string &origin);
Plan readPlanFile(const std::string &path);

struct PlanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

} // namespace tessera::plan
