#include "runtime/gguf/LoraAdapter.h"

#include "runtime/gguf/LlamaCpp.h"
#include "runtime/gguf/Quant.h"
#include "runtime/util/File.h"
#include "runtime/util/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

namespace tessera::gguf {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string shapeText(const std::vector<int64_t> &s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// The structural name inside a PEFT tensor name, and which factor it is.
bool splitPeftName(const std::string &name, std::string &module, char &factor) {
  static const char *suffixes[] = {".lora_A.weight", ".lora_B.weight"};
  for (int f = 0; f < 2; ++f) {
    std::string suf = suffixes[f];
    if (name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0) {
      module = name.substr(0, name.size() - suf.size());
      factor = f == 0 ? 'A' : 'B';
      for (const char *prefix : {"base_model.model.model.", "base_model.model."})
        if (module.compare(0, std::strlen(prefix), prefix) == 0) {
          module = module.substr(std::strlen(prefix));
          break;
        }
      return true;
    }
  }
  return false;
}

void checkFinite(const std::string &where, const std::vector<float> &v) {
  for (float x : v)
    if (!std::isfinite(x)) throw std::runtime_error(where + ": has non-finite values (NaN or inf)");
}

int64_t heads(const HeadCounts &h, const std::string &projection) {
  return projection == "q_proj" ? h.heads : h.kv_heads;
}

} // namespace

LoraAdapter readPeftAdapter(const std::string &dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": adapter directory not found");
  fs::path weights = fs::path(dir) / "adapter_model.safetensors", configPath = fs::path(dir) / "adapter_config.json";
  if (!fs::exists(weights, ec)) throw std::runtime_error(weights.string() + ": missing (not a PEFT adapter directory)");
  if (!fs::exists(configPath, ec)) throw std::runtime_error(configPath.string() + ": missing (not a PEFT adapter directory)");
  json c;
  try {
    std::vector<uint8_t> bytes = util::readFile(configPath.string());
    c = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception &e) {
    throw std::runtime_error(configPath.string() + ": not valid JSON: " + e.what());
  }
  std::string cfg = configPath.string();
  auto number = [&](const char *key) {
    if (!c.contains(key) || !c[key].is_number()) throw std::runtime_error(cfg + ": " + key + " must be a number");
    return c[key].get<double>();
  };
  if (c.contains("peft_type") && c["peft_type"] != "LORA")
    throw std::runtime_error(cfg + ": peft_type is " + c["peft_type"].dump() + ", only LORA adapters convert to llama.cpp");
  double r = number("r"), alpha = number("lora_alpha");
  if (r < 1 || r != std::floor(r)) throw std::runtime_error(cfg + ": r must be a positive integer");
  bool rslora = c.value("use_rslora", false);
  if (c.value("use_dora", false)) throw std::runtime_error(cfg + ": use_dora: DoRA adapters have no llama.cpp form");
  if (c.value("fan_in_fan_out", false)) throw std::runtime_error(cfg + ": fan_in_fan_out = true is not supported");
  if (c.contains("bias") && c["bias"].is_string() && c["bias"] != "none")
    throw std::runtime_error(cfg + ": bias " + c["bias"].dump() + ": llama.cpp LoRA adapters have no bias terms");
  for (const char *key : {"rank_pattern", "alpha_pattern"})
    if (c.contains(key) && c[key].is_object() && !c[key].empty())
      throw std::runtime_error(cfg + ": " + key + ": per-module ranks or alphas are not supported (llama.cpp has one alpha)");

