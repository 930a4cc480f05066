#include "runtime/train/Trainer.h"

#include "runtime/data/Dataset.h"
#include "runtime/plan/Plan.h"
#include "runtime/train/AdapterIO.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/DispatchProfile.h"
#include "runtime/train/LossPlot.h"
#include "runtime/train/LrSchedule.h"
#include "runtime/train/MetricsLog.h"
#include "runtime/train/OutputLock.h"
#include "runtime/train/Progress.h"
#include "runtime/util/File.h"
#include "runtime/util/Safetensors.h"
#include "runtime/vulkan/Executor.h"
#include "runtime/weights/OnnxWeights.h"
#include "runtime/weights/GgufWeights.h"
#include "runtime/weights/QuantizedWeights.h"
#include "runtime/weights/TernaryWeights.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>


namespace tessera::train {

uint32_t dropoutSeed(uint64_t seed, int64_t microBatch) {
  uint32_t h = uint32_t(seed) * 0x9E3779B9u + uint32_t(microBatch) + 1u;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h & 0xFFFFFFu;
}

namespace {

using Clock = std::chrono::steady_clock;

weights::OnnxWeights::Storage weightStorage(plan::DType t) {
  switch (t) {
  case plan::DType::F16: return weights::OnnxWeights::Storage::F16;
  case plan::DType::BF16: return weights::OnnxWeights::Storage::BF16;
  default: return weights::OnnxWeights::Storage::F32;
  }
}

// Ctrl-C / SIGTERM during training: finish the step, write a checkpoint,
// stop. A second signal ends the process at once (the last checkpoint stays).
volatile std::sig_atomic_t gStopRequested = 0;
extern "C" void onStopSignal(int sig) {
  if (gStopRequested) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  gStopRequested = 1;
}
struct StopSignals {
  StopSignals() {
    gStopRequested = 0;
    previousInt = std::signal(SIGINT, onStopSignal);
    previousTerm = std::signal(SIGTERM, onStopSignal);
  }
  ~StopSignals() {
    std::signal(SIGINT, previousInt);
    std::signal(SIGTERM, previousTerm);
  }
  void (*previousInt)(int);
  void (*previousTerm)(int);
};
using plan::BufferKind;

struct AdamW {
  double beta1, beta2, eps, weight_decay;
};


// Everything train and eval share: plan, data, weights, device, buffers.
class Session {
public:
  Session(const std::string &planPath, const std::string &weightsPath, const std::string &dataPath, int device,
          const std::string &initAdapter, std::optional<uint64_t> seed, const char *program,
          const TextData &text = TextData(), bool robustAccess = false, const std::string &pipelineCache = "",
          bool dispatchTimestamps = false)
      : plan_(readPlan(planPath, planHash_)), planPath_(planPath), text_(text) {
    // Check the plan has what this command needs before touching the GPU.
    if (!plan_.program(program))
      throw std::runtime_error(planPath + ": the plan has no program '" + program + "'");
    auto need = [&](int64_t idx, const char *what) {
      if (idx < 0) throw std::runtime_error(planPath + ": the plan declares no " + what + " buffer");
    };
    need(plan_.input_ids, "input_ids");
    need(plan_.labels, "labels");
    need(plan_.loss, "loss");
    if (std::string(program) == "train_step") need(plan_.hparams, "hparams");
    if (plan_.batch <= 0 || plan_.seq <= 0)
      throw std::runtime_error(planPath + ": batch and seq must be positive (batch " + std::to_string(plan_.batch) +
                               ", seq " + std::to_string(plan_.seq) + ")");

    data_ = loadData(dataPath);
    // JSONL is hashed as it is read (a FIFO cannot be opened twice); prepared text by its file.
    dataHash_ = !data_->contentHash().empty() ? data_->contentHash() : fileHash(dataPath);
    size_t longer = data_->countLongerThan(plan_.seq);
    if (longer)
      std::fprintf(stderr, "warning: %zu of %zu lines of %s are longer than %lld tokens and are truncated\n", longer,
                   data_->size(), dataPath.c_str(), (long long)plan_.seq);
    batcher_ = std::make_unique<data::Batcher>(*data_, plan_.batch, plan_.seq);

    // Weights: index the ONNX file and check every weight before allocating.
    bool anyWeights = false;
    for (const plan::Buffer &b : plan_.buffers) anyWeights = anyWeights || (b.kind == BufferKind::Weight && b.alias_of < 0);
    if (anyWeights) {
      if (weightsPath.empty()) throw std::runtime_error(planPath + ": the plan needs frozen weights: pass --weights MODEL.onnx");
      bool planForGguf = false;
      for (const plan::Buffer &b : plan_.buffers) planForGguf = planForGguf || !b.gguf.tensor.empty();
      if (weights::isGgufFile(weightsPath)) {
        // A llama.cpp base: every weight's tensor by name (docs/quantization.md).
        gguf_ = std::make_unique<weights::GgufWeights>(weightsPath);
        for (const plan::Buffer &b : plan_.buffers)
          if (b.kind == BufferKind::Weight && b.alias_of < 0) gguf_->check(b);
      } else if (planForGguf) {
        throw std::runtime_error(planPath + ": the plan was compiled for a GGUF base (tensor names such as '" +
                                 [&] {
                                   for (const plan::Buffer &b : plan_.buffers)
                                     if (!b.gguf.tensor.empty()) return b.gguf.tensor;
                                   return std::string();
                                 }() +
                                 "'): pass --weights BASE.gguf, not " + weightsPath);
      } else {
      weights_ = std::make_unique<weights::OnnxWeights>(weightsPath);
      for (size_t i = 0; i < plan_.buffers.size(); ++i) {
        const plan::Buffer &b = plan_.buffers[i];
        if (b.kind != BufferKind::Weight || b.alias_of >= 0) continue;
        if (b.dtype == plan::DType::I32)
          throw std::runtime_error(planPath + ": weight buffer '" + b.name + "' has dtype i32, not a float or block type");
        if (!weights_->contains(b.name))
          throw std::runtime_error(weightsPath + ": initializer '" + b.name + "' not found (the plan was compiled from " +
                                   (plan_.model_file.empty() ? std::string("another model") : "'" + plan_.model_file + "'") + ")");
        uint64_t n = 1;
        std::vector<int64_t> full = weights_->shape(b.name);
        for (int64_t d : full) n *= uint64_t(d);
        // A tile holds rows [row_offset, row_offset + shape[0]) of the initializer;
        // a ternary scale is one value derived from the whole of it.
        bool fits = b.ternary == plan::Ternary::Scale ? !full.empty()
                    : b.row_offset < 0
                        ? plan::bufferBytes(b.dtype, n) == b.bytes
                        : !b.shape.empty() && full.size() == b.shape.size() &&
                              std::equal(full.begin() + 1, full.end(), b.shape.begin() + 1) &&
                              uint64_t(b.row_offset) + uint64_t(b.shape[0]) <= uint64_t(full[0]);
        if (!fits) {
          std::vector<int64_t> s = full;
          std::string shape = "[";
          for (size_t d = 0; d < s.size(); ++d) shape += (d ? "," : "") + std::to_string(s[d]);
          std::string want = "[";
          for (size_t d = 0; d < b.shape.size(); ++d) want += (d ? "," : "") + std::to_string(b.shape[d]);
          throw std::runtime_error(weightsPath + ": initializer '" + b.name + "' has shape " + shape + "]" +
                                   " but the plan expects " +
                                   (b.row_offset >= 0 ? "rows from " + std::to_string(b.row_offset) + " of " : "") +
                                   want + "]");
        }
      }
      }
    }

    // Adapter values (read before the GPU so a bad adapter fails fast).
    if (!initAdapter.empty()) {
      readAdapter(initAdapter, plan_, initA_, initB_);
      std::fprintf(stderr, "adapter: %zu LoRA modules from %s\n", plan_.adapters.size(), initAdapter.c_str());
    }
    seed_ = seed ? *seed : plan_.seed;

    ctx_ = std::make_unique<vk::Context>(device, vk::ContextOptions{robustAccess});
    // The weights stream in while worker threads create the pipelines.
    vk::ExecutorOptions eo;
    eo.pipeline_cache_dir = pipelineCache;
    eo.dispatch_timestamps = dispatchTimestamps;
    eo.fill = [&](vk::Executor &exec) {
      char host[96] = "";
      if (exec.hostAllocatedBytes())
        std::snprintf(host, sizeof(host), " (and %.1f MiB of streamed weights in host memory)",
                      double(exec.hostAllocatedBytes()) / (1024.0 * 1024.0));
      std::fprintf(stderr, "device %d: %s (%s), %.1f MiB of buffers%s%s%s\n", device, ctx_->info().name.c_str(),
                   ctx_->info().type.c_str(), double(exec.allocatedBytes()) / (1024.0 * 1024.0), host,
                   ctx_->robustAccess().empty() ? "" : ", ", ctx_->robustAccess().c_str());
      fillBuffers(exec);
    };
    exec_ = std::make_unique<vk::Executor>(*ctx_, plan_, eo);
    if (size_t copies = exec_->hasProgram("train_step") ? exec_->transferCount("train_step") : 0) {
      const size_t batches = exec_->batchCount("train_step"), segments = exec_->segmentCount("train_step");
      if (exec_->copiesOnTransferQueue())
        std::fprintf(stderr, "streamed weights: %zu copies a step as transfers on the copy engines' queue (family %u) in "
                             "%zu batches beside %zu compute segments\n", copies, ctx_->transferFamily(), batches, segments);
      else if (batches)
        std::fprintf(stderr, "streamed weights: %zu copies a step as transfers in %zu batches between %zu compute segments "
                             "(one queue)\n", copies, batches, segments);
      else
        std::fprintf(stderr, "streamed weights: %zu copies a step as transfers, each overlapping the dispatches ahead of "
                             "its readers\n", copies);
    }
    const vk::StartupStats &st = exec_->startup();
    std::fprintf(stderr, "startup: %s, weights %s in %.1f s; ready %.1f s after launch\n",
                 vk::describePipelines(st).c_str(), vk::describeBytes(weightBytes_).c_str(), st.fill_s,
                 std::chrono::duration<double>(Clock::now() - vk::processStart()).count());
  }

