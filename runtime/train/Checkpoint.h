// Checkpoint.h - the resumable state of a training run, in OUT/checkpoint/:
//   state.json              steps done, AdamW updates applied, the run's
//                           settings, the name of the tensor file and its
//                           FNV-1a 64 checksum (a flipped bit is an error)
//   step-<S>.safetensors    per adapter: lora_A and lora_B (PEFT's names) and
//                           their AdamW moments (<name>.exp_avg, .exp_avg_sq)
// The tensor file is complete before state.json is replaced (atomically) to
// point at it, and the previous tensor file is removed only after that: a
// run killed at any moment leaves the last complete checkpoint readable.
// Everything else a step depends on (batches, learning rate, dropout masks)
// is a function of the step number, so `tessera train --resume` continues
// exactly where the checkpoint was taken (docs/training.md).
#pragma once

#include "runtime/util/Safetensors.h"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tessera::train {

// The settings a resumed run must share with the checkpoint, as (name, value)
// text pairs: the plan and data (by content hash), the step count, the
// optimizer and schedule flags, the seed.
using RunSettings = std::vector<std::pair<std::string, std::string>>;

struct CheckpointState {
  int64_t step = 0;          // optimizer steps done
  int64_t updates = 0;       // AdamW updates applied (skipped steps apply none)
  int64_t skipped_steps = 0; // updates + skipped_steps == step
  RunSettings settings;
  std::map<std::string, util::TensorF32> tensors;
  std::string tensor_file, tensor_hash; // as recorded in state.json (filled by reading)
};

// A checkpoint that exists but cannot be used: damaged, truncated, of
// another format. The message names the file and says how to discard it.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string checkpointDir(const std::string &out); // OUT/checkpoint

void writeCheckpoint(const std::string &out, const CheckpointState &state);

// The checkpoint in OUT/checkpoint, or nullopt when there is none. A
// checkpoint that cannot be read throws CheckpointError naming the file.
std::optional<CheckpointState> readCheckpoint(const std::string &out);

// The two halves of readCheckpoint, on bytes (also the fuzz harness's entry):
// state.json (`path` names it in errors; tensors left empty), then the tensor
// file, verified against the checksum state.json recorded.
CheckpointState parseCheckpointState(const uint8_t *bytes, size_t size, const std::string &path);
void parseCheckpointTensors(CheckpointState &state, const uint8_t *bytes, size_t size, const std::string &path);

// Throws, naming the first setting that differs, unless `now` equals the
// checkpoint's settings.
void checkSameRun(const CheckpointState &checkpoint, const RunSettings &now, const std::string &out);

// FNV-1a 64 of a file's bytes, as 16 hex digits (settings identify the plan
// and the data by content, not by path).
std::string fileHash(const std::string &path);

} // namespace tessera::train
