#include "runtime/generate/Generator.h"

#include "runtime/plan/Plan.h"
#include "runtime/train/AdapterIO.h"
#include "runtime/vulkan/Executor.h"
#include "runtime/weights/OnnxWeights.h"
#include "runtime/weights/TernaryWeights.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace tessera::generate {

namespace {

using plan::BufferKind;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

int64_t bufferNamed(const plan::Plan &p, const std::string &name, const std::string &planPath) {
  for (size_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].name == name && p.buffers[i].alias_of < 0) return int64_t(i);
  throw std::runtime_error(planPath + ": no buffer '" + name + "': not a generation plan (tessera compile --generate)");
}

void checkPrompt(const std::vector<int32_t> &prompt, int64_t T, int64_t V) {
  if (prompt.empty()) throw std::runtime_error("the prompt is empty");
  if (int64_t(prompt.size()) >= T)
    throw std::runtime_error("the prompt has " + std::to_string(prompt.size()) + " tokens, the plan's context is " +
                             std::to_string(T) + ": compile with a larger --seq");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] >= V)
      throw std::runtime_error("prompt token " + std::to_string(i + 1) + " is " + std::to_string(prompt[i]) +
                               ", the vocabulary has " + std::to_string(V) + " ids");
}

} // namespace

double GenerateResult::tokensPerSecond() const {
  return tokens.size() > 1 && decode_ms > 0 ? 1000.0 * double(tokens.size() - 1) / decode_ms : 0.0;
}

std::vector<int32_t> parseIds(const std::string &text, const std::string &what) {
  std::vector<int32_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception &) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      throw std::runtime_error(what + ": '" + item + "' is not a token id (comma-separated integers >= 0)");
    out.push_back(int32_t(v));
    start = comma + 1;
  }
  return out;
}

struct Generator::State {
  plan::Plan p;
  std::unique_ptr<vk::Context> ctx;
  std::unique_ptr<vk::Executor> exec;
  std::unique_ptr<Sampler> sampler;
  int64_t T = 0, V = 0;
  int64_t ids = 0, token = 0, position = 0, prefillLogits = 0, decodeLogits = 0;
};