  const plan::Plan &plan() const { return plan_; }
  // Content hashes of the plan and the data as read (each file is read once).
  const std::string &planHash() const { return planHash_; }
  const std::string &dataHash() const { return dataHash_; }
  data::Batcher &batcher() { return *batcher_; }
  const data::Dataset &dataset() const { return *data_; }

  // JSONL token ids, or text/chat data through the tokenizer (TextData).
  std::unique_ptr<data::Dataset> loadData(const std::string &path) {
    if (text_.tokenizer.empty())
      return std::make_unique<data::Dataset>(data::Dataset::readJsonl(path, plan_.vocab));
    if (!tokenizer_) {
      tokenizer_ = std::make_unique<text::Tokenizer>(text::Tokenizer::fromDirectory(text_.tokenizer));
      if (plan_.vocab > 0 && tokenizer_->vocabSize() > plan_.vocab)
        throw std::runtime_error(text_.tokenizer + ": the tokenizer has " + std::to_string(tokenizer_->vocabSize()) +
                                 " tokens but the model's embedding has " + std::to_string(plan_.vocab) +
                                 " rows: this tokenizer does not belong to the model of " + planPath_);
      std::fprintf(stderr, "tokenizer: %s (%s)\n", text_.tokenizer.c_str(), tokenizer_->describe().c_str());
    }
    data::PrepareOptions po = text_.prepare;
    po.seq = plan_.seq;
    data::Preparer prep(*tokenizer_, po);
    data::PrepareStats stats;
    std::vector<data::Sample> samples = prep.prepareFile(path, stats);
    for (const std::string &m : stats.skippedMessages) std::fprintf(stderr, "skipped: %s\n", m.c_str());
    if (stats.truncated)
      std::fprintf(stderr, "warning: %zu samples of %s were longer than %lld tokens and were truncated "
                           "(--drop-long drops them)\n", stats.truncated, path.c_str(), (long long)plan_.seq);
    std::fprintf(stderr, "data: %s: %s\n", path.c_str(), stats.summary().c_str());
    std::vector<std::vector<int32_t>> ids, labels;
    for (data::Sample &x : samples) {
      ids.push_back(std::move(x.ids));
      labels.push_back(std::move(x.labels));
    }
    return std::make_unique<data::Dataset>(data::Dataset::fromRows(ids, labels, path, plan_.vocab));
  }

