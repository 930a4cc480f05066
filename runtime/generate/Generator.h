// Generator.h - `tessera generate`: text from a generation plan
// (tessera compile --generate) on any Vulkan device.
//
// The plan's `prefill` program runs the prompt (padded to the plan's context
// T) and fills the KV cache on the device; each new token then costs one
// `decode` program: the token and its position go in, logits for the next
// one come out, the cache is updated in place. Greedy by default; stops at
// --max-new-tokens, at an end-of-sequence id, or when the context is full.
#pragma once

#include "runtime/generate/Sampler.h"

#include <cstdint>
#include <functional>
#include <optional>
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
};

struct GenerateResult {
  std::vector<int32_t> tokens; // the generated ids (prompt excluded)
  double prefill_ms = 0, decode_ms = 0;
  std::string stop; // "max-new-tokens", "eos" or "context"
};

// `onToken` sees each id as it is generated (streaming). Throws
// std::runtime_error with one line on bad input.
GenerateResult generate(const GenerateOptions &o, const std::function<void(int32_t)> &onToken);

// "1,2,3" -> ids; errors name the offending item.
std::vector<int32_t> parseIds(const std::string &text, const std::string &what);

} // namespace tessera::generate
