// ExportGguf.cpp - `tessera export`: describe the model (DescribeModel), then
// write the base model and/or the LoRA adapter with runtime/gguf.
#include "compiler/export/ExportGguf.h"

#include "compiler/export/DescribeModel.h"
#include "runtime/gguf/BaseModel.h"
#include "runtime/gguf/LoraAdapter.h"
#include "runtime/gguf/Vocab.h"
#include "runtime/weights/OnnxWeights.h"

#include <cstdio>
#include <filesystem>
#include <map>

namespace tessera {
namespace {

// in / out features of each linear layer llama.cpp has, from the description.
std::map<std::string, std::pair<int64_t, int64_t>> linearShapes(const gguf::DecoderModel &m) {
  std::map<std::string, std::pair<int64_t, int64_t>> s;
  int64_t H = m.hidden, q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim, F = m.intermediate;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    std::string p = "layers." + std::to_string(i) + ".";
    s[p + "self_attn.q_proj"] = {H, q};
    s[p + "self_attn.k_proj"] = {H, kv};
    s[p + "self_attn.v_proj"] = {H, kv};
    s[p + "self_attn.o_proj"] = {q, H};
    s[p + "mlp.gate_proj"] = {H, F};
    s[p + "mlp.up_proj"] = {H, F};
    s[p + "mlp.down_proj"] = {F, H};
  }
  s["lm_head"] = {H, m.vocab};
  return s;
}

double mib(const std::string &path) {
  std::error_code ec;
  return double(std::filesystem::file_size(path, ec)) / 1048576.0;
}

} // namespace

int exportGguf(const ExportOptions &o, std::string &error) {
  gguf::TensorType type;
  if (o.type == "f32") type = gguf::TensorType::F32;
  else if (o.type == "f16") type = gguf::TensorType::F16;
  else if (o.type == "q8_0") type = gguf::TensorType::Q8_0;
  else if (o.type == "q4_0") type = gguf::TensorType::Q4_0;
  else if (o.type == "tq2_0") type = gguf::TensorType::TQ2_0;
  else {
    error = "--type " + o.type + ": expected f32, f16, q8_0, q4_0 or tq2_0";
    return 1;
  }
  if (!o.gguf_adapter.empty() && (type == gguf::TensorType::Q4_0 || type == gguf::TensorType::TQ2_0)) {
    error = "--type " + o.type + " is for the base model; a LoRA adapter is written in f32, f16 or q8_0";
    return 1;
  }
  if (o.gguf_base.empty() && o.gguf_adapter.empty()) {
    error = "nothing to write: give --gguf-base BASE.gguf and/or --gguf-adapter NAME-LoRA.gguf";
    return 1;
  }
  if (o.vocab_only && (o.tokenizer.empty() || o.gguf_base.empty())) {
    error = "--vocab-only needs --tokenizer DIR and --gguf-base OUT.gguf";
    return 1;
  }
  if (!o.gguf_adapter.empty() && o.adapter.empty()) {
    error = "--gguf-adapter needs --adapter DIR (the PEFT adapter that tessera train wrote)";
    return 1;
  }
  DescribeOptions d;
  d.model = o.weights;
  d.config = o.config;
  d.seq = o.seq;
  d.context_length = o.context_length;
  ModelDescription desc;
  if (describeModel(d, desc, error) != 0) return 1;
  const gguf::DecoderModel &m = desc.model;
  try {
    if (!o.gguf_base.empty()) {
      // A vocab-only file has the tokenizer's own size (no embedding to match).
      gguf::Metadata vocab = o.tokenizer.empty() ? gguf::placeholderVocab(m.vocab, desc.ids)
                                                 : gguf::tokenizerVocab(o.tokenizer, o.vocab_only ? -1 : m.vocab, desc.ids);
      weights::OnnxWeights w(o.weights);
      gguf::writeBaseModel(o.gguf_base, m, w, vocab, type, /*tensors=*/!o.vocab_only);
      if (!o.quiet && o.vocab_only)
        std::printf("wrote %s: %s metadata and the tokenizer of %s, no weights (%.2f MiB)\n", o.gguf_base.c_str(),
                    m.arch.c_str(), o.tokenizer.c_str(), mib(o.gguf_base));
      else if (!o.quiet)
        std::printf("wrote %s: %s, %zu layers, %s, %s vocabulary (%.2f MiB)\n", o.gguf_base.c_str(), m.arch.c_str(),
                    m.layers.size(), o.type.c_str(), o.tokenizer.empty() ? "placeholder" : "tokenizer.json",
                    mib(o.gguf_base));
    }
    if (!o.gguf_adapter.empty()) {
      gguf::LoraAdapter ad = gguf::readPeftAdapter(o.adapter);
      ad.arch = m.arch;
      auto shapes = linearShapes(m);
      for (const gguf::LoraPair &p : ad.pairs) {
        auto it = shapes.find(p.module);
        if (it == shapes.end())
          throw std::runtime_error(o.adapter + ": " + p.module + " is not a linear layer of " + o.weights);
        if (p.module == "lm_head" && m.tied_embeddings)
          throw std::runtime_error(o.adapter + ": lm_head is adapted but tied to the embedding; llama.cpp cannot apply it");
        if (it->second.first != p.in || it->second.second != p.out)
          throw std::runtime_error(o.adapter + ": " + p.module + " is [" + std::to_string(p.in) + " -> " +
                                   std::to_string(p.out) + "] but the model's is [" + std::to_string(it->second.first) +
                                   " -> " + std::to_string(it->second.second) + "] (another model's adapter?)");
      }
      std::string name = std::filesystem::path(o.gguf_adapter).stem().string();
      gguf::writeLoraGguf(o.gguf_adapter, ad, {m.heads, m.kv_heads}, type, name);
      if (!o.quiet)
        std::printf("wrote %s: LoRA for %s, %zu adapted layers, rank %lld, scale %g (%.2f MiB)\n", o.gguf_adapter.c_str(),
                    m.arch.c_str(), ad.pairs.size(), (long long)ad.pairs.front().rank, ad.scale, mib(o.gguf_adapter));
    }
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  return 0;
}

} // namespace tessera
