// LoraAdapter.h - LoRA adapters as llama.cpp reads them (`llama-cli --lora`,
// llama_adapter_lora_init), written from and read back into PEFT's layout.
//
// A llama.cpp LoRA file is a GGUF with
//   general.type = "adapter", general.architecture = the base model's,
//   adapter.type = "lora", adapter.lora.alpha (f32),
//   <base tensor>.lora_a  [r, in]   (ne = {in, r})
//   <base tensor>.lora_b  [out, r]  (ne = {r, out})
// per adapted weight, e.g. blk.0.attn_q.weight.lora_a. llama.cpp scales the
// product by alpha / r (r = lora_b's ne[0]; alpha 0 means a scale of 1), so
// rsLoRA's alpha / sqrt(r) is written as alpha' = alpha * sqrt(r). For the
// llama architecture lora_b's rows are permuted like q_proj / k_proj
// (LlamaCpp.h); reading undoes it.
#pragma once

#include "runtime/gguf/Gguf.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::gguf {

// One adapted linear layer in PEFT's layout: A [rank, in], B [out, rank].
struct LoraPair {
  std::string module; // structural name, e.g. "layers.0.self_attn.q_proj"
  int64_t rank = 0, in = 0, out = 0;
  std::vector<float> a, b;
};

// Head counts of the base model: needed to (un)permute llama q/k rows.
struct HeadCounts {
  int64_t heads = 0, kv_heads = 0;
};

struct LoraAdapter {
  std::string arch;   // llama.cpp architecture
  double scale = 0;   // the multiplier of B A (alpha / r, or alpha / sqrt(r) with rsLoRA)
  std::vector<LoraPair> pairs;
};

// A PEFT adapter directory (adapter_model.safetensors + adapter_config.json).
// Errors name the file and the field or tensor; configurations llama.cpp
// cannot represent (DoRA, LoRA biases, fan_in_fan_out, per-module ranks or
// alphas) are refused.
LoraAdapter readPeftAdapter(const std::string &dir);

// Writes `adapter` as a llama.cpp LoRA GGUF (atomically). type: F32, F16 or Q8_0.
void writeLoraGguf(const std::string &path, const LoraAdapter &adapter, const HeadCounts &heads, TensorType type,
                   const std::string &name);

// Reads a llama.cpp / QVAC Fabric LoRA GGUF back into PEFT's layout (lora_b
// rows un-permuted for llama). Checks general.type, adapter.type, the
// architecture, tensor names, pairs and shapes; norm tensors some tools add are
// skipped with a warning (llama.cpp ignores them too).
LoraAdapter readLoraGguf(const std::string &path, const HeadCounts &heads);

// True when `path` is a file starting with the GGUF magic.
bool isGgufFile(const std::string &path);

} // namespace tessera::gguf
