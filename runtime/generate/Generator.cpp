#include "runtime/generate/Generator.h"

#include "runtime/plan/Plan.h"
#include "runtime/train/AdapterIO.h"
#include "runtime/vulkan/Executor.h"
#include "runtime/weights/OnnxWeights.h"

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

} // namespace

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

GenerateResult generate(const GenerateOptions &o, const std::function<void(int32_t)> &onToken) {
  plan::Plan p = plan::readPlanFile(o.plan);
  for (const char *prog : {"prefill", "decode"})
    if (!p.program(prog))
      throw std::runtime_error(o.plan + ": the plan has no program '" + prog +
                               "': compile it with tessera compile --generate");
  const int64_t T = p.seq, V = p.vocab;
  int64_t ids = bufferNamed(p, "input_ids", o.plan), token = bufferNamed(p, "token", o.plan),
          position = bufferNamed(p, "position", o.plan), prefillLogits = bufferNamed(p, "prefill.logits", o.plan),
          decodeLogits = bufferNamed(p, "decode.logits", o.plan);
  if (V <= 0 || p.buffers[size_t(decodeLogits)].bytes != uint64_t(V) * 4 ||
      p.buffers[size_t(prefillLogits)].bytes != uint64_t(T * V) * 4)
    throw std::runtime_error(o.plan + ": the logits buffers do not match the plan's context and vocabulary");
  if (o.prompt.empty()) throw std::runtime_error("the prompt is empty");
  if (int64_t(o.prompt.size()) >= T)
    throw std::runtime_error("the prompt has " + std::to_string(o.prompt.size()) + " tokens, the plan's context is " +
                             std::to_string(T) + ": compile with a larger --seq");
  for (size_t i = 0; i < o.prompt.size(); ++i)
    if (o.prompt[i] >= V)
      throw std::runtime_error("prompt token " + std::to_string(i + 1) + " is " + std::to_string(o.prompt[i]) +
                               ", the vocabulary has " + std::to_string(V) + " ids");
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

  vk::Context ctx(o.device);
  vk::Executor exec(ctx, p);
  std::fprintf(stderr, "device %d: %s (%s), %.1f MiB of buffers\n", o.device, ctx.info().name.c_str(),
               ctx.info().type.c_str(), double(exec.allocatedBytes()) / 1048576.0);
  // Zero everything (the KV cache, LoRA B without an adapter), then weights,
  // constants and the adapter.
  for (size_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].alias_of < 0) std::memset(exec.data(i), 0, p.buffers[i].bytes);
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const plan::Buffer &b = p.buffers[i];
    if (b.alias_of >= 0) continue;
    if (b.kind == BufferKind::Weight) w.loadInto(b.name, b.shape, exec.f32(i));
    else if (b.kind == BufferKind::Constant) std::memcpy(exec.data(i), p.blobs[size_t(b.init_blob)].data(), b.bytes);
  }
  for (size_t i = 0; i < a.size(); ++i) {
    std::memcpy(exec.f32(size_t(p.adapters[i].a)), a[i].data(), a[i].size() * 4);
    std::memcpy(exec.f32(size_t(p.adapters[i].b)), bf[i].data(), bf[i].size() * 4);
  }

  Sampler sampler(o.sampling);
  GenerateResult r;
  const int64_t P = int64_t(o.prompt.size());
  auto t0 = Clock::now();
  std::memcpy(exec.i32(size_t(ids)), o.prompt.data(), size_t(P) * 4);
  exec.run("prefill");
  int32_t next = sampler.next(exec.f32(size_t(prefillLogits)) + (P - 1) * V, V);
  r.prefill_ms = msSince(t0);
  auto t1 = Clock::now();
  for (int64_t pos = P;; ++pos) {
    r.tokens.push_back(next);
    onToken(next);
    bool eos = false;
    for (int32_t s : o.stop_ids) eos = eos || s == next;
    if (eos) { r.stop = "eos"; break; }
    if (int64_t(r.tokens.size()) >= o.max_new_tokens) { r.stop = "max-new-tokens"; break; }
    if (pos >= T) { r.stop = "context"; break; }
    exec.i32(size_t(token))[0] = next;
    exec.i32(size_t(position))[0] = int32_t(pos);
    exec.run("decode");
    next = sampler.next(exec.f32(size_t(decodeLogits)), V);
  }
  r.decode_ms = msSince(t1);
  return r;
}

} // namespace tessera::generate
