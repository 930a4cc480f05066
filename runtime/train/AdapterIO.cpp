#include "runtime/train/AdapterIO.h"

#include "runtime/gguf/LoraAdapter.h"
#include "runtime/util/File.h"
#include "runtime/util/Json.h"
#include "runtime/util/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

namespace tessera::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string peftName(const std::string &module, char factor) {
  return "base_model.model.model." + module + ".lora_" + factor + ".weight";
}

std::string adapterConfig(const plan::Plan &plan) {
  std::set<std::string> targets;
  for (const plan::Adapter &a : plan.adapters) {
    size_t dot = a.module.rfind('.');
    targets.insert(dot == std::string::npos ? a.module : a.module.substr(dot + 1));
  }
  json c;
  c["peft_type"] = "LORA";
  c["task_type"] = "CAUSAL_LM";
  c["r"] = plan.lora_rank;
  if (plan.lora_alpha == std::floor(plan.lora_alpha) && std::fabs(plan.lora_alpha) < 1e15)
    c["lora_alpha"] = int64_t(plan.lora_alpha);
  else
    c["lora_alpha"] = plan.lora_alpha;
  c["use_rslora"] = plan.rslora;
  c["lora_dropout"] = plan.lora_dropout;
  c["bias"] = "none";
  c["target_modules"] = std::vector<std::string>(targets.begin(), targets.end());
  c["base_model_name_or_path"] = plan.model_file;
  c["fan_in_fan_out"] = false;
  c["inference_mode"] = true;
  c["init_lora_weights"] = true;
  c["modules_to_save"] = nullptr;
  return c.dump(2) + "\n";
}

void writeAdapter(const std::string &dir, const plan::Plan &plan, const std::vector<std::vector<float>> &a,
                  const std::vector<std::vector<float>> &b) {
  std::vector<util::TensorF32> tensors;
  for (size_t i = 0; i < plan.adapters.size(); ++i) {
    const plan::Adapter &ad = plan.adapters[i];
    tensors.push_back({peftName(ad.module, 'A'), {ad.rank, ad.in_features}, a.at(i)});
    tensors.push_back({peftName(ad.module, 'B'), {ad.out_features, ad.rank}, b.at(i)});
  }
  std::string config = adapterConfig(plan);
  std::error_code ec;
  // "adapter/" names the folder "adapter": the temporary folder goes beside
  // it, not inside it.
  fs::path target = fs::path(dir).lexically_normal();
  if (!target.has_filename() && target.has_parent_path()) target = target.parent_path();
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec)) throw std::runtime_error(dir + ": exists and is not a directory");
    // Each file is replaced atomically; the weights first, then the config.
    util::writeSafetensors((target / "adapter_model.safetensors").string(), tensors);
    util::writeFileAtomic((target / "adapter_config.json").string(), config);
    return;
  }
  fs::path tmp = fs::path(target.string() + util::tempSuffix());
  try {
    fs::create_directories(tmp);
    util::writeSafetensors((tmp / "adapter_model.safetensors").string(), tensors);
    util::writeFileAtomic((tmp / "adapter_config.json").string(), config);
    fs::rename(tmp, target);
  } catch (const std::exception &e) {
    fs::remove_all(tmp, ec);
    const auto *fe = dynamic_cast<const fs::filesystem_error *>(&e);
    throw std::runtime_error(fe ? dir + ": cannot write the adapter: " + fe->code().message() : std::string(e.what()));
  }
}