  // Validation data: a file, or the last `fraction` of the lines (taken out of training).
  void setValidation(const std::string &path, double fraction) {
    if (!path.empty()) {
      val_ = loadData(path);
    } else if (fraction > 0) {
      if (!(fraction < 1)) throw std::runtime_error("--val-split must be in (0, 1)");
      size_t n = data_->size(), held = std::max<size_t>(1, size_t(std::ceil(double(n) * fraction)));
      if (held >= n) throw std::runtime_error("--val-split " + std::to_string(fraction) + " leaves no training lines (" +
                                              std::to_string(n) + " lines)");
      val_ = std::make_unique<data::Dataset>(data_->slice(n - held, n));
      data_ = std::make_unique<data::Dataset>(data_->slice(0, n - held));
      batcher_ = std::make_unique<data::Batcher>(*data_, plan_.batch, plan_.seq);
    }
    if (val_) valBatcher_ = std::make_unique<data::Batcher>(*val_, plan_.batch, plan_.seq);
  }
  bool hasValidation() const { return valBatcher_ != nullptr; }
  size_t validationLines() const { return val_ ? val_->size() : 0; }

  // The token-weighted mean loss of the plan's eval program over `batcher`.
  // Token-weighted mean loss over every batch of b; with perBatch, one
  // {"batch", "first_line", "loss", "tokens"} JSON line per counted batch.
  std::pair<double, int64_t> evaluate(const data::Batcher &b, double *gpuMs = nullptr, size_t *gpuRuns = nullptr,
                                      std::string *perBatch = nullptr) {
    double weighted = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < b.evalBatches(); ++i) {
      data::Batch batch = b.evalBatch(i);
      int64_t n = batch.countedTokens();
      if (n == 0) continue; // nothing counted: the batch cannot change the mean
      upload(batch);
      vk::ProgramTiming t = exec_->run("eval");
      float l = loss();
      if (!std::isfinite(l))
        throw std::runtime_error("the eval loss of batch " + std::to_string(i + 1) + " is not finite (" + std::to_string(l) + ")");
      weighted += double(l) * double(n);
      tokens += n;
      if (perBatch) {
        char line[160];
        std::snprintf(line, sizeof(line), "{\"batch\": %zu, \"first_line\": %zu, \"loss\": %.9g, \"tokens\": %lld}\n",
                      i + 1, i * size_t(plan_.batch) + 1, double(l), (long long)n);
        *perBatch += line;
      }
      if (gpuMs && t.gpu_ms >= 0) {
        *gpuMs += t.gpu_ms;
        ++*gpuRuns;
      }
    }
    return {tokens ? weighted / double(tokens) : 0.0, tokens};
  }
  std::pair<double, int64_t> evaluateValidation() { return evaluate(*valBatcher_); }
  vk::Executor &exec() { return *exec_; }
  int64_t tokensPerBatch() const { return plan_.batch * plan_.seq; }

  void upload(const data::Batch &b) {
    std::memcpy(exec_->i32(size_t(plan_.input_ids)), b.input_ids.data(), b.input_ids.size() * 4);
    std::memcpy(exec_->i32(size_t(plan_.labels)), b.labels.data(), b.labels.size() * 4);
  }

  // Whether the plan splits a step into train_step (gradients, accumulated)
  // and optimizer_step (clipping, AdamW): plans of this version do.
  bool staged() const {
    return plan_.program("optimizer_step") && plan_.hparams >= 0 &&
           plan_.buffers[size_t(plan_.hparams)].bytes >= 4 * plan::kNumHParams && gradNormBuffer() >= 0;
  }
  int64_t gradNormBuffer() const {
    for (size_t i = 0; i < plan_.buffers.size(); ++i)
      if (plan_.buffers[i].kind == BufferKind::Output && plan_.buffers[i].name == "grad_norm" &&
          plan_.buffers[i].bytes >= 4 * plan::kGradNormSize)
        return int64_t(i);
    return -1;
  }

  // `step` is the 1-based count of optimizer updates (bias correction).
  void writeHParams(const AdamW &o, double lr, int64_t step, double maxGradNorm = 0, int64_t accum = 1) {
    if (plan_.hparams < 0) return;
    float *h = exec_->f32(size_t(plan_.hparams));
    h[plan::kLearningRate] = float(lr);
    h[plan::kBeta1] = float(o.beta1);
    h[plan::kBeta2] = float(o.beta2);
    h[plan::kEpsilon] = float(o.eps);
    h[plan::kWeightDecay] = float(o.weight_decay);
    h[plan::kBiasCorrection1] = float(1.0 - std::pow(o.beta1, double(step)));
    h[plan::kBiasCorrection2] = float(1.0 - std::pow(o.beta2, double(step)));
    h[plan::kStep] = float(step);
    if (plan_.buffers[size_t(plan_.hparams)].bytes >= 4 * plan::kNumHParams) {
      h[plan::kMaxGradNorm] = float(maxGradNorm > 0 ? maxGradNorm : 0.0);
      h[plan::kGradScale] = float(1.0 / double(accum));
    }
  }

  // Plans with LoRA dropout: the mask seed of micro-batch m (0-based over
  // the run: (step - 1) * K + k), so that every micro-batch draws new masks
  // and a run with the same --seed draws the same ones.
  void writeDropoutSeed(int64_t microBatch) {
    if (plan_.hparams < 0 || plan_.buffers[size_t(plan_.hparams)].bytes < 4 * plan::kNumHParamsDropout) return;
    exec_->f32(size_t(plan_.hparams))[plan::kDropoutSeed] = float(dropoutSeed(seed_, microBatch));
  }

  uint64_t seed() const { return seed_; }

  // LoRA factors and AdamW moments under PEFT's names (+ .exp_avg, .exp_avg_sq).
  std::map<std::string, util::TensorF32> trainingState() const {
    std::map<std::string, util::TensorF32> out;
    for (const plan::Adapter &a : plan_.adapters)
      for (const auto &[name, shape, value, m, v] : factors(a)) {
        out[name] = {name, shape, read(value)};
        if (m >= 0) out[name + ".exp_avg"] = {name + ".exp_avg", shape, read(m)};
        if (v >= 0) out[name + ".exp_avg_sq"] = {name + ".exp_avg_sq", shape, read(v)};
      }
    return out;
  }
  void loadTrainingState(const std::map<std::string, util::TensorF32> &state, const std::string &where) {
    for (const plan::Adapter &a : plan_.adapters)
      for (const auto &[name, shape, value, m, v] : factors(a))
        for (auto [buffer, key] : {std::pair{value, name}, {m, name + ".exp_avg"}, {v, name + ".exp_avg_sq"}}) {
          if (buffer < 0) continue;
          auto it = state.find(key);
          if (it == state.end()) throw std::runtime_error(where + ": no tensor " + key + " (the plan has other adapters)");
          if (it->second.shape != shape)
            throw std::runtime_error(where + ": tensor " + key + " has another shape than the plan's adapter");
          std::memcpy(exec_->f32(size_t(buffer)), it->second.data.data(), it->second.data.size() * 4);
        }
  }

