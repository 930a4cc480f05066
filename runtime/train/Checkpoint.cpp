// Checkpoint.cpp - OUT/checkpoint/ (Checkpoint.h).
#include "runtime/train/Checkpoint.h"

#include "runtime/util/File.h"
#include "runtime/util/Json.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cstdio>
#include <memory>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;
using nlohmann::json;

namespace tessera::train {

namespace {
// 2: state.json records the tensor file's checksum.
constexpr int kFormat = 2;

} // namespace

std::string checkpointDir(const std::string &out) { return (fs::path(out) / "checkpoint").string(); }

std::string fileHash(const std::string &path) {
  util::MappedFile f(path);
  return util::fnv1a64Hex(f.data(), f.size());
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
    try {
      std::vector<uint8_t> bytes = util::readFile(statePath.string());
      json st = util::parseJson(bytes.data(), bytes.size());
      if (st.is_object() && st.contains("tensors") && st["tensors"].is_string()) previous = st["tensors"];
    } catch (const std::exception &) { // a damaged state.json is replaced below
    }
  }
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.safetensors", (long long)s.step);
  std::vector<util::TensorF32> tensors;
  for (const auto &[key, t] : s.tensors) tensors.push_back(t);
  std::vector<uint8_t> bytes =
      util::serializeSafetensors((dir / name).string(), tensors, {{"format", "pt"}, {"tessera", "checkpoint"}});
  util::writeFileAtomic((dir / name).string(), bytes.data(), bytes.size());
  json st = {{"format", kFormat}, {"step", s.step}, {"updates", s.updates}, {"skipped_steps", s.skipped_steps},
             {"tensors", name}, {"tensors_fnv1a64", util::fnv1a64Hex(bytes.data(), bytes.size())}};
  json settings = json::object();
  for (const auto &[k, v] : s.settings) settings[k] = v;
  st["settings"] = settings;
  util::writeFileAtomic(statePath.string(), st.dump(1) + "\n");
  if (!previous.empty() && previous != name && previous.find('/') == std::string::npos) fs::remove(dir / previous, ec);
  // Temporary files of a write that a killed run left behind.
  for (const fs::directory_entry &e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) fs::remove(e.path(), ec);
}

CheckpointState parseCheckpointState(const uint8_t *bytes, size_t size, const std::string &path) {
  auto bad = [&](const std::string &why) { return CheckpointError(util::oneLine(path + ": " + why)); };
  json st;
  try {
    st = util::parseJson(bytes, size);
  } catch (const util::JsonError &) {
    throw bad("not valid JSON");
  }
  if (!st.is_object()) throw bad("not valid JSON");
  if (!st.contains("format") || !st["format"].is_number_integer()) throw bad("unknown checkpoint format");
  if (st["format"] != kFormat)
    throw bad("checkpoint format " + util::describeJson(st["format"]) + ", this tessera reads format " +
              std::to_string(kFormat));
  CheckpointState s;
  int64_t *fields[] = {&s.step, &s.updates, &s.skipped_steps};
  const char *names[] = {"step", "updates", "skipped_steps"};
  for (int i = 0; i < 3; ++i) {
    auto it = st.find(names[i]);
    if (it == st.end() || !it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0) ||
        (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)))
      throw bad(std::string("'") + names[i] + "' must be a non-negative integer");
    *fields[i] = it->get<int64_t>();
  }
  // Every step either applied one update or was skipped.
  if (s.updates > s.step || s.skipped_steps != s.step - s.updates)
    throw bad("'updates' (" + std::to_string(s.updates) + ") + 'skipped_steps' (" + std::to_string(s.skipped_steps) +
              ") must equal 'step' (" + std::to_string(s.step) + ")");
  if (!st.contains("tensors") || !st["tensors"].is_string()) throw bad("'tensors' must name the tensor file");
  if (!st.contains("tensors_fnv1a64") || !st["tensors_fnv1a64"].is_string() ||
      st["tensors_fnv1a64"].get<std::string>().size() != 16)
    throw bad("'tensors_fnv1a64' must be the tensor file's checksum (16 hex digits)");
  if (!st.contains("settings") || !st["settings"].is_object()) throw bad("'settings' must be an object");
  for (const auto &[k, v] : st["settings"].items()) {
    if (!v.is_string()) throw bad("setting '" + k + "' must be a string");
    s.settings.emplace_back(k, v.get<std::string>());
  }
  s.tensor_file = st["tensors"];
  s.tensor_hash = st["tensors_fnv1a64"];
  if (s.tensor_file.empty() || s.tensor_file.find('/') != std::string::npos ||
      s.tensor_file.find('\\') != std::string::npos || s.tensor_file == "." || s.tensor_file == "..")
    throw bad("'tensors' must be a file name in the checkpoint directory");
  return s;
}

void parseCheckpointTensors(CheckpointState &s, const uint8_t *bytes, size_t size, const std::string &path) {
  if (util::fnv1a64Hex(bytes, size) != s.tensor_hash)
    throw CheckpointError(path + ": checksum mismatch: the tensor file is damaged");
  try {
    s.tensors = util::parseSafetensors(bytes, size, path);
  } catch (const std::runtime_error &e) {
    throw CheckpointError(util::oneLine(e.what()));
  }
}

std::optional<CheckpointState> readCheckpoint(const std::string &out) {
  fs::path dir = checkpointDir(out), statePath = dir / "state.json";
  std::error_code ec;
  if (!fs::exists(statePath, ec)) return std::nullopt;
  std::vector<uint8_t> bytes;
  try {
    bytes = util::readFile(statePath.string());
  } catch (const std::runtime_error &e) {
    throw CheckpointError(e.what());
  }
  CheckpointState s = parseCheckpointState(bytes.data(), bytes.size(), statePath.string());
  fs::path tensorPath = dir / s.tensor_file;
  std::unique_ptr<util::MappedFile> file;
  try {
    file = std::make_unique<util::MappedFile>(tensorPath.string());
  } catch (const std::runtime_error &e) {
    throw CheckpointError(e.what());
  }
  parseCheckpointTensors(s, file->data(), file->size(), tensorPath.string());
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
