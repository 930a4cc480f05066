// AdapterIO.h - LoRA adapters in Hugging Face PEFT's on-disk format:
//   DIR/adapter_model.safetensors  F32 tensors
//       base_model.model.model.<module>.lora_A.weight  [r, in]
//       base_model.model.model.<module>.lora_B.weight  [out, r]
//   DIR/adapter_config.json        peft_type LORA, r, lora_alpha, target_modules, ...
#pragma once

#include "runtime/plan/Plan.h"

#include <string>
#include <vector>

namespace tessera::train {

std::string peftName(const std::string &module, char factor); // factor 'A' or 'B'

// The adapter_config.json text for a plan.
std::string adapterConfig(const plan::Plan &plan);

// Writes DIR atomically. `a[i]` / `b[i]` are the values of plan.adapters[i].
// A new DIR is written as DIR.tmp-* and renamed; in an existing DIR each file
// is replaced atomically (other files there are left alone).
void writeAdapter(const std::string &dir, const plan::Plan &plan, const std::vector<std::vector<float>> &a,
                  const std::vector<std::vector<float>> &b);

// Reads DIR/adapter_model.safetensors, checks every adapter of the plan is
// there with the plan's shapes, and returns the values in plan order. DIR may
// also be a llama.cpp / QVAC Fabric LoRA GGUF file (runtime/gguf/LoraAdapter.h):
// its architecture must be the plan's, it must adapt exactly the plan's
// layers, and llama q/k rows are un-permuted with the plan's head counts.
void readAdapter(const std::string &dir, const plan::Plan &plan, std::vector<std::vector<float>> &a,
                 std::vector<std::vector<float>> &b);

} // namespace tessera::train
