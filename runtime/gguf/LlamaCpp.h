// LlamaCpp.h - how llama.cpp names and lays out what Tessera trains.
//
// Architectures: Tessera's raised `tessera.arch` guess "llama", "qwen3" and
// "gemma3" are llama.cpp's LLM_ARCH_LLAMA, LLM_ARCH_QWEN3 and LLM_ARCH_GEMMA3
// (general.architecture "llama", "qwen3", "gemma3").
//
// Tensor names: structural names (docs/raising.md) map onto llama.cpp's
//   layers.N.self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output}.weight
//   layers.N.mlp.{gate,up,down}_proj  -> blk.N.ffn_{gate,up,down}.weight
//   lm_head -> output.weight
//
// Q/K row permutation: llama.cpp's llama architecture applies RoPE to
// adjacent pairs (GGML_ROPE_TYPE_NORM) where Hugging Face rotates halves, so
// its converter permutes the output rows of q_proj (n_head groups) and k_proj
// (n_kv_head groups): within each head of D rows, row 2i + j of the GGUF
// tensor is row j * D/2 + i of the Hugging Face one (j = 0, 1). Qwen 3 and
// Gemma 3 use the NEOX (rotate-half) mode and are not permuted. For a LoRA
// pair only B (the output rows) moves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera::gguf {

// The llama.cpp architecture of a Tessera arch guess; nullopt if unsupported.
std::optional<std::string> llamaCppArch(const std::string &tesseraArch);
// True where llama.cpp's converter permutes q_proj / k_proj rows (llama).
bool permutesQK(const std::string &llamaArch);

// "layers.3.self_attn.q_proj" -> "blk.3.attn_q.weight"; nullopt if llama.cpp
// has no such tensor.
std::optional<std::string> tensorForModule(const std::string &module);
// The inverse: "blk.3.attn_q.weight" -> "layers.3.self_attn.q_proj".
std::optional<std::string> moduleForTensor(const std::string &tensor);
// Which projection a module is: "q_proj", "k_proj", ... ("" if none).
std::string projectionOf(const std::string &module);

// Rows of a row-major [rows, cols] matrix, permuted as llama.cpp's converter
// does for `groups` heads (rows = groups * D, D even); `inverse` undoes it.
std::vector<float> permuteRows(const std::vector<float> &m, int64_t rows, int64_t cols, int64_t groups,
                               bool inverse = false);

} // namespace tessera::gguf