  LoraAdapter out;
  out.scale = rslora ? alpha / std::sqrt(r) : alpha / r;
  std::map<std::string, util::TensorF32> tensors = util::readSafetensors(weights.string());
  std::map<std::string, LoraPair> pairs;
  for (auto &[name, t] : tensors) {
    std::string module;
    char factor;
    if (!splitPeftName(name, module, factor))
      throw std::runtime_error(weights.string() + ": tensor '" + name +
                               "' is not a LoRA factor (.lora_A.weight / .lora_B.weight); modules_to_save and "
                               "embedding adapters are not supported");
    if (t.shape.size() != 2) throw std::runtime_error(weights.string() + ": tensor '" + name + "' is not 2-D");
    LoraPair &p = pairs[module];
    p.module = module;
    if (factor == 'A') {
      p.rank = t.shape[0];
      p.in = t.shape[1];
      p.a = std::move(t.data);
    } else {
      p.out = t.shape[0];
      if (p.rank && t.shape[1] != p.rank)
        throw std::runtime_error(weights.string() + ": tensor '" + name + "' has rank " + std::to_string(t.shape[1]) +
                                 ", its lora_A has " + std::to_string(p.rank));
      p.rank = t.shape[1];
      p.b = std::move(t.data);
    }
  }
  for (auto &[module, p] : pairs) {
    if (p.a.empty() || p.b.empty())
      throw std::runtime_error(weights.string() + ": " + module + " has " + (p.a.empty() ? "no lora_A" : "no lora_B"));
    if (int64_t(p.a.size()) != p.rank * p.in || int64_t(p.b.size()) != p.out * p.rank || p.rank != int64_t(r))
      throw std::runtime_error(weights.string() + ": " + module + " has rank " + std::to_string(p.rank) +
                               ", adapter_config.json says r = " + std::to_string(int64_t(r)));
    checkFinite(weights.string() + ": " + module, p.a);
    checkFinite(weights.string() + ": " + module, p.b);
    out.pairs.push_back(std::move(p));
  }
  if (out.pairs.empty()) throw std::runtime_error(weights.string() + ": no LoRA tensors");
  return out;
}

void writeLoraGguf(const std::string &path, const LoraAdapter &ad, const HeadCounts &hc, TensorType type,
                   const std::string &name) {
  Writer w;
  w.set("general.architecture", Value::str(ad.arch));
  w.set("general.type", Value::str("adapter"));
  if (!name.empty()) w.set("general.name", Value::str(name));
  w.set("adapter.type", Value::str("lora"));
  int64_t rank = ad.pairs.empty() ? 0 : ad.pairs.front().rank;
  for (const LoraPair &p : ad.pairs)
    if (p.rank != rank) throw std::runtime_error(path + ": adapters of different ranks cannot share llama.cpp's one alpha");
  // llama.cpp multiplies by alpha / r.
  w.set("adapter.lora.alpha", Value::f32(float(ad.scale * double(rank))));
  // Q8_0 needs rows of whole 32-value blocks; other tensors fall back to F16,
  // as llama.cpp's converter does.
  auto typeFor = [type](int64_t rowLength) {
    return type == TensorType::Q8_0 && rowLength % int64_t(kQ8Block) != 0 ? TensorType::F16 : type;
  };
  for (const LoraPair &p : ad.pairs) {
    std::optional<std::string> base = tensorForModule(p.module);
    if (!base) throw std::runtime_error(p.module + ": llama.cpp has no tensor for this module (only q/k/v/o, gate/up/down and lm_head adapt)");
    std::vector<float> b = p.b;
    std::string proj = projectionOf(p.module);
    if (permutesQK(ad.arch) && (proj == "q_proj" || proj == "k_proj")) {
      int64_t groups = heads(hc, proj);
      if (groups <= 0) throw std::runtime_error(p.module + ": the model's head counts are needed to permute llama q/k rows");
      b = permuteRows(b, p.out, p.rank, groups);
    }
    std::vector<float> a = p.a;
    TensorType ta = typeFor(p.in), tb = typeFor(p.rank);
    w.addTensor(*base + ".lora_a", {p.rank, p.in}, ta, [a, ta] { return encode(ta, a.data(), a.size()); });
    w.addTensor(*base + ".lora_b", {p.out, p.rank}, tb,
                [b = std::move(b), tb] { return encode(tb, b.data(), b.size()); });
  }
  w.write(path);
}

