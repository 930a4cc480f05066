// Trainer.h - the training and evaluation loops behind `tessera train` and
// `tessera eval`. Every failure throws std::runtime_error (or a subclass) with
// a one-line message; the CLI prints it as `error: ...`.
#pragma once

#include "runtime/data/Prepare.h"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace tessera::train {

// Raw text or chat data through a tokenizer (runtime/data/Prepare.h);
// tokenizer "" = the data is already {"input_ids", "labels"} JSONL.
struct TextData {
  std::string tokenizer;
  data::PrepareOptions prepare; // prepare.seq is the plan's
};

struct TrainOptions {
  std::string plan, weights, data;
  int64_t steps = 0;
  std::optional<double> lr;         // default: the plan's lr
  std::string out = "tessera-adapter";
  std::string metrics;              // JSONL, one object per step ("" = none)
  int device = 0;
  std::string init_adapter;         // PEFT adapter directory to start from ("" = fresh init)
  std::string dump_grads;           // safetensors with step-1 values and gradients ("" = none)
  std::optional<uint64_t> seed;     // default: the plan's seed
  // Optimizer step (docs/training.md). Unset AdamW values come from the plan
  // (torch's defaults: beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01).
  std::string lr_schedule = "constant"; // constant | linear | cosine
  int64_t warmup_steps = 0;
  double max_grad_norm = 0;         // <= 0: no clipping
  int64_t grad_accum = 0;           // micro-batches of `batch` lines per optimizer step; 0: the plan's (target.grad_accum)
  std::optional<double> weight_decay, beta1, beta2, eps;
  // Checkpoints (runtime/train/Checkpoint.h): OUT/checkpoint every N steps
  // and at the end (0: never); --resume continues from it.
  int64_t checkpoint_every = 50;
  bool resume = false;
  TextData text;
  // Validation: a separate file, or the last fraction of the data; an eval
  // loss every eval_every steps (0: at each checkpoint and at the end).
  std::string val_data;
  double val_split = 0;
  int64_t eval_every = 0;
  // Passes over the data instead of --steps (steps = ceil(epochs * lines / (batch * grad_accum))).
  double epochs = 0;
  bool robust_access = false; // robustBufferAccess(2): defence in depth against a hostile plan
  std::string pipeline_cache; // pipeline cache folder ("" : none; the CLI resolves the default)
  std::string dispatch_profile; // TSV of train_step's per-dispatch GPU times, median over steps ("" = none)
};

// Training stopped by SIGINT/SIGTERM after a checkpoint (the CLI exits with 130).
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct EvalOptions {
  std::string plan, weights, data;
  int device = 0;
  std::string init_adapter;
  std::string losses; // JSONL, one {"batch", "first_line", "loss", "tokens"} per batch ("" = none)
  TextData text;
  bool robust_access = false;
  std::string pipeline_cache; // as TrainOptions::pipeline_cache
};

struct TrainResult {
  double final_loss = 0;
  int64_t steps = 0;         // the last step done
  int64_t resumed_from = 0;  // the checkpoint's step when resumed, else 0
  int64_t skipped_steps = 0; // steps whose micro-batches counted no token
};

struct EvalResult {
  double loss = 0;    // token-weighted mean
  int64_t tokens = 0; // labels != -100 at positions 1..T-1
};

TrainResult runTraining(const TrainOptions &options);
// Prints "eval loss <x.xxxxxx> over <N> tokens" on stdout.
EvalResult runEvaluation(const EvalOptions &options);

// LoRA A initialisation stream: splitmix64 seeded with `seed`; each value is
// (2u - 1) / sqrt(in_features) with u = (next() >> 11) * 2^-53, adapters in
// plan order, A row-major. Exposed for tests.
/// The LoRA dropout mask seed of micro-batch m of a run seeded `seed`
/// (hparams[kDropoutSeed]; docs/training.md): fmix32(seed * 0x9E3779B9 + m + 1)
/// in 24 bits, so that the f32 slot holds it exactly.
uint32_t dropoutSeed(uint64_t seed, int64_t microBatch);

class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform01() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

private:
  uint64_t state_;
};

} // namespace tessera::train
