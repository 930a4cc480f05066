#include "runtime/gguf/LlamaCpp.h"

#include <stdexcept>

namespace tessera::gguf {

namespace {

struct Projection {
  const char *hf;   // structural suffix
  const char *gguf; // llama.cpp tensor stem
};
const Projection kProjections[] = {
    {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},  {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

// Parses "<prefix><N>.<rest>" with N a decimal layer index.
bool splitLayer(const std::string &s, const std::string &prefix, int64_t &layer, std::string &rest) {
  if (s.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size(), j = i;
  while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
  if (j == i || j - i > 6 || j >= s.size() || s[j] != '.') return false;
  if (s[i] == '0' && j - i > 1) return false; // no leading zeros: one spelling per layer
  layer = std::stoll(s.substr(i, j - i));
  rest = s.substr(j + 1);
  return true;
}

} // namespace

std::optional<std::string> llamaCppArch(const std::string &a) {
  if (a == "llama" || a == "qwen3" || a == "gemma3") return a;
  return std::nullopt;
}

bool permutesQK(const std::string &arch) { return arch == "llama"; }

std::optional<std::string> tensorForModule(const std::string &module) {
  if (module == "lm_head") return std::string("output.weight");
  int64_t layer;
  std::string rest;
  if (!splitLayer(module, "layers.", layer, rest)) return std::nullopt;
  for (const Projection &p : kProjections)
    if (rest == p.hf) return "blk." + std::to_string(layer) + "." + p.gguf + ".weight";
  return std::nullopt;
}

std::optional<std::string> moduleForTensor(const std::string &tensor) {
  if (tensor == "output.weight") return std::string("lm_head");
  int64_t layer;
  std::string rest;
  if (!splitLayer(tensor, "blk.", layer, rest)) return std::nullopt;
  for (const Projection &p : kProjections)
    if (rest == std::string(p.gguf) + ".weight") return "layers." + std::to_string(layer) + "." + p.hf;
  return std::nullopt;
}

std::string projectionOf(const std::string &module) {
  size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

std::vector<float> permuteRows(const std::vector<float> &m, int64_t rows, int64_t cols, int64_t groups,
                               bool inverse) {
  if (groups <= 0 || rows % groups != 0 || (rows / groups) % 2 != 0 || int64_t(m.size()) != rows * cols)
    throw std::runtime_error("q/k row permutation: " + std::to_string(rows) + " rows do not split into " +
                             std::to_string(groups) + " heads of an even size");
  const int64_t d = rows / groups, half = d / 2;
  std::vector<float> out(m.size());
  for (int64_t h = 0; h < groups; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        int64_t gguf = h * d + 2 * i + j, hf = h * d + j * half + i;
        int64_t dst = inverse ? hf : gguf, src = inverse ? gguf : hf;
        std::copy(m.begin() + src * cols, m.begin() + (src + 1) * cols, out.begin() + dst * cols);
      }
  return out;
}

} // namespace tessera::gguf