  AdamW planAdamW() const { return {plan_.beta1, plan_.beta2, plan_.eps, plan_.weight_decay}; }

  float loss() const { return exec_->f32(size_t(plan_.loss))[0]; }

  std::vector<float> read(int64_t buffer) const {
    const plan::Buffer &b = plan_.buffers[size_t(buffer)];
    const float *p = exec_->f32(size_t(buffer));
    return std::vector<float>(p, p + b.bytes / 4);
  }

private:
  struct Factor {
    std::string name;
    std::vector<int64_t> shape;
    int64_t value, m, v;
  };
  static std::vector<Factor> factors(const plan::Adapter &a) {
    return {{peftName(a.module, 'A'), {a.rank, a.in_features}, a.a, a.m_a, a.v_a},
            {peftName(a.module, 'B'), {a.out_features, a.rank}, a.b, a.m_b, a.v_b}};
  }

  void fillBuffers(vk::Executor &exec) {
    // Everything starts at zero: optimizer state, gradients, LoRA B, activations.
    for (size_t i = 0; i < plan_.buffers.size(); ++i)
      if (plan_.buffers[i].alias_of < 0) std::memset(exec.data(i), 0, plan_.buffers[i].bytes);
    size_t saturatedWeights = 0;
    for (size_t i = 0; i < plan_.buffers.size(); ++i) {
      const plan::Buffer &b = plan_.buffers[i];
      if (b.alias_of >= 0) continue;
      if (b.kind == BufferKind::Weight) weightBytes_ += b.bytes;
      if (b.kind == BufferKind::Weight && gguf_) {
        gguf_->loadInto(b, exec.data(i));
      } else if (b.kind == BufferKind::Weight && b.ternary != plan::Ternary::None) {
        weights::loadTernaryInto(*weights_, b, exec.data(i));
      } else if (b.kind == BufferKind::Weight && plan::isQuantized(b.dtype)) {
        weights::loadQuantizedInto(*weights_, b, exec.data(i));
      } else if (b.kind == BufferKind::Weight) {
        weights::OnnxWeights::Conversion c = weights_->loadInto(b.name, b.shape, weightStorage(b.dtype), exec.data(i), b.row_offset);
        // A half plan cannot hold them: say so (the run goes on with +-65504).
        if (c.saturated && saturatedWeights++ < 5)
          std::fprintf(stderr, "warning: weight '%s': %llu values beyond the f16 range (largest |value| %g) are saturated to +-65504\n",
                       b.name.c_str(), (unsigned long long)c.saturated, double(c.largest));
      } else if (b.kind == BufferKind::Constant) {
        std::memcpy(exec.data(i), plan_.blobs[size_t(b.init_blob)].data(), b.bytes);
      }
    }
    if (saturatedWeights > 5)
      std::fprintf(stderr, "warning: %zu more weights have values beyond the f16 range, saturated to +-65504\n",
                   saturatedWeights - 5);
    weights_.reset(); // unmap the model file
    gguf_.reset();
    if (!initA_.empty()) {
      for (size_t i = 0; i < plan_.adapters.size(); ++i) {
        const plan::Adapter &a = plan_.adapters[i];
        std::memcpy(exec.f32(size_t(a.a)), initA_[i].data(), initA_[i].size() * 4);
        std::memcpy(exec.f32(size_t(a.b)), initB_[i].data(), initB_[i].size() * 4);
      }
      initA_.clear();
      initB_.clear();
      return;
    }
    // PEFT's init: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
    SplitMix64 rng(seed_);
    for (const plan::Adapter &a : plan_.adapters) {
      float *A = exec.f32(size_t(a.a));
      double bound = 1.0 / std::sqrt(double(a.in_features));
      for (int64_t k = 0; k < a.rank * a.in_features; ++k) A[k] = float((2.0 * rng.uniform01() - 1.0) * bound);
    }
  }

  static plan::Plan readPlan(const std::string &path, std::string &hash) {
    std::vector<uint8_t> bytes;
    try {
      bytes = util::readFile(path);
    } catch (const std::runtime_error &e) {
      throw plan::PlanError(e.what());
    }
    hash = util::fnv1a64Hex(bytes.data(), bytes.size());
    return plan::parse(bytes, path);
  }