namespace {

// A llama.cpp / QVAC Fabric LoRA GGUF mapped onto the plan's adapters.
void readGgufAdapter(const std::string &path, const plan::Plan &plan, std::vector<std::vector<float>> &a,
                     std::vector<std::vector<float>> &b) {
  const plan::ModelInfo &mi = plan.model;
  gguf::LoraAdapter ad = gguf::readLoraGguf(path, {mi.heads, mi.kv_heads});
  if (mi.arch.empty())
    throw std::runtime_error(path + ": the plan does not record its model's architecture (compiled by an older "
                             "tessera): recompile it to read GGUF adapters");
  if (ad.arch != mi.arch)
    throw std::runtime_error(path + ": general.architecture is \"" + ad.arch + "\" but the plan's model is " + mi.arch);
  std::map<std::string, const gguf::LoraPair *> byModule;
  for (const gguf::LoraPair &p : ad.pairs) byModule[p.module] = &p;
  a.assign(plan.adapters.size(), {});
  b.assign(plan.adapters.size(), {});
  std::set<std::string> used;
  for (size_t i = 0; i < plan.adapters.size(); ++i) {
    const plan::Adapter &pa = plan.adapters[i];
    auto it = byModule.find(pa.module);
    if (it == byModule.end())
      throw std::runtime_error(path + ": no LoRA tensors for " + pa.module + ", which the plan adapts");
    const gguf::LoraPair &p = *it->second;
    if (p.rank != pa.rank || p.in != pa.in_features || p.out != pa.out_features)
      throw std::runtime_error(path + ": " + pa.module + " has rank " + std::to_string(p.rank) + ", [" +
                               std::to_string(p.in) + " -> " + std::to_string(p.out) + "] but the plan expects rank " +
                               std::to_string(pa.rank) + ", [" + std::to_string(pa.in_features) + " -> " +
                               std::to_string(pa.out_features) + "]");
    a[i] = p.a;
    b[i] = p.b;
    used.insert(pa.module);
  }
  for (const gguf::LoraPair &p : ad.pairs)
    if (!used.count(p.module))
      throw std::runtime_error(path + ": adapts " + p.module + ", which the plan does not (compile with --lora-targets covering it)");
  if (std::fabs(ad.scale - plan.lora_scale) > 1e-6 * std::fabs(plan.lora_scale)) {
    double alpha = plan.rslora ? ad.scale * std::sqrt(double(plan.lora_rank)) : ad.scale * double(plan.lora_rank);
    std::fprintf(stderr, "warning: %s scales its product by %g, the plan by %g: compile with --lora-alpha %g%s to match\n",
                 path.c_str(), ad.scale, plan.lora_scale, alpha, plan.rslora ? " --rslora" : "");
  }
}

} // namespace

void readAdapter(const std::string &dir, const plan::Plan &plan, std::vector<std::vector<float>> &a,
                 std::vector<std::vector<float>> &b) {
  if (gguf::isGgufFile(dir)) {
    readGgufAdapter(dir, plan, a, b);
    return;
  }
  fs::path file = fs::path(dir) / "adapter_model.safetensors";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": adapter directory not found");
  if (!fs::exists(file, ec)) throw std::runtime_error(file.string() + ": missing (not a PEFT adapter directory)");
  std::map<std::string, util::TensorF32> tensors = util::readSafetensors(file.string());

  // A different lora_alpha changes the compiled scale: warn, the shapes still fit.
  fs::path configPath = fs::path(dir) / "adapter_config.json";
  if (fs::exists(configPath, ec)) {
    try {
      std::vector<uint8_t> bytes = util::readFile(configPath.string());
      json c = util::parseJson(bytes.data(), bytes.size());
      if (c.contains("lora_alpha") && c["lora_alpha"].is_number() &&
          std::fabs(c["lora_alpha"].get<double>() - plan.lora_alpha) > 1e-9)
        std::fprintf(stderr, "warning: %s has lora_alpha %g, the plan was compiled with %g: the adapter's scale differs\n",
                     configPath.string().c_str(), c["lora_alpha"].get<double>(), plan.lora_alpha);
      if (c.contains("use_rslora") && c["use_rslora"].is_boolean() && c["use_rslora"].get<bool>() != plan.rslora)
        std::fprintf(stderr, "warning: %s has use_rslora %s, the plan was compiled with %s\n", configPath.string().c_str(),
                     c["use_rslora"].get<bool>() ? "true" : "false", plan.rslora ? "true" : "false");
    } catch (const std::exception &) {
      std::fprintf(stderr, "warning: %s is not valid JSON; ignored\n", configPath.string().c_str());
    }
  }

  a.assign(plan.adapters.size(), {});
  b.assign(plan.adapters.size(), {});
  auto take = [&](const std::string &name, std::vector<int64_t> shape, std::vector<float> &out) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error(file.string() + ": tensor '" + name + "' not found");
    if (it->second.shape != shape) {
      auto text = [](const std::vector<int64_t> &s) {
        std::string t = "[";
        for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
        return t + "]";
      };
      throw std::runtime_error(file.string() + ": tensor '" + name + "' has shape " + text(it->second.shape) +
                               " but the plan expects " + text(shape));
    }
    out = std::move(it->second.data);
  };
  for (size_t i = 0; i < plan.adapters.size(); ++i) {
    const plan::Adapter &ad = plan.adapters[i];
    take(peftName(ad.module, 'A'), {ad.rank, ad.in_features}, a[i]);
    take(peftName(ad.module, 'B'), {ad.out_features, ad.rank}, b[i]);
  }
}

} // namespace tessera::train