bool isGgufFile(const std::string &path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {};
  size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

LoraAdapter readLoraGguf(const std::string &path, const HeadCounts &hc) {
  File f(path);
  auto fail = [&](const std::string &field, const std::string &what) -> void {
    throw GgufError(path + ": " + field + ": " + what);
  };
  const Value *gt = f.find("general.type");
  if (!gt || gt->type != ValueType::String || gt->s != "adapter")
    fail("general.type", gt ? "is " + (gt->type == ValueType::String ? "\"" + gt->s + "\"" : std::string("not a string")) +
                                  ", a LoRA adapter has \"adapter\" (is this a base model?)"
                            : "missing (a LoRA adapter has general.type = \"adapter\")");
  std::string at = f.getString("adapter.type");
  if (at != "lora") fail("adapter.type", "is \"" + at + "\", only \"lora\" adapters are supported");
  LoraAdapter out;
  out.arch = f.getString("general.architecture");
  if (!llamaCppArch(out.arch)) fail("general.architecture", "\"" + out.arch + "\" is not one of llama, qwen3, gemma3");
  double alpha = f.find("adapter.lora.alpha") ? f.getNumber("adapter.lora.alpha") : 0.0;
  if (!std::isfinite(alpha) || alpha < 0) fail("adapter.lora.alpha", "must be a finite number >= 0");

  std::map<std::string, std::pair<const TensorInfo *, const TensorInfo *>> pairs; // base -> (a, b)
  for (const TensorInfo &t : f.tensors()) {
    auto ends = [&](const std::string &suf) {
      return t.name.size() > suf.size() && t.name.compare(t.name.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (ends(".lora_a")) {
      pairs[t.name.substr(0, t.name.size() - 7)].first = &t;
    } else if (ends(".lora_b")) {
      pairs[t.name.substr(0, t.name.size() - 7)].second = &t;
    } else if (ends("_norm.weight")) {
      std::fprintf(stderr, "warning: %s: tensor '%s' (a norm) is ignored, as llama.cpp does\n", path.c_str(), t.name.c_str());
    } else {
      fail("tensor '" + t.name + "'", "not a LoRA factor (names end in .lora_a / .lora_b)");
    }
  }
  if (pairs.empty()) fail("tensors", "no LoRA tensors");
  int64_t rank = 0;
  for (auto &[base, ab] : pairs) {
    if (!ab.first || !ab.second) fail("tensor '" + base + (ab.first ? ".lora_b" : ".lora_a") + "'", "missing (its pair is there)");
    std::optional<std::string> module = moduleForTensor(base);
    if (!module)
      fail("tensor '" + base + ".lora_a'", base == "token_embd.weight" ? "embedding adapters are not supported"
                                                                         : "no Tessera module corresponds to '" + base + "'");
    const TensorInfo &a = *ab.first, &b = *ab.second;
    if (a.shape.size() != 2 || b.shape.size() != 2)
      fail("tensor '" + a.name + "'", "LoRA factors are 2-D, found " + shapeText(a.shape) + " and " + shapeText(b.shape));
    LoraPair p;
    p.module = *module;
    p.rank = a.shape[0];
    p.in = a.shape[1];
    p.out = b.shape[0];
    if (b.shape[1] != p.rank)
      fail("tensor '" + b.name + "'", "shape " + shapeText(b.shape) + " does not match lora_a " + shapeText(a.shape) +
                                          " (expected [out, " + std::to_string(p.rank) + "])");
    if (rank && p.rank != rank) fail("tensor '" + a.name + "'", "rank " + std::to_string(p.rank) + " differs from the others (" + std::to_string(rank) + ")");
    rank = p.rank;
    p.a = f.readF32(a);
    p.b = f.readF32(b);
    checkFinite(path + ": tensor '" + a.name + "'", p.a);
    checkFinite(path + ": tensor '" + b.name + "'", p.b);
    std::string proj = projectionOf(p.module);
    if (permutesQK(out.arch) && (proj == "q_proj" || proj == "k_proj")) {
      int64_t groups = heads(hc, proj);
      if (groups <= 0) fail("tensor '" + b.name + "'", "the model's head counts are needed to un-permute llama q/k rows");
      if (p.out % groups != 0 || (p.out / groups) % 2 != 0)
        fail("tensor '" + b.name + "'", std::to_string(p.out) + " rows do not split into " + std::to_string(groups) + " heads");
      p.b = permuteRows(p.b, p.out, p.rank, groups, /*inverse=*/true);
    }
    out.pairs.push_back(std::move(p));
  }
  out.scale = alpha == 0 ? 1.0 : alpha / double(rank);
  return out;
}

} // namespace tessera::gguf