  std::string planHash_, dataHash_; // before plan_: readPlan fills planHash_ while plan_ is built
  plan::Plan plan_;
  std::string planPath_;
  TextData text_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::unique_ptr<data::Dataset> val_;
  std::unique_ptr<data::Batcher> valBatcher_;
  std::unique_ptr<data::Dataset> data_;
  std::unique_ptr<data::Batcher> batcher_;
  std::unique_ptr<weights::OnnxWeights> weights_;
  std::unique_ptr<weights::GgufWeights> gguf_; // --weights BASE.gguf
  std::vector<std::vector<float>> initA_, initB_;
  uint64_t seed_ = 0;
  uint64_t weightBytes_ = 0; // frozen weights written into the device's buffers
  std::unique_ptr<vk::Context> ctx_;
  std::unique_ptr<vk::Executor> exec_;
};

void dumpGrads(const std::string &path, const Session &s, const std::vector<std::vector<float>> &a0,
               const std::vector<std::vector<float>> &b0) {
  const plan::Plan &p = s.plan();
  std::vector<util::TensorF32> tensors;
  for (size_t i = 0; i < p.adapters.size(); ++i) {
    const plan::Adapter &a = p.adapters[i];
    std::vector<int64_t> shapeA{a.rank, a.in_features}, shapeB{a.out_features, a.rank};
    tensors.push_back({a.module + ".lora_A", shapeA, a0[i]});
    tensors.push_back({a.module + ".lora_B", shapeB, b0[i]});
    if (a.grad_a >= 0) tensors.push_back({a.module + ".lora_A.grad", shapeA, s.read(a.grad_a)});
    if (a.grad_b >= 0) tensors.push_back({a.module + ".lora_B.grad", shapeB, s.read(a.grad_b)});
    if (a.grad_a < 0 || a.grad_b < 0)
      std::fprintf(stderr, "warning: the plan has no gradient buffer for %s; not in %s\n", a.module.c_str(), path.c_str());
  }
  util::writeSafetensors(path, tensors);
}

// Returns false (and writes nothing) when a value is not finite.
bool writeCurrentAdapter(Session &s, const std::string &dir) {
  std::vector<std::vector<float>> a, b;
  for (const plan::Adapter &ad : s.plan().adapters) {
    a.push_back(s.read(ad.a));
    b.push_back(s.read(ad.b));
  }
  for (const auto *factors : {&a, &b})
    for (const std::vector<float> &f : *factors)
      for (float x : f)
        if (!std::isfinite(x)) return false;
  writeAdapter(dir, s.plan(), a, b);
  return true;
}

// "'NAME' (layer N, dispatch D of T in PROGRAM: KERNEL)": a non-finite
// search's find, named by its value (an ONNX node, so the layer).
std::string describeNonFinite(const plan::Plan &p, const std::string &program, const vk::Executor::NonFinite &nf) {
  const std::string &name = p.buffers[nf.buffer].name;
  const plan::Program &prog = *p.program(program);
  std::string layer;
  if (size_t at = name.find("layers."); at != std::string::npos) {
    size_t end = name.find_first_not_of("0123456789", at + 7);
    if (end > at + 7) layer = "layer " + name.substr(at + 7, end - at - 7) + ", ";
  }
  return "'" + name + "' (" + layer + "dispatch " + std::to_string(nf.dispatch + 1) + " of " +
         std::to_string(prog.dispatches.size()) + " in " + program + ": " +
         p.kernels[prog.dispatches[nf.dispatch].kernel].name + ")";
}

// Where the forward of `batch` first holds a NaN or an infinity (the eval
// program run again dispatch by dispatch, each output read back).
std::string whereNonFinite(Session &s, const data::Batch &batch) {
  if (!s.exec().hasProgram("eval")) return "";
  try {
    s.upload(batch);
    std::optional<vk::Executor::NonFinite> nf = s.exec().firstNonFinite("eval");
    if (!nf) return "; its forward on that batch is finite";
    return "; the first NaN or infinity of its forward is in " + describeNonFinite(s.plan(), "eval", *nf);
  } catch (const std::exception &) {
    return ""; // the report stays without it
  }
}

// Where a step whose losses were finite got a non-finite gradient norm: its
// micro-batches' train_step run again dispatch by dispatch (activations and
// gradient accumulators zeroed first); when every value is finite, the sum
// of squares overflowed, and the largest gradient is named instead.
std::string whereNonFiniteGradient(Session &s, const std::vector<std::pair<data::Batch, int64_t>> &microBatches) {
  try {
    const plan::Plan &p = s.plan();
    for (size_t k = 0; k < microBatches.size(); ++k) {
      s.upload(microBatches[k].first);
      s.writeDropoutSeed(microBatches[k].second);
      if (std::optional<vk::Executor::NonFinite> nf = s.exec().firstNonFinite("train_step", true))
        return "; the first NaN or infinity of its training step" +
               (microBatches.size() > 1 ? " (micro-batch " + std::to_string(k + 1) + ")" : std::string()) + " is in " +
               describeNonFinite(p, "train_step", *nf);
    }
    // Finite everywhere: the largest gradient (of the last micro-batch run).
    float largest = 0;
    std::string where;
    std::vector<float> g;
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      const plan::Buffer &b = p.buffers[i];
      if (b.kind != plan::BufferKind::Gradient || b.alias_of >= 0 || b.dtype != plan::DType::F32) continue;
      g.resize(b.bytes / 4);
      s.exec().read(i, g.data(), g.size() * 4);
      for (float x : g)
        if (std::fabs(x) > largest) largest = std::fabs(x), where = b.name;
    }
    char text[64];
    std::snprintf(text, sizeof(text), "%.3g", double(largest));
    return "; every value of its training step is finite: the sum of the gradients' squares overflows (the "
           "largest gradient, " + std::string(text) + ", is in '" + where + "')";
  } catch (const std::exception &) {
    return "";
  }
}

// Stops training at a non-finite value: the update of `step` was not applied,
// so the adapter on the GPU is the one after step - 1.
[[noreturn]] void stopWithLastGoodAdapter(Session &s, const std::string &what, int64_t step, const std::string &out) {
  std::string last = "the adapter after step " + std::to_string(step - 1);
  if (writeCurrentAdapter(s, out))
    throw std::runtime_error(what + ": stopped; " + last + " was written to " + out +
                             " (try a lower --lr or --max-grad-norm)");
  throw std::runtime_error(what + ": stopped; " + last + " is not finite either, so " + out +
                           " was not written (try a lower --lr or --max-grad-norm)");
}

void checkHyperParameter(const char *flag, double v, bool ok, const char *range) {
  if (std::isfinite(v) && ok) return;
  char value[32];
  std::snprintf(value, sizeof(value), "%g", v);
  throw std::runtime_error(std::string(flag) + " = " + value + " must be " + range);
}

} // namespace

