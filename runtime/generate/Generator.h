// Generator.h - `tessera generate`: tokens from a generation plan
// (tessera compile --generate) on any Vulkan device.
//
// The plan's `prefill` program runs the prompt (padded to the plan's context
// T) and fills the KV cache on the device; each new token then costs one
// `decode` program: the token and its position go in, logits for the next
// one come out, the cache is updated in place. Greedy by default; stops at
// --max-new-tokens, at an end-of-sequence id, or when the context is full.
//
// A Generator loads the plan, the weights and the adapter onto the device
// once; `run` can then be called again (a chat: one call per turn, each
// prefilling the whole conversation as the template renders it).
#pragma once

#include "runtime/generate/Sampler.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessera::generate {

struct GenerateOptions {
  std::string plan, weights, adapter;
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 0;
  SamplingOptions sampling;
  std::vector<int32_t> stop_ids; // end-of-sequence ids (generation stops after one)
  int device = 0;
  // When a tokenizer makes the prompt: its folder and size, checked against
  // the plan's vocabulary before anything is loaded.
  std::string tokenizer;
  int64_t tokenizer_vocab = 0;
  std::string pipeline_cache; // pipeline cache folder ("" : none; the CLI resolves the default)
};

struct GenerateResult {
  std::vector<int32_t> tokens; // the generated ids (prompt excluded; a stop id included)
  double prefill_ms = 0, decode_ms = 0;
  std::string stop; // "max-new-tokens", "eos" or "context"
  // Decode rate over the tokens after the first (0 when there was one token).
  double tokensPerSecond() const;
};

class Generator {
public:
  // Reads and checks the plan, the weights, the adapter and the sampling
  // options (and o.prompt when it is not empty) before it sets up the device.
  // Throws std::runtime_error (one line).
  explicit Generator(const GenerateOptions &o);
  ~Generator();

  int64_t context() const; // T: prompt + generated tokens
  int64_t vocab() const;
  // Generates from `prompt` (checked against the context and the vocabulary);
  // `onToken` sees each id as it is generated (streaming). The sampling stream
  // continues across calls.
  GenerateResult run(const std::vector<int32_t> &prompt, int64_t maxNewTokens, const std::vector<int32_t> &stopIds,
                     const std::function<void(int32_t)> &onToken);

private:
  struct State;
  std::unique_ptr<State> s_;
};

// One-shot: Generator(o).run(o.prompt, o.max_new_tokens, o.stop_ids, onToken).
GenerateResult generate(const GenerateOptions &o, const std::function<void(int32_t)> &onToken);

// "1,2,3" -> ids; errors name the offending item.
std::vector<int32_t> parseIds(const std::string &text, const std::string &what);

} // namespace tessera::generate