Generator::Generator(const GenerateOptions &o) : s_(std::make_unique<State>()) {
  State &s = *s_;
  s.p = plan::readPlanFile(o.plan);
  const plan::Plan &p = s.p;
  for (const char *prog : {"prefill", "decode"})
    if (!p.program(prog))
      throw std::runtime_error(o.plan + ": the plan has no program '" + prog +
                               "': compile it with tessera compile --generate");
  s.T = p.seq;
  s.V = p.vocab;
  s.ids = bufferNamed(p, "input_ids", o.plan);
  s.token = bufferNamed(p, "token", o.plan);
  s.position = bufferNamed(p, "position", o.plan);
  s.prefillLogits = bufferNamed(p, "prefill.logits", o.plan);
  s.decodeLogits = bufferNamed(p, "decode.logits", o.plan);
  if (s.V <= 0 || p.buffers[size_t(s.decodeLogits)].bytes != uint64_t(s.V) * 4 ||
      p.buffers[size_t(s.prefillLogits)].bytes != uint64_t(s.T * s.V) * 4)
    throw std::runtime_error(o.plan + ": the logits buffers do not match the plan's context and vocabulary");
  if (o.tokenizer_vocab > s.V)
    throw std::runtime_error(o.tokenizer + ": the tokenizer has " + std::to_string(o.tokenizer_vocab) +
                             " tokens but the plan's model has a vocabulary of " + std::to_string(s.V) +
                             " (another model's tokenizer?)");
  if (!o.prompt.empty()) checkPrompt(o.prompt, s.T, s.V);
  if (o.max_new_tokens < 1) throw std::runtime_error("--max-new-tokens must be >= 1");
  if (o.sampling.temperature < 0) throw std::runtime_error("--temperature must be >= 0");
  if (!(o.sampling.top_p > 0 && o.sampling.top_p <= 1)) throw std::runtime_error("--top-p must be in (0, 1]");
  if (o.sampling.top_k < 0) throw std::runtime_error("--top-k must be >= 0");

  // Weights and the adapter are checked before the device is touched.
  weights::OnnxWeights w(o.weights);
  for (const plan::Buffer &b : p.buffers)
    if (b.kind == BufferKind::Weight && b.alias_of < 0 && !w.contains(b.name))
      throw std::runtime_error(o.weights + ": initializer '" + b.name + "' not found (the plan was compiled from '" +
                               p.model_file + "')");
  std::vector<std::vector<float>> a, bf;
  if (!o.adapter.empty()) train::readAdapter(o.adapter, p, a, bf);

  s.ctx = std::make_unique<vk::Context>(o.device);
  // The weights stream in while worker threads create the pipelines.
  uint64_t weightBytes = 0;
  vk::ExecutorOptions eo;
  eo.pipeline_cache_dir = o.pipeline_cache;
  eo.fill = [&](vk::Executor &exec) {
    std::fprintf(stderr, "device %d: %s (%s), %.1f MiB of buffers\n", o.device, s.ctx->info().name.c_str(),
                 s.ctx->info().type.c_str(), double(exec.allocatedBytes()) / 1048576.0);
    // Zero everything (the KV cache, LoRA B without an adapter), then weights,
    // constants and the adapter.
    for (size_t i = 0; i < p.buffers.size(); ++i)
      if (p.buffers[i].alias_of < 0) std::memset(exec.data(i), 0, p.buffers[i].bytes);
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      const plan::Buffer &b = p.buffers[i];
      if (b.alias_of >= 0) continue;
      if (b.kind == BufferKind::Weight && b.ternary != plan::Ternary::None) {
        weights::loadTernaryInto(w, b, exec.data(i)); // BitNet codes / scale
        weightBytes += b.bytes;
      } else if (b.kind == BufferKind::Weight) {
        w.loadInto(b.name, b.shape, weights::OnnxWeights::Storage::F32, exec.f32(i), b.row_offset);
        weightBytes += b.bytes;
      } else if (b.kind == BufferKind::Constant) {
        std::memcpy(exec.data(i), p.blobs[size_t(b.init_blob)].data(), b.bytes);
      }
    }
    for (size_t i = 0; i < a.size(); ++i) {
      std::memcpy(exec.f32(size_t(p.adapters[i].a)), a[i].data(), a[i].size() * 4);
      std::memcpy(exec.f32(size_t(p.adapters[i].b)), bf[i].data(), bf[i].size() * 4);
    }
  };
  s.exec = std::make_unique<vk::Executor>(*s.ctx, p, eo);
  const vk::StartupStats &st = s.exec->startup();
  std::fprintf(stderr, "startup: %s, weights %s in %.1f s; ready %.1f s after launch\n", vk::describePipelines(st).c_str(),
               vk::describeBytes(weightBytes).c_str(), st.fill_s,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - vk::processStart()).count());
  s.sampler = std::make_unique<Sampler>(o.sampling);
}

Generator::~Generator() = default;

int64_t Generator::context() const { return s_->T; }
int64_t Generator::vocab() const { return s_->V; }

GenerateResult Generator::run(const std::vector<int32_t> &prompt, int64_t maxNewTokens,
                              const std::vector<int32_t> &stopIds, const std::function<void(int32_t)> &onToken) {
  State &s = *s_;
  vk::Executor &exec = *s.exec;
  const int64_t T = s.T, V = s.V;
  checkPrompt(prompt, T, V);
  if (maxNewTokens < 1) throw std::runtime_error("--max-new-tokens must be >= 1");
  GenerateResult r;
  const int64_t P = int64_t(prompt.size());
  auto t0 = Clock::now();
  // The padding after the prompt is never attended to (causal mask), and each
  // decode step overwrites its position's cache row before attending to it.
  std::memcpy(exec.i32(size_t(s.ids)), prompt.data(), size_t(P) * 4);
  exec.run("prefill");
  int32_t next = s.sampler->next(exec.f32(size_t(s.prefillLogits)) + (P - 1) * V, V);
  r.prefill_ms = msSince(t0);
  auto t1 = Clock::now();
  for (int64_t pos = P;; ++pos) {
    r.tokens.push_back(next);
    onToken(next);
    bool eos = false;
    for (int32_t stop : stopIds) eos = eos || stop == next;
    if (eos) { r.stop = "eos"; break; }
    if (int64_t(r.tokens.size()) >= maxNewTokens) { r.stop = "max-new-tokens"; break; }
    if (pos >= T) { r.stop = "context"; break; }
    exec.i32(size_t(s.token))[0] = next;
    exec.i32(size_t(s.position))[0] = int32_t(pos);
    exec.run("decode");
    next = s.sampler->next(exec.f32(size_t(s.decodeLogits)), V);
  }
  r.decode_ms = msSince(t1);
  return r;
}

GenerateResult generate(const GenerateOptions &o, const std::function<void(int32_t)> &onToken) {
  Generator g(o);
  return g.run(o.prompt, o.max_new_tokens, o.stop_ids, onToken);
}

} // namespace tessera::generate