TrainResult runTraining(const TrainOptions &options) {
  TrainOptions o = options;
  if (o.epochs < 0 || !std::isfinite(o.epochs)) throw std::runtime_error("--epochs must be a positive number");
  if (o.epochs > 0 && o.steps > 0) throw std::runtime_error("--steps and --epochs are alternatives: give one");
  if (o.steps < 1 && o.epochs <= 0) throw std::runtime_error("--steps must be at least 1");
  if (o.val_split < 0 || o.val_split >= 1) throw std::runtime_error("--val-split must be in [0, 1)");
  if (o.val_split > 0 && !o.val_data.empty()) throw std::runtime_error("--val-split and --val-data are alternatives: give one");
  if (o.eval_every < 0) throw std::runtime_error("--eval-every must be >= 0");
  if (o.grad_accum < 0) throw std::runtime_error("--grad-accum must be at least 1");
  if (o.warmup_steps < 0) throw std::runtime_error("--warmup-steps must be >= 0");
  LrSchedule schedule;
  schedule.kind = parseLrSchedule(o.lr_schedule);
  if (o.max_grad_norm < 0 || !std::isfinite(o.max_grad_norm))
    throw std::runtime_error("--max-grad-norm must be a positive number (0: no clipping)");
  // One run per --out (OutputLock.h); then clear what killed runs left there.
  OutputLock lock(o.out);
  size_t stale = util::removeStaleTemporaries(o.out) + util::removeStaleTemporaries(checkpointDir(o.out)) +
                 (o.metrics.empty() ? 0 : util::removeStaleTemporaries(o.metrics));
  if (stale)
    std::fprintf(stderr, "note: removed %zu temporary file(s) that an interrupted run left in or beside %s\n", stale,
                 o.out.c_str());
  Session s(o.plan, o.weights, o.data, o.device, o.init_adapter, o.seed, "train_step", o.text, o.robust_access,
            o.pipeline_cache, !o.dispatch_profile.empty());
  const plan::Plan &p = s.plan();
  std::optional<DispatchProfile> dispatchProfile;
  if (!o.dispatch_profile.empty()) dispatchProfile.emplace(p, "train_step");
  if (o.grad_accum == 0) {
    o.grad_accum = p.target.grad_accum; // what --memory-budget chose at compile time
    if (o.grad_accum > 1)
      std::fprintf(stderr, "gradient accumulation: %lld micro-batches of %lld lines per step (the plan's --memory-budget choice)\n",
                   (long long)o.grad_accum, (long long)p.batch);
  }
  s.setValidation(o.val_data, o.val_split);
  if (s.hasValidation())
    std::fprintf(stderr, "validation: %zu lines (%s)\n", s.validationLines(),
                 o.val_data.empty() ? ("the last " + std::to_string(s.validationLines()) + " of the data").c_str()
                                    : o.val_data.c_str());
  if (o.epochs > 0) {
    double perStep = double(p.batch * o.grad_accum);
    o.steps = std::max<int64_t>(1, int64_t(std::ceil(o.epochs * double(s.dataset().size()) / perStep)));
    std::fprintf(stderr, "%g epochs of %zu lines: %lld steps\n", o.epochs, s.dataset().size(), (long long)o.steps);
  }
  schedule.total_steps = o.steps;
  schedule.lr = o.lr ? *o.lr : p.lr;
  schedule.warmup_steps = o.warmup_steps;
  schedule.total_steps = o.steps;
  if (!(schedule.lr >= 0) || !std::isfinite(schedule.lr)) throw std::runtime_error("--lr must be a non-negative number");
  AdamW adamw = s.planAdamW();
  if (o.beta1) adamw.beta1 = *o.beta1;
  if (o.beta2) adamw.beta2 = *o.beta2;
  if (o.eps) adamw.eps = *o.eps;
  if (o.weight_decay) adamw.weight_decay = *o.weight_decay;
  checkHyperParameter("--beta1", adamw.beta1, adamw.beta1 >= 0 && adamw.beta1 < 1, "in [0, 1)");
  checkHyperParameter("--beta2", adamw.beta2, adamw.beta2 >= 0 && adamw.beta2 < 1, "in [0, 1)");
  checkHyperParameter("--eps", adamw.eps, adamw.eps > 0, "positive");
  checkHyperParameter("--weight-decay", adamw.weight_decay, adamw.weight_decay >= 0, ">= 0");
  const bool staged = s.staged();
  if (!staged && (o.grad_accum > 1 || o.max_grad_norm > 0))
    throw std::runtime_error(o.plan + ": the plan has no optimizer_step program (compiled by an older tessera): "
                             "recompile it for --grad-accum and --max-grad-norm");
  const int64_t gradNorm = staged ? s.gradNormBuffer() : -1;

  if (o.checkpoint_every < 0) throw std::runtime_error("--checkpoint-every must be >= 0 (0: no checkpoints)");
  const int64_t accum = o.grad_accum;
  // What a resumed run must share with its checkpoint.
  auto text = [](double v) { // the shortest text that reads back as v
    char b[40];
    for (int digits = 1; digits <= 17; ++digits) {
      std::snprintf(b, sizeof(b), "%.*g", digits, v);
      if (std::strtod(b, nullptr) == v) break;
    }
    return std::string(b);
  };
  const RunSettings settings = {
      {"plan", s.planHash()}, {"data", s.dataHash()}, {"--steps", std::to_string(o.steps)},
      {"--grad-accum", std::to_string(accum)}, {"--lr", text(schedule.lr)}, {"--lr-schedule", o.lr_schedule},
      {"--warmup-steps", std::to_string(o.warmup_steps)}, {"--max-grad-norm", text(o.max_grad_norm)},
      {"--weight-decay", text(adamw.weight_decay)}, {"--beta1", text(adamw.beta1)}, {"--beta2", text(adamw.beta2)},
      {"--eps", text(adamw.eps)}, {"--seed", std::to_string(s.seed())}};
  RunSettings textSettings = settings;
  if (!o.text.tokenizer.empty()) {
    const data::PrepareOptions &po = o.text.prepare;
    textSettings.push_back({"--tokenizer", fileHash((std::filesystem::path(o.text.tokenizer) / "tokenizer.json").string())});
    textSettings.push_back({"data preparation", std::string(po.assistantOnlyLoss ? "assistant-only " : "") +
                                                    (po.pack ? "pack " : "") + (po.dropLong ? "drop-long " : "") +
                                                    (po.skipBadLines ? "skip-bad " : "") + (po.addEos ? "eos " : "") +
                                                    "stride " + std::to_string(po.stride)});
  }
  if (o.val_split > 0) textSettings.push_back({"--val-split", text(o.val_split)});
  TrainResult result;
  int64_t updates = 0, first = 1; // the first step this run trains
  std::optional<CheckpointState> c;
  try {
    c = readCheckpoint(o.out);
  } catch (const CheckpointError &e) {
    // A damaged checkpoint blocks only --resume; a fresh run replaces it.
    if (o.resume)
      throw std::runtime_error(std::string(e.what()) + " (delete " + checkpointDir(o.out) +
                               " to discard it, or train without --resume to start over)");
    std::fprintf(stderr, "warning: %s: the checkpoint cannot be used; this run starts over and replaces it at its "
                         "first checkpoint (delete %s to discard it now)\n", e.what(), checkpointDir(o.out).c_str());
  }
  if (c) {
    if (o.resume) {
      checkSameRun(*c, textSettings, o.out);
      if (c->step > o.steps) throw std::runtime_error(checkpointDir(o.out) + ": the checkpoint is past --steps");
      s.loadTrainingState(c->tensors, checkpointDir(o.out));
      s.batcher().skipTrain(c->step * accum);
      updates = c->updates;
      result.skipped_steps = c->skipped_steps;
      result.resumed_from = c->step;
      first = c->step + 1;
      std::fprintf(stderr, "resuming from %s at step %lld of %lld\n", checkpointDir(o.out).c_str(),
                   (long long)c->step, (long long)o.steps);
    } else {
      std::fprintf(stderr, "note: %s holds step %lld of an earlier run; this run starts over and replaces it "
                           "(--resume continues it)\n", checkpointDir(o.out).c_str(), (long long)c->step);
    }
  } else if (o.resume) {
    std::fprintf(stderr, "no checkpoint in %s: starting at step 1\n", checkpointDir(o.out).c_str());
  }

  std::unique_ptr<MetricsLog> metrics;
  if (!o.metrics.empty()) metrics = std::make_unique<MetricsLog>(o.metrics, first > 1 ? first - 1 : -1);

  std::fprintf(stderr, "training %lld steps: %lld x %lld lines x %lld tokens, %zu LoRA modules, lr %g (%s",
               (long long)o.steps, (long long)accum, (long long)p.batch, (long long)p.seq, p.adapters.size(),
               schedule.lr, o.lr_schedule.c_str());
  if (o.warmup_steps) std::fprintf(stderr, ", %lld warmup steps", (long long)o.warmup_steps);
  if (o.max_grad_norm > 0) std::fprintf(stderr, ", clip %g", o.max_grad_norm);
  std::fprintf(stderr, ")\n");
  Progress progress(first - 1, o.steps, s.tokensPerBatch() * accum);
  double gpuTotal = 0, wallTotal = 0;
  int64_t gpuSteps = 0;
  // OUT/loss.svg at each checkpoint and at the end; a resumed run takes the
  // earlier steps from its metrics file.
  LossCurve trainCurve, evalCurve;
  if (first > 1 && !o.metrics.empty()) {
    std::vector<uint8_t> bytes = util::readFile(o.metrics);
    std::string all(bytes.begin(), bytes.end());
    size_t pos = 0;
    while (pos < all.size()) {
      size_t eol = all.find('\n', pos);
      if (eol == std::string::npos) eol = all.size();
      nlohmann::json m = nlohmann::json::parse(all.substr(pos, eol - pos), nullptr, false);
      pos = eol + 1;
      if (!m.is_object() || !m.contains("step")) continue;
      if (m.contains("loss") && m["loss"].is_number()) trainCurve.push_back({m["step"].get<int64_t>(), m["loss"].get<double>()});
      if (m.contains("eval_loss") && m["eval_loss"].is_number())
        evalCurve.push_back({m["step"].get<int64_t>(), m["eval_loss"].get<double>()});
    }
  }
  auto plot = [&] {
    std::filesystem::create_directories(o.out);
    writeLossPlot((std::filesystem::path(o.out) / "loss.svg").string(), trainCurve, evalCurve, o.steps);
  };
  const int64_t evalEvery = o.eval_every > 0 ? o.eval_every
                            : o.checkpoint_every > 0 ? o.checkpoint_every
                                                     : std::max<int64_t>(1, o.steps / 10);
  auto runValidation = [&](int64_t step) {
    auto [loss, tokens] = s.evaluateValidation();
    if (tokens == 0) throw std::runtime_error("the validation data has no tokens to evaluate (every label is -100)");
    evalCurve.push_back({step, loss});
    progress.setEvalLoss(loss);
    return loss;
  };
  int64_t lastCheckpoint = c ? c->step : -1;
  auto checkpoint = [&](int64_t step) {
    CheckpointState c{step, updates, result.skipped_steps, textSettings, s.trainingState()};
    if (!writeCurrentAdapter(s, o.out)) return; // non-finite: keep the last good checkpoint
    writeCheckpoint(o.out, c);
    lastCheckpoint = step;
    plot();
  };
  StopSignals stopSignals;
  int64_t current = first;
  // A lost device or exhausted memory mid-run: nothing more is written (the
  // GPU's state is gone); the last checkpoint stays as it was.
  auto deviceFailure = [&](const vk::VulkanError &e) {
    std::string where = "at step " + std::to_string(current) + " of " + std::to_string(o.steps) + "; ";
    if (lastCheckpoint >= 0)
      return std::runtime_error(std::string(e.what()) + " " + where + "the checkpoint of step " +
                                std::to_string(lastCheckpoint) + " in " + checkpointDir(o.out) +
                                " is intact: the same command with --resume continues from it");
    return std::runtime_error(std::string(e.what()) + " " + where + "no checkpoint was written yet" +
                              (o.checkpoint_every > 0 ? " (--checkpoint-every " + std::to_string(o.checkpoint_every) + ")"
                                                      : std::string(" (--checkpoint-every 0)")));
  };
  try {
    for (int64_t step = first; step <= o.steps; ++step) {
      current = step;
      auto t0 = Clock::now();
      const double lr = schedule.at(step - 1);
      // Bias correction counts the updates made, this one included.
      s.writeHParams(adamw, lr, updates + 1, o.max_grad_norm, accum);
      std::vector<std::vector<float>> a0, b0;
      if (step == 1 && !o.dump_grads.empty())
        for (const plan::Adapter &a : p.adapters) {
          a0.push_back(s.read(a.a));
          b0.push_back(s.read(a.b));
        }
      // Micro-batches: each adds grad / K to the accumulators (train_step).
      double lossSum = 0, gpuMs = 0;
      int64_t counted = 0;
      bool timed = true;
      std::vector<std::pair<data::Batch, int64_t>> microBatches; // (batch, dropout seed) for a non-finite report
      for (int64_t k = 0; k < accum; ++k) {
        data::Batch batch = s.batcher().nextTrain();
        if (batch.countedTokens() == 0) continue; // no loss, no gradient: contributes nothing
        microBatches.emplace_back(batch, (step - 1) * accum + k);
        s.upload(batch);
        s.writeDropoutSeed((step - 1) * accum + k);
        vk::ProgramTiming timing = s.exec().run("train_step");
        timed = timed && timing.gpu_ms >= 0;
        gpuMs += timing.gpu_ms;
        if (dispatchProfile && step > first + 1) // the first two steps warm caches and clocks up
          dispatchProfile->add(s.exec().dispatchTimes("train_step"));
        float loss = s.loss();
        if (!std::isfinite(loss)) {
          std::string what = "the loss is " + std::string(std::isnan(loss) ? "nan" : "inf") + " at step " +
                             std::to_string(step) + (accum > 1 ? " (micro-batch " + std::to_string(k + 1) + ")" : "");
          what += whereNonFinite(s, batch);
          if (!staged) throw std::runtime_error(what + ": try a lower --lr");
          stopWithLastGoodAdapter(s, what, step, o.out); // this step's update has not run
        }
        lossSum += loss;
        ++counted;
      }
      nlohmann::json normJson = nullptr, coefJson = nullptr;
      if (counted == 0) {
        // Nothing counted in this step: no update (adapter, moments and the
        // bias-correction count unchanged); the schedule still advances.
        if (result.skipped_steps++ == 0)
          std::fprintf(stderr, "warning: step %lld: every label of its %lld line(s) is -100 or past the first token; "
                               "the step is skipped (no update)\n", (long long)step, (long long)(accum * p.batch));
      } else if (staged) {
        vk::ProgramTiming timing = s.exec().run("optimizer_step");
        timed = timed && timing.gpu_ms >= 0;
        gpuMs += timing.gpu_ms;
        const float *norm = s.exec().f32(size_t(gradNorm));
        float total = norm[plan::kGradTotalNorm];
        if (!std::isfinite(total)) // adamw_accum skipped the update
          stopWithLastGoodAdapter(s, "the gradient norm is " + std::string(std::isnan(total) ? "nan" : "inf") +
                                         " at step " + std::to_string(step) + whereNonFiniteGradient(s, microBatches),
                                  step, o.out);
        normJson = total;
        coefJson = norm[plan::kGradClipCoef];
        ++updates;
      } else {
        ++updates; // AdamW ran inside train_step
      }
      if (step == 1 && !o.dump_grads.empty()) {
        dumpGrads(o.dump_grads, s, a0, b0);
        std::fprintf(stderr, "gradients of step 1 written to %s\n", o.dump_grads.c_str());
      }
      double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      double tokensPerS = seconds > 0 ? double(s.tokensPerBatch() * accum) / seconds : 0;
      wallTotal += seconds;
      if (timed && counted) {
        gpuTotal += gpuMs;
        ++gpuSteps;
      }
      nlohmann::json lossJson = counted ? nlohmann::json(lossSum / double(counted)) : nlohmann::json(nullptr);
      if (counted) trainCurve.push_back({step, lossSum / double(counted)});
      nlohmann::json evalJson = nullptr;
      if (s.hasValidation() && (step % evalEvery == 0 || step == o.steps)) evalJson = runValidation(step);
      if (metrics) {
        nlohmann::json m = {{"step", step}, {"loss", lossJson}, {"tokens_per_s", tokensPerS}, {"lr", lr},
                            {"grad_norm", normJson}, {"clip_coef", coefJson}, {"micro_batches", counted},
                            {"gpu_ms", timed && counted ? nlohmann::json(gpuMs) : nlohmann::json(nullptr)},
                            {"wall_ms", seconds * 1000.0}};
        if (!counted) m["skipped"] = true;
        if (!evalJson.is_null()) m["eval_loss"] = evalJson;
        metrics->append(m.dump() + "\n");
      }
      if (counted) result.final_loss = lossSum / double(counted);
      progress.update(step, result.final_loss); // a skipped step shows the last loss
      result.steps = step;
      if (o.checkpoint_every > 0 && step < o.steps && step % o.checkpoint_every == 0) checkpoint(step);
      if (gStopRequested && step < o.steps) {
        if (o.checkpoint_every > 0) {
          checkpoint(step);
          throw Interrupted("interrupted after step " + std::to_string(step) + " of " + std::to_string(o.steps) +
                            ": the adapter and " + checkpointDir(o.out) +
                            " were written; the same command with --resume continues");
        }
        writeCurrentAdapter(s, o.out);
        throw Interrupted("interrupted after step " + std::to_string(step) + " of " + std::to_string(o.steps) +
                          ": the adapter was written to " + o.out + " (no checkpoint: --checkpoint-every 0)");
      }
    }
  } catch (const vk::VulkanError &e) {
    throw deviceFailure(e);
  }

  if (dispatchProfile && dispatchProfile->runs()) {
    dispatchProfile->write(o.dispatch_profile);
    std::fprintf(stderr, "dispatch profile (%zu steps) written to %s: train_step %s\n", dispatchProfile->runs(),
                 o.dispatch_profile.c_str(), dispatchProfile->summary().c_str());
  } else if (dispatchProfile) {
    std::fprintf(stderr, "warning: no dispatch profile written to %s: %s\n", o.dispatch_profile.c_str(),
                 s.exec().dispatchTimes("train_step").empty() && o.steps - first + 1 > 2
                     ? "this device's queue has no timestamps"
                     : "it times the steps after the second, and this run trained fewer than 3");
  }
  if (!writeCurrentAdapter(s, o.out))
    throw std::runtime_error("the trained adapter has non-finite values; " + o.out + " was not written");
  std::optional<double> finalEval = evalCurve.empty() ? std::nullopt : std::optional<double>(evalCurve.back().second);
  if (o.checkpoint_every > 0) writeCheckpoint(o.out, {o.steps, updates, result.skipped_steps, textSettings, s.trainingState()});
  plot();
  const int64_t trained = o.steps - first + 1;
  if (trained == 0) {
    result.steps = o.steps;
    std::fprintf(stderr, "the checkpoint is at the last step (%lld): nothing to train; adapter written to %s\n",
                 (long long)o.steps, o.out.c_str());
    return result;
  }
  std::fprintf(stderr, "trained %lld steps in %s (%.0f tokens/s), final loss %.4f", (long long)trained,
               formatDuration(wallTotal).c_str(), double(s.tokensPerBatch() * accum) * double(trained) / wallTotal,
               result.final_loss);
  if (gpuSteps) std::fprintf(stderr, ", %.2f GPU ms/step", gpuTotal / double(gpuSteps));
  if (result.skipped_steps) std::fprintf(stderr, ", %lld step(s) skipped", (long long)result.skipped_steps);
  if (finalEval) std::fprintf(stderr, ", eval loss %.4f", *finalEval);
  std::fprintf(stderr, "\nadapter written to %s (loss plot: %s/loss.svg)\n", o.out.c_str(), o.out.c_str());
  return result;
}

EvalResult runEvaluation(const EvalOptions &o) {
  Session s(o.plan, o.weights, o.data, o.device, o.init_adapter, std::nullopt, "eval", o.text, o.robust_access,
            o.pipeline_cache);
  s.writeHParams(s.planAdamW(), s.plan().lr, 1);
  double gpuTotal = 0;
  size_t gpuRuns = 0, batches = s.batcher().evalBatches();
  std::string perBatch;
  auto [loss, tokens] = s.evaluate(s.batcher(), &gpuTotal, &gpuRuns, o.losses.empty() ? nullptr : &perBatch);
  if (tokens == 0)
    throw std::runtime_error(o.data + ": no tokens to evaluate (every label is -100, or every line has a single token)");
  EvalResult r{loss, tokens};
  if (!o.losses.empty()) util::writeFileAtomic(o.losses, perBatch);
  if (gpuRuns) std::fprintf(stderr, "eval: %zu batches, %.2f GPU ms/batch\n", batches, gpuTotal / double(gpuRuns));
  std::printf("eval loss %.6f over %lld tokens\n", r.loss, (long long)r.tokens);
  std::fflush(stdout);
  return r;
}

} // namespace tessera::train
