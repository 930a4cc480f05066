// BaseModel.h - a decoder's base weights as a llama.cpp model GGUF.
//
// The compiler describes the model (compiler/export: architecture and
// hyper-parameters from the raised graph and config.json, and where each
// llama.cpp tensor's values come from); this file writes the GGUF: the
// `<arch>.*` keys llama.cpp's loader reads for llama / qwen3 / gemma3, the
// tokenizer keys (Vocab.h) and the tensors in f32, f16 or q8_0 (1-D tensors
// always f32, rows that are not whole Q8_0 blocks f16, as llama.cpp's
// converter does).
#pragma once

#include "runtime/gguf/Gguf.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera::weights {
class OnnxWeights;
}

namespace tessera::gguf {

// Where a tensor's values come from: an ONNX initializer or values the graph
// folded, then y = (x + add) * mul; 2-D sources stored [in, out] are
// transposed to llama.cpp's [out, in].
struct TensorSource {
  std::string param;             // ONNX initializer name ("" = `values`)
  std::vector<float> values;     // a constant of the graph
  std::vector<int64_t> shape;    // the source's row-major shape
  bool transpose = false;
  double add = 0, mul = 1;       // Gemma's unfolded (1 + w); an attention scale folded into q_norm
  bool present() const { return !param.empty() || !values.empty(); }
};

struct DecoderLayer {
  TensorSource attn_norm, q, k, v, o, q_norm, k_norm, post_attention_norm;
  TensorSource ffn_norm, gate, up, down, post_ffw_norm;
  bool permute_qk = false; // llama: q/k rows permuted (LlamaCpp.h)
};

struct DecoderModel {
  std::string arch;          // llama.cpp architecture: llama, qwen3, gemma3
  std::string name;          // general.name
  int64_t vocab = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t context = 0;       // context_length
  double norm_eps = 0;
  double rope_theta = 0;     // rope.freq_base (Gemma 3: the global layers')
  double rope_theta_swa = 0; // Gemma 3: the sliding-window layers' base (0: none)
  double rope_linear_factor = 0; // rope.scaling.type linear with this factor (0: none)
  std::vector<float> rope_freq_factors; // llama: rope_freqs.weight (llama3 scaling), empty: none
  int64_t sliding_window = 0;           // Gemma 3
  int64_t sliding_window_pattern = 0;   // Gemma 3: every N-th layer is global
  double final_logit_softcapping = 0;
  bool tied_embeddings = false;
  TensorSource token_embd, output_norm, output;
  std::vector<DecoderLayer> layers;
};

// One tensor's values in llama.cpp's layout (row-major [out, in]).
std::vector<float> materialize(const TensorSource &s, const weights::OnnxWeights &w, const std::string &what);

// One tensor of the base model file, in file order: llama.cpp's name and
// shape ([out, in] for a linear weight), where its values come from
// (materialize(source), then rows permuted in `permuteGroups` groups: llama's
// q/k), and the structural name of its linear layer ("layers.0.self_attn.q_proj",
// "lm_head"; empty for norms and the embedding).
struct BaseTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorSource source;
  int64_t permuteGroups = 0;
  std::string module;
};
std::vector<BaseTensor> baseTensors(const DecoderModel &m);

// Writes the model; `tokenizer` holds the tokenizer.* keys (Vocab.h). type is
// the 2-D weights' type: F32, F16 or Q8_0. Without `tensors`, the file holds
// the metadata alone (a vocab-only GGUF, as llama.cpp's tokenizer tests use).
// Atomic.
void writeBaseModel(const std::string &path, const DecoderModel &m, const weights::OnnxWeights &w,
                    const std::vector<std::pair<std::string, Value>> &tokenizer, TensorType type, bool tensors = true);

} // namespace tessera::gguf
