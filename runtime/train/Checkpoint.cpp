// Checkpoint.cpp - OUT/checkpoint/ (Checkpoint.h).
#include "runtime/train/Checkpoint.h"

#include "runtime/util/File.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;
using nlohmann::json;

namespace tessera::train {

namespace {
constexpr int kFormat = 1;
}

std::string checkpointDir(const std::string &out) { return (fs::path(out) / "checkpoint").string(); }

std::string fileHash(const std::string &path) {
  util::MappedFile f(path);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < f.size(); ++i) {
    h ^= f.data()[i];
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
  return hex;
}

void writeCheckpoint(const std::string &out, const CheckpointState &s) {
  fs::path dir = checkpointDir(out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create: " + ec.message());
  fs::path statePath = dir / "state.json";
  // The tensor file this checkpoint replaces, removed once state.json points elsewhere.
  std::string previous;
  if (fs::exists(statePath, ec)) {
    json st = json::parse(util::readFile(statePath.string()), nullptr, false);
    if (st.is_object() && st.contains("tensors") && st["tensors"].is_string()) previous = st["tensors"];
  }
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.safetensors", (long long)s.step);
  std::vector<util::TensorF32> tensors;
  for (const auto &[key, t] : s.tensors) tensors.push_back(t);
  util::writeSafetensors((dir / name).string(), tensors, {{"format", "pt"}, {"tessera", "checkpoint"}});
  json st = {{"format", kFormat}, {"step", s.step}, {"updates", s.updates}, {"skipped_steps", s.skipped_steps},
             {"tensors", name}};
  json settings = json::object();
  for (const auto &[k, v] : s.settings) settings[k] = v;
  st["settings"] = settings;
  util::writeFileAtomic(statePath.string(), st.dump(1) + "\n");
  if (!previous.empty() && previous != name) fs::remove(dir / previous, ec);
  // Temporary files of a write that a killed run left behind.
  for (const fs::directory_entry &e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) fs::remove(e.path(), ec);
}

std::optional<CheckpointState> readCheckpoint(const std::string &out) {
  fs::path dir = checkpointDir(out), statePath = dir / "state.json";
  std::error_code ec;
  if (!fs::exists(statePath, ec)) return std::nullopt;
  std::vector<uint8_t> bytes = util::readFile(statePath.string());
  json st = json::parse(bytes, nullptr, false);
  auto bad = [&](const std::string &why) {
    return std::runtime_error(statePath.string() + ": " + why + " (delete " + dir.string() + " to start over)");
  };
  if (!st.is_object()) throw bad("not valid JSON");
  if (!st.contains("format") || st["format"] != kFormat) throw bad("unknown checkpoint format");
  for (const char *k : {"step", "updates", "skipped_steps"})
    if (!st.contains(k) || !st[k].is_number_integer() || st[k].get<int64_t>() < 0)
      throw bad(std::string("'") + k + "' must be a non-negative integer");
  if (!st.contains("tensors") || !st["tensors"].is_string()) throw bad("'tensors' must name the tensor file");
  if (!st.contains("settings") || !st["settings"].is_object()) throw bad("'settings' must be an object");
  CheckpointState s;
  s.step = st["step"];
  s.updates = st["updates"];
  s.skipped_steps = st["skipped_steps"];
  for (const auto &[k, v] : st["settings"].items()) {
    if (!v.is_string()) throw bad("setting '" + k + "' must be a string");
    s.settings.emplace_back(k, v.get<std::string>());
  }
  std::string tensorFile = st["tensors"];
  if (tensorFile.find('/') != std::string::npos || tensorFile.find('\\') != std::string::npos)
    throw bad("'tensors' must be a file name in the checkpoint directory");
  s.tensors = util::readSafetensors((dir / tensorFile).string());
  return s;
}

void checkSameRun(const CheckpointState &c, const RunSettings &now, const std::string &out) {
  std::map<std::string, std::string> saved(c.settings.begin(), c.settings.end());
  for (const auto &[k, v] : now) {
    auto it = saved.find(k);
    std::string was = it == saved.end() ? "(not recorded)" : it->second;
    if (was != v)
      throw std::runtime_error(checkpointDir(out) + ": the checkpoint was made with " + k + " " + was +
                               ", this run has " + v + ": resume with the same settings, or train into another --out");
  }
}

} // namespace tessera::train
