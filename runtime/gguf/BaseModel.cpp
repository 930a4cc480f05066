#include "runtime/gguf/BaseModel.h"

#include "runtime/gguf/LlamaCpp.h"
#include "runtime/gguf/Quant.h"
#include "runtime/weights/OnnxWeights.h"

#include <cmath>
#include <memory>

namespace tessera::gguf {

namespace {

// llama_ftype of the file (general.file_type).
uint32_t fileType(TensorType t) {
  switch (t) {
  case TensorType::F32: return 0;  // LLAMA_FTYPE_ALL_F32
  case TensorType::F16: return 1;  // LLAMA_FTYPE_MOSTLY_F16
  case TensorType::Q8_0: return 7; // LLAMA_FTYPE_MOSTLY_Q8_0
  case TensorType::Q4_0: return 2; // LLAMA_FTYPE_MOSTLY_Q4_0
  case TensorType::BF16: return 32;
  case TensorType::TQ2_0: return 37; // LLAMA_FTYPE_MOSTLY_TQ2_0
  }
  return 0;
}

int64_t product(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

} // namespace

std::vector<float> materialize(const TensorSource &s, const weights::OnnxWeights &w, const std::string &what) {
  std::vector<float> v;
  if (!s.param.empty())
    v = w.load(s.param, s.shape);
  else
    v = s.values;
  if (int64_t(v.size()) != product(s.shape))
    throw std::runtime_error(what + ": " + std::to_string(v.size()) + " values for its shape");
  if (s.transpose) {
    if (s.shape.size() != 2) throw std::runtime_error(what + ": only 2-D weights can be transposed");
    int64_t r = s.shape[0], c = s.shape[1];
    std::vector<float> t(v.size());
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < c; ++j) t[size_t(j * r + i)] = v[size_t(i * c + j)];
    v.swap(t);
  }
  if (s.add != 0 || s.mul != 1)
    for (float &x : v) x = float((double(x) + s.add) * s.mul);
  for (float x : v)
    if (!std::isfinite(x)) throw std::runtime_error(what + ": has non-finite values (NaN or inf)");
  return v;
}

std::vector<BaseTensor> baseTensors(const DecoderModel &m) {
  std::vector<BaseTensor> out;
  auto add = [&](const std::string &name, const TensorSource &src, std::vector<int64_t> shape, int64_t groups,
                 std::string module = "") { out.push_back({name, std::move(shape), src, groups, std::move(module)}); };
  const int64_t H = m.hidden, D = m.head_dim, F = m.intermediate;
  add("token_embd.weight", m.token_embd, {m.vocab, H}, 0);
  if (!m.rope_freq_factors.empty()) {
    TensorSource f;
    f.values = m.rope_freq_factors;
    f.shape = {int64_t(f.values.size())};
    add("rope_freqs.weight", f, {int64_t(f.values.size())}, 0);
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const DecoderLayer &l = m.layers[i];
    std::string b = "blk." + std::to_string(i) + ".", s = "layers." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", l.attn_norm, {H}, 0);
    add(b + "attn_q.weight", l.q, {m.heads * D, H}, l.permute_qk ? m.heads : 0, s + "self_attn.q_proj");
    add(b + "attn_k.weight", l.k, {m.kv_heads * D, H}, l.permute_qk ? m.kv_heads : 0, s + "self_attn.k_proj");
    add(b + "attn_v.weight", l.v, {m.kv_heads * D, H}, 0, s + "self_attn.v_proj");
    add(b + "attn_output.weight", l.o, {H, m.heads * D}, 0, s + "self_attn.o_proj");
    if (l.q_norm.present()) add(b + "attn_q_norm.weight", l.q_norm, {D}, 0);
    if (l.k_norm.present()) add(b + "attn_k_norm.weight", l.k_norm, {D}, 0);
    if (l.post_attention_norm.present()) add(b + "post_attention_norm.weight", l.post_attention_norm, {H}, 0);
    add(b + "ffn_norm.weight", l.ffn_norm, {H}, 0);
    add(b + "ffn_gate.weight", l.gate, {F, H}, 0, s + "mlp.gate_proj");
    add(b + "ffn_up.weight", l.up, {F, H}, 0, s + "mlp.up_proj");
    add(b + "ffn_down.weight", l.down, {H, F}, 0, s + "mlp.down_proj");
    if (l.post_ffw_norm.present()) add(b + "post_ffw_norm.weight", l.post_ffw_norm, {H}, 0);
  }
  add("output_norm.weight", m.output_norm, {H}, 0);
  if (!m.tied_embeddings) add("output.weight", m.output, {m.vocab, H}, 0, "lm_head");
  return out;
}

void writeBaseModel(const std::string &path, const DecoderModel &m, const weights::OnnxWeights &w,
                    const std::vector<std::pair<std::string, Value>> &tokenizer, TensorType type, bool tensors) {
  Writer out;
  const std::string a = m.arch + ".";
  out.set("general.architecture", Value::str(m.arch));
  out.set("general.type", Value::str("model"));
  if (!m.name.empty()) out.set("general.name", Value::str(m.name));
  out.set("general.file_type", Value::u32(fileType(type)));
  if (isBlockQuantized(type)) out.set("general.quantization_version", Value::u32(2));
  int64_t vocab = m.vocab;
  for (const auto &kv : tokenizer)
    if (kv.first == "tokenizer.ggml.tokens" && !tensors) vocab = int64_t(kv.second.items.size());
  out.set(a + "vocab_size", Value::u32(uint32_t(vocab)));
  out.set(a + "context_length", Value::u32(uint32_t(m.context)));
  out.set(a + "embedding_length", Value::u32(uint32_t(m.hidden)));
  out.set(a + "block_count", Value::u32(uint32_t(m.layers.size())));
  out.set(a + "feed_forward_length", Value::u32(uint32_t(m.intermediate)));
  out.set(a + "attention.head_count", Value::u32(uint32_t(m.heads)));
  out.set(a + "attention.head_count_kv", Value::u32(uint32_t(m.kv_heads)));
  out.set(a + "attention.key_length", Value::u32(uint32_t(m.head_dim)));
  out.set(a + "attention.value_length", Value::u32(uint32_t(m.head_dim)));
  out.set(a + "attention.layer_norm_rms_epsilon", Value::f32(float(m.norm_eps)));
  out.set(a + "rope.dimension_count", Value::u32(uint32_t(m.head_dim)));
  out.set(a + "rope.freq_base", Value::f32(float(m.rope_theta)));
  if (m.rope_linear_factor > 0) {
    out.set(a + "rope.scaling.type", Value::str("linear"));
    out.set(a + "rope.scaling.factor", Value::f32(float(m.rope_linear_factor)));
  }
  if (m.sliding_window > 0) {
    out.set(a + "attention.sliding_window", Value::u32(uint32_t(m.sliding_window)));
    out.set(a + "attention.sliding_window_pattern", Value::u32(uint32_t(m.sliding_window_pattern)));
    if (m.rope_theta_swa > 0) out.set(a + "rope.freq_base_swa", Value::f32(float(m.rope_theta_swa)));
  }
  if (m.final_logit_softcapping > 0)
    out.set(a + "final_logit_softcapping", Value::f32(float(m.final_logit_softcapping)));
  for (const auto &kv : tokenizer) out.set(kv.first, kv.second);
  if (!tensors) {
    out.write(path);
    return;
  }

  // Tensors: 1-D in f32; 2-D in `type`, or f16 when its blocks do not fit a row.
  for (const BaseTensor &bt : baseTensors(m)) {
    const std::string &name = bt.name;
    const TensorSource &src = bt.source;
    const std::vector<int64_t> &shape = bt.shape;
    const int64_t permuteGroups = bt.permuteGroups;
    if (!src.present()) throw std::runtime_error(name + ": the model description has no source for this tensor");
    TensorType t = shape.size() == 1 ? TensorType::F32 : type;
    if (shape.back() % int64_t(blockElements(t)) != 0) t = TensorType::F16;
    int64_t rows = shape.size() == 2 ? shape[0] : 0, cols = shape.back();
    out.addTensor(name, shape, t, [&w, src, name, t, shape, rows, cols, permuteGroups] {
      std::vector<float> v = materialize(src, w, name);
      if (int64_t(v.size()) != product(shape))
        throw std::runtime_error(name + ": the source has " + std::to_string(v.size()) + " values, llama.cpp expects " +
                                 std::to_string(product(shape)));
      if (permuteGroups > 0) v = permuteRows(v, rows, cols, permuteGroups);
      return encode(t, v.data(), v.size());
    });
  }
  out.write(path);
}

} // namespace tessera::gguf
